"""Everything done to the face in full frames: detection and landmarks with insightface (`face_analysis`),
one face followed through frames, images or pose keypoints (`face_track`, `pose_keypoints`),
MuseTalk's crop boxes (`face_geometry`), smoothing tracks over time (`track_smoothing`), cutting crops
(`face_crop`) and the record of where each crop came from (`crop_info`), and the way back: masks (`blend_masks`),
face parsing with BiSeNet (`face_parsing`) and pasting generated crops into frames (`paste_back`). It may import
`errors`, `runtime`, `files`, `audio` and `video`.
"""

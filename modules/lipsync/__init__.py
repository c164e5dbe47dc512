"""The lip-sync step: MuseTalk's single-step inference that redraws the lower half of each face crop from
its audio tokens, with an identity applied when one is given (`lipsync_inference`), the check of the crops it is
given (`crop_input`), which crop and audio frame each output frame uses (`frame_timing`), and the crops + speech
pipeline behind the sampler node (`lipsync_pipeline`). It may import every folder below it: `errors`, `runtime`,
`files`, `audio`, `video`, `face`, `musetalk` and `identity`.
"""

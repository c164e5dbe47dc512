"""Reading and writing video files with PyAV: probing, decoding frames chunk by chunk at a constant rate, and
the H.264 mp4 writer that muxes the new speech and renames the file only when complete (`video_io`). It knows
nothing of faces or models; `overlap` runs decoding and encoding beside the model, `frame_format` turns
float frames into pixels. It may import `errors`, `runtime`, `files` and `audio`.
"""

"""Lip-sync model families behind the `lipsync.lipsync_family` seam: MuseTalk today (`musetalk_family`, its
single-step inference in `musetalk_inference`), Wav2Lip next. A family joins its networks, its audio features and
its training hook; the pipelines below it receive a family and never import one. It may import every folder
below it.
"""

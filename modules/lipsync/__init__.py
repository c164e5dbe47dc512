"""The lip-sync seam and what every family shares: the `LipSyncFamily` interface with its crop policy
(`lipsync_family`), the check and sizing of the crops a sampler is given (`crop_input`), which crop and audio frame
each output frame uses (`frame_timing`), the batch loop with its out-of-memory retry (`batched_generation`) and
the crops + speech pipeline behind the sampler node (`lipsync_pipeline`). No family's networks are imported
here. It may import every folder below it.
"""

"""Dubbing a whole video file in bounded memory (`dub_pipeline`): track the face, then crop, lip-sync, paste back
and encode chunk by chunk; the `dub` command and the Dub Video node are built on it. It combines everything below
it and may import every folder below it, up to `lipsync`.
"""

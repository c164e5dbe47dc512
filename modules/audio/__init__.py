"""Speech in, per-frame features out: decoding any audio or video file's sound (`audio_file`), 16 kHz mono
(`speech_input`), our Whisper tiny encoder in the OpenAI and HF layouts (`whisper_encoder`), the per-frame feature
windows of MuseTalk v1.0 / v1.5 (`whisper_features`) and the positional code added to the audio tokens
(`audio_position`). It may import `errors`, `runtime` and `files`.
"""

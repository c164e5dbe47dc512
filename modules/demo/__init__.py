"""Made-up inputs that need no downloads: the drawn talking clip and speech-like signal of the `demo` command
(`demo_media`), and writers of MuseTalk, Whisper and UnAvgLip files with random weights in the original formats
(`random_models`), used by the demo, the tests and the benchmarks. It may import every folder below it; nothing in
the method imports it (only `cli`).
"""

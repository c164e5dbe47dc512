"""Training data made from videos of a person: preparing it (`prepare_data`: crops, audio features, ArcFace
embeddings, the Wav2Lip mel), the folder it is kept in (`dataset_files`) and drawing batches from it (`samples`).
It may import everything below it in `modules.LAYERS`.
"""

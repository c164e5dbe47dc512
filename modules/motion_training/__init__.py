"""Training the speech-to-motion models (StyleMotion, LandmarkDiffusion) on prepared training data: windows and
style references drawn from the clips' landmarks and mel, the losses, the loop with checkpoints, resume and cancel.

It may import every folder below it (motion, training_data, training's checkpoints and stop).
"""

"""Speech to lip motion, the first half of the motion/appearance split (reference/methods.md sections 4-5): the
lip-motion representation, the audio windows it is predicted from, and two small networks with their files:
StyleMotion (audio-aware style reference, after arXiv 2408.05412) and LandmarkDiffusion (after arXiv 2406.08096).

It may import errors, files and audio; training lives in `motion_training/`, scores in `evaluation/`.
"""

"""Rendering lip motion: a motion adapter on the MuseTalk UNet that makes the generated mouth follow given
landmarks (the second half of the motion/appearance split), its files, and the patch that applies it per frame.

It may import errors, files, motion and musetalk; its trainer lives in `motion_training/`.
"""

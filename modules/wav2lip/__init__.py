"""The Wav2Lip family's networks in plain torch: Wav2Lip's generator (its published key layout), its visual quality
discriminator, and LPIPS-AttnWav2Lip's generator; their files; the 6-channel input they take.

It may import errors, files, audio and face (the crop size); the family built on these networks lives in
`families/`, their trainer in `wav2lip_training/`.
"""

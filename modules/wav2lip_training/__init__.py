"""Training the Wav2Lip family as a GAN: fine-tuning Wav2Lip, or LPIPS-AttnWav2Lip from scratch, on the data
Prepare Training Data writes (its 96x96 crops and Wav2Lip mel).

It may import the layers below it: the networks (`wav2lip`), the loss networks, the training data, and the
checkpoint, plot and stop helpers of `training`.
"""

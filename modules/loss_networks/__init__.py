"""The frozen networks that training losses compare against, read from their published files: torchvision's VGG19
(`vgg_features`, the perceptual loss), Wav2Lip's lip-sync expert and its mel (`wav2lip_syncnet`, the sync loss),
and the ArcFace of an insightface pack run by torch from its ONNX graph (`onnx_graph`, `arcface_loss`, the identity
loss). Any trainer may use them (the identity adapter's today; Wav2Lip's and the motion models' next). It may import
everything below it in `modules.LAYERS`.
"""

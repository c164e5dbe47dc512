"""The UnAvgLip / MuseTalk method in plain torch and numpy. Nothing here imports ComfyUI.

One sub-package per concern. `LAYERS` lists them from the bottom up, with the five top-level modules at their
places: `errors`, `runtime`, `precision` and `compile_mode` at the bottom (everything above may use them), `cli`
at the very top. A name may import only itself and the names listed before it (tests/test_layers.py checks every
import, also those inside functions).
"""

LAYERS = (
    "errors",  # the exceptions the pack raises on bad input
    "runtime",  # the seam to the host: device, progress, interrupt
    "distributed",  # training on several processes (torchrun): which rank this is, its share, DDP, collective stops
    "precision",  # which dtype the models compute in on a device, and its fallbacks
    "compile_mode",  # optional torch.compile of a model, with a fallback to the uncompiled one
    "files",  # reading weight files safely; where model files go
    "audio",  # decoding, 16 kHz mono, Whisper encoder, per-frame features, positional code
    "video",  # reading and writing video files
    "face",  # detection, geometry, smoothing, crops, masks, parsing, paste back
    "musetalk",  # the base networks: MuseTalk UNet, VAE codec
    "wav2lip",  # the Wav2Lip family's networks: Wav2Lip, its quality discriminator, LPIPS-AttnWav2Lip; their files
    "motion",  # speech to lip motion: the representation, StyleMotion and LandmarkDiffusion, their files
    "identity",  # the UnAvgLip identity adapter, its files and embeddings, the identity patch
    "motion_adapter",  # rendering lip motion: the motion adapter on the MuseTalk UNet, its files, its per-frame patch
    "lipsync",  # the seam a lip-sync model family implements, and what families share: frame plan, crop check, batches
    "dub",  # a whole video file dubbed in bounded memory
    "evaluation",  # metrics of a dub: identity, sharpness, lip sync (SyncNet), mouth motion; plots
    "loss_networks",  # frozen networks the training losses use: VGG19, Wav2Lip's sync expert, ArcFace from ONNX
    "training_data",  # training data made from videos: preparation, the folder, batches
    "training",  # training identity adapters: step, loop, checkpoints, presets; the hook it needs; uses evaluation
    "wav2lip_training",  # training the Wav2Lip family as a GAN (fine-tune Wav2Lip, or LPIPS-AttnWav2Lip from scratch)
    "motion_training",  # training the motion models (losses, loop, checkpoints, previews)
    "families",  # lip-sync model families behind the seam: MuseTalk (with an identity), Wav2Lip, LPIPS-AttnWav2Lip
    "demo",  # the made-up clip and the random-weight model writers
    "commands",  # what the `unavglip` subcommands run (prepare-data, train-adapter)
    "batch_dub",  # `dub-batch`: many videos, the models loaded once per worker (processes, GPUs, Ray actors)
    "cli",  # the `unavglip` command
)

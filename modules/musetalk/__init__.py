"""MuseTalk's base networks, without inference: loading the UNet from the published v1.0 / v1.5 files and
detecting the version (`musetalk_unet`), and the VAE as a codec between images and scaled latents with a
deterministic encode (`vae_codec`). It sits below `identity` so that identity tools can build the base UNet (the
adapter converter binds to its attention layers). It may import `errors`, `runtime`, `files`, `audio`, `video` and
`face`.
"""

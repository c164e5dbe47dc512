"""Metrics of a dub: how close the face stays to the person (ArcFace cosine, the authors' identity consistency),
how sharp it stays (SSIM and PSNR as the authors compute them, on the whole crop and on the mouth half), whether
the lips follow the speech (LSE-C / LSE-D with SyncNet, computed as joonson/syncnet_python computes them), how far
the mouth landmarks move from the original (LMD) and whether the mouth moves on silent speech; per-frame curves, a
summary and plots; drift over windows of a long dub; leakage (does the mouth copy its reference instead of following
the audio); scores of lip motion against true landmarks; one self-contained HTML report. It may import every folder
below it (`errors` up to `dub`, `motion` among them).
"""

#!/usr/bin/env bash
# Run HERE, on the CPU machine (it reaches the package registry): downloads, as wheels for the GPU machine's
# Python 3.12 (x86-64, manylinux), what the pack needs beyond that machine's image (it has torch 2.11 + CUDA 13,
# numpy, scipy, onnx, onnxruntime, opencv-headless, matplotlib, scikit-image, pytest, transformers, ...; see
# .library/device/KINDS.md). They go into .whl/ (ignored by git; `carry` it). Face detection is not needed: the
# device check dubs the drawn demo face with the demo's tracker, so insightface (an sdist) stays behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
PLATFORMS=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1 manylinux_2_31 \
           manylinux_2_34 manylinux_2_35; do PLATFORMS+=(--platform "${tag}_x86_64"); done
# The versions the tests here ran with (the device's image already has lazy-loader, msgpack, numba, llvmlite).
WHEELS=(diffusers==0.42.1 av==18.1.0 librosa==0.11.0 soundfile==0.14.0 soxr==1.1.0 audioread==3.1.0
        pooch==1.9.0 platformdirs==4.14.9 decorator==5.3.1 cffi==2.1.1 pycparser==3.12 pytorch_msssim==1.0.0
        importlib_metadata==10.2.0
        # a real ComfyUI server there (bench_node_path): what its start needs beyond the image. Its database
        # (alembic, mako, greenlet) is left out to stay under 50 MB: ComfyUI then starts with a warning.
        comfy-aimdo==0.6.0 torchsde==0.2.6 trampoline==0.1.2 sqlalchemy==2.1.9 pydantic==2.14.4 pydantic_core==2.50.5 pydantic-settings==2.16.3 annotated-types==0.8.0
        typing-inspection==0.4.5 python-dotenv==1.2.4 typing_extensions==4.16.0)
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
# pure-Python packages published as sdists only: build their wheels here (they hold no compiled code)
python3 -m pip wheel --quiet --no-deps -w .whl python_speech_features==0.6
ls -1 .whl
du -sh .whl

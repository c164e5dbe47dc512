"""Identity embeddings: ArcFace vectors of reference faces, and files that keep them for reuse.

As UnAvgLip's inference does, each reference gives insightface's L2-normalised 512-d embedding (buffalo_l's
`normed_embedding`); "raw" keeps one token per reference, "averaged" gives one token, the normalised mean.
"""

import os

import numpy as np
import torch

from ..errors import FrameInputError, SettingError
from ..face.face_analysis import choose_face, detect_faces
from ..video.frame_format import uint8_frames

MODE_RAW = "raw"
MODE_AVERAGED = "averaged"
EMBEDDING_MODES = (MODE_RAW, MODE_AVERAGED)
EMBEDDING_FILE_EXTENSIONS = (".npy", ".safetensors")
SAFETENSORS_KEY = "embeddings"


def evenly_spaced(count: int, limit: int) -> list[int]:
    """At most `limit` indices of `count`, spread over the whole range (0: all). Deterministic, unlike the
    authors' random draw with replacement, so a graph gives the same identity every run."""
    if limit <= 0 or count <= limit:
        return list(range(count))
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)}) if limit > 1 else [count // 2]


def embeddings_from_images(analysis, images, log=print) -> np.ndarray:
    """IMAGE batch [N, H, W, 3] (0..1), or a list of [H, W, 3] images of any sizes -> [k, 512] unit vectors, one
    per image with a face (the largest one). Images without a face are named in the log and skipped; none with a
    face is an error.
    """
    if isinstance(images, (list, tuple)):
        if not images or any(np.ndim(image) != 3 or np.shape(image)[-1] < 3 for image in images):
            raise FrameInputError("Reference images must be RGB images [H, W, 3].")
    elif not isinstance(images, (torch.Tensor, np.ndarray)) or images.ndim != 4 or images.shape[-1] < 3:
        raise FrameInputError("Reference images must be an IMAGE batch [N, H, W, 3].")
    found, faceless, unrecognised = [], [], 0
    for index in range(len(images)):
        face = choose_face(detect_faces(analysis, uint8_frames(images[index])))
        if face is None or face.get("embedding") is None:
            faceless.append(index)
            unrecognised += face is not None
        else:
            found.append(face["embedding"])
    if not found and unrecognised:
        raise SettingError(
            "The face analysis finds the reference faces but gives no embeddings: it has no recognition model. Use "
            "a full pack (buffalo_l or antelopev2), or a saved embedding file instead."
        )
    if not found:
        raise FrameInputError(
            f"None of the {len(images)} reference images shows a face the face analysis can find. Give clear, "
            "front-facing photos of the person (or frames of the video where the face is large), or a saved "
            "embedding file instead."
        )
    if faceless:
        log(f"UnAvgLip: no face in reference image(s) {', '.join(map(str, faceless))} (counting from 0); "
            f"using the other {len(found)}.")
    return np.stack(found).astype(np.float32)


def combine(embeddings: np.ndarray, mode: str) -> torch.Tensor:
    """[n, 512] -> the perceiver's input [1, n, 512] (raw) or [1, 1, 512] (averaged)."""
    if mode not in EMBEDDING_MODES:
        raise SettingError(f"Embedding mode must be one of {', '.join(EMBEDDING_MODES)}, not {mode!r}.")
    embeddings = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    if mode == MODE_AVERAGED:
        mean = embeddings.mean(dim=0, keepdim=True)
        embeddings = mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return embeddings.unsqueeze(0)


def read_embedding_file(path: str) -> np.ndarray:
    """A saved identity: [n, 512] or [1, n, 512] in .npy or .safetensors -> [n, 512] float32."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise SettingError(f"Embedding file not found: {path}. Put it in ComfyUI's input folder.")
    try:
        if path.lower().endswith(".npy"):
            array = np.load(path, allow_pickle=False)  # no pickles: a .npy with objects could run code
        elif path.lower().endswith(".safetensors"):
            from safetensors.torch import load_file  # torch reads bf16/fp16 too

            tensors = load_file(path)
            if SAFETENSORS_KEY not in tensors and len(tensors) != 1:
                raise SettingError(f"{name} holds {len(tensors)} tensors and none is named '{SAFETENSORS_KEY}'.")
            array = tensors.get(SAFETENSORS_KEY, next(iter(tensors.values()))).float().numpy()
        else:
            raise SettingError(f"{name}: embedding files must be .npy or .safetensors.")
    except SettingError:
        raise
    except Exception as error:  # numpy and safetensors raise many kinds for a damaged file
        raise SettingError(f"{name} is not a readable embedding file ({type(error).__name__}: {error}). Save the "
                           "embeddings again.") from None
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.floating):
        raise SettingError(
            f"{name} holds a {array.dtype} array of shape {list(array.shape)}; identity embeddings are float "
            "[n, 512] or [1, n, 512] (n reference faces, 512 ArcFace values each)."
        )
    if not np.isfinite(array).all():
        raise SettingError(f"{name} contains NaN or infinite values; save the embeddings again.")
    return array.astype(np.float32)


def write_embedding_file(path: str, embeddings: np.ndarray, description: str = "") -> str:
    from safetensors.numpy import save_file

    save_file({SAFETENSORS_KEY: np.ascontiguousarray(embeddings, dtype=np.float32)}, path,
              metadata={"content": "ArcFace identity embeddings [n, 512]", "source": description})
    return path

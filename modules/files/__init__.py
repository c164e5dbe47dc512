"""Reading weight files safely: `checkpoint_file` opens .safetensors and pickled torch checkpoints with
`weights_only` (a pickle carrying code is refused) and describes their keys for error messages; `model_files` knows
where each model file goes inside a ComfyUI models folder and which of them a folder has. The lowest folder: it may
import only `errors` and `runtime`.
"""

"""Reading weight files safely: `checkpoint_file` opens .safetensors and pickled torch checkpoints with
`weights_only` (a pickle carrying code is refused) and describes their keys for error messages; `model_files` is the
one table of model files (folder, names, where to get them, the nodes that load them) and finds them in a folder. The lowest folder: it may
import only `errors` and `runtime`.
"""

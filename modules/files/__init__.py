"""Files on disk: `weight_file` reads .safetensors and pickled torch checkpoints safely (`weights_only`: a pickle
carrying code is refused) and describes their keys for error messages; `model_files` is the one table of model
files (folder, names, where to get them, the nodes that load them) and finds them in a folder; `json_files` writes
small JSON files whole or not at all. The lowest folder: it may import only `errors` and `runtime`.
"""

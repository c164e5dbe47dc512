"""Training UnAvgLip identity adapters (training.md) on data from `training_data` with the losses of
`loss_networks`: the trainable adapter (`trainable_adapter`), the losses and one step (`losses`, `training_step`),
checkpoints and resume (`checkpoints`), the loop and its presets (`trainer`, `presets`), the loss plot
(`loss_plot`) and the `prepare-data` / `train-adapter` commands (`training_commands`). It may import everything below
it in `modules.LAYERS`, `evaluation` included (validation metrics).
"""

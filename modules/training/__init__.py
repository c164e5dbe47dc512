"""Training UnAvgLip identity adapters (training.md) on data from `training_data` with the losses of
`loss_networks`: the trainable adapter (`trainable_adapter`), the losses and one step (`losses`, `training_step`),
checkpoints and resume (`checkpoints`), the loop and its presets (`trainer`, `presets`), the loss plot
(`loss_plot`) and the hook a lip-sync family hands the trainer (`training_target`). It may import everything below
it in `modules.LAYERS`, `evaluation` included (validation metrics).
"""

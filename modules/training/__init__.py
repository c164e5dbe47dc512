"""Training UnAvgLip identity adapters (training.md): the dataset made from videos (`dataset_files`,
`prepare_data`), the frozen networks the losses use (`vgg_features`, `wav2lip_syncnet`, `onnx_graph`,
`arcface_loss`), the trainable adapter (`trainable_adapter`), samples (`samples`), the losses and one step
(`losses`, `training_step`), checkpoints (`checkpoints`) and the loop (`trainer`, `presets`, `loss_plot`).
It may import everything below it in `modules.LAYERS`, `evaluation` included (validation metrics).
"""

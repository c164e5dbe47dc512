"""Training on several processes: one per GPU, on one machine or many, started by `torchrun`.

PyTorch distributed does the work (DistributedDataParallel, its collectives); this package only says which rank a
process is, which part of each batch it computes, and lets every rank agree on a stop. Alone (no torchrun) a run is
one rank of one and nothing here does anything. It may import `errors`, `runtime` and torch.
"""

"""A family's training hook for identity adapters: what the trainer trains against.

The trainer holds only this: the frozen network the adapter binds to, the version the training data must be
prepared for, a fresh adapter for it, and its forward with gradient. MuseTalk's UNet is the one today
(`families.musetalk_family`); a family without identity adapters has no such target.
"""

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..identity.identity_adapter import IdentityAdapter
from ..training_data.samples import Batch
from .trainable_adapter import new_adapter
from .training_step import Generated, TrainingVAE, adapted, generate, predict


@dataclass
class AdapterTarget:
    network: torch.nn.Module  # frozen; the adapter's processors are installed on it
    version: str  # the base version the training data must be prepared for ("v1.0", "v1.5")
    name: str  # for messages, e.g. "MuseTalk v1.0"

    def freeze(self) -> torch.nn.Module:
        return self.network.requires_grad_(False)

    def fingerprint(self) -> str:
        """A hash of the frozen weights: a resumed run must train against the same ones."""
        digest = hashlib.sha256()
        for name, tensor in self.network.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    def new_adapter(self, rank: int, seed: int, train_lora: bool) -> IdentityAdapter:
        return new_adapter(self.network, self.version, rank, seed=seed, train_lora=train_lora)

    @contextmanager
    def gradient_checkpointing(self, enabled: bool):
        network = self.network
        if not enabled or not hasattr(network, "enable_gradient_checkpointing"):
            yield
            return
        network.enable_gradient_checkpointing()
        try:
            yield
        finally:
            network.disable_gradient_checkpointing()

    def adapted(self, adapter: IdentityAdapter, lora_scale: float):
        """The adapter installed for a forward and its backward (see `training_step.adapted`)."""
        return adapted(self.network, adapter, lora_scale)

    def predict(self, vae: TrainingVAE, adapter: IdentityAdapter, batch: Batch, device, autocast_dtype,
                decode: bool, target_latents: bool) -> Generated:
        """The forward with gradient, inside `adapted`."""
        return predict(self.network, vae, adapter, batch, device, autocast_dtype, decode, target_latents)

    def generate(self, vae: TrainingVAE, adapter: IdentityAdapter, batch: Batch, lora_scale: float, device,
                 autocast_dtype, target_latents: bool) -> Generated:
        """The forward for validation, the adapter installed for it alone."""
        return generate(self.network, vae, adapter, batch, lora_scale, 1.0, device, autocast_dtype,
                        target_latents=target_latents)

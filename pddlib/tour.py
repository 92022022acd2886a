"""A tour of the UNet: its stages in call order, with shapes, parameters and FLOPs per stage.

diffusers' `UNet2DModel` runs: `conv_in` (image to feature maps), the timestep's sinusoidal
code through `time_embedding` (plus the class's `class_embedding`, added to it), the down
blocks (each halves the side except the last), `mid_block` (at the smallest side, with
attention), the up blocks (each doubles the side, taking the matching down block's outputs as
skip connections), then `conv_norm_out` and `conv_out` back to the input's channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import Attention

from pddlib.models import ModelConfig, build_unet, count_parameters


@dataclass(frozen=True)
class Stage:
    """One stage of the UNet's forward pass."""

    name: str  # attribute path in UNet2DModel, e.g. "down_blocks.1"
    block: str  # the diffusers class, e.g. "AttnDownBlock2D"
    shape_in: tuple[int, ...]  # per image: (channels, side, side), or (features,) for embeddings
    shape_out: tuple[int, ...]
    attention: bool  # holds self-attention layers
    params: int
    gflops: float  # forward pass of one image (convolutions and matmuls)


def stages_of(unet: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of each stage, in the order the forward pass calls them."""
    named = [("conv_in", unet.conv_in), ("time_embedding", unet.time_embedding)]
    if unet.class_embedding is not None:
        named.append(("class_embedding", unet.class_embedding))
    named += [(f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks)]
    named.append(("mid_block", unet.mid_block))
    named += [(f"up_blocks.{i}", b) for i, b in enumerate(unet.up_blocks)]
    return [*named, ("conv_norm_out", unet.conv_norm_out), ("conv_out", unet.conv_out)]


def unet_tour(config: ModelConfig, n_classes: int = 0) -> list[Stage]:
    """Every stage of the UNet that `config` builds, traced on one input (no weights computed)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = build_unet(config, [str(i) for i in range(n_classes)] or None)
        shapes: dict[str, tuple] = {}

        def recorder(name: str):
            def hook(module, args, kwargs, out) -> None:
                x = kwargs.get("hidden_states", args[0] if args else None)
                y = out[0] if isinstance(out, tuple) else out
                shapes[name] = (tuple(x.shape[1:]), tuple(y.shape[1:]))
            return hook

        named = stages_of(unet)
        handles = [m.register_forward_hook(recorder(n), with_kwargs=True) for n, m in named]
        x = torch.randn(1, config.in_channels, config.sample_size, config.sample_size)
        labels = torch.zeros(1, dtype=torch.long) if n_classes else None
        with FlopCounterMode(display=False, depth=2) as counter, torch.no_grad():
            unet(x, torch.tensor([10]), class_labels=labels)
        for h in handles:
            h.remove()
    flops = counter.get_flop_counts()
    return [Stage(n, type(m).__name__, *shapes[n],
                  any(isinstance(sub, Attention) for sub in m.modules()), count_parameters(m),
                  sum(flops.get(f"UNet2DModel.{n}", {}).values()) / 1e9) for n, m in named]

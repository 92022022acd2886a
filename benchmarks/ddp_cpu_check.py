"""Data-parallel training on two CPU processes gives the same model as one process.

    python benchmarks/ddp_cpu_check.py --out runs/ddp/one
    torchrun --nproc_per_node 2 benchmarks/ddp_cpu_check.py --out runs/ddp/two \
        --compare runs/ddp/one

On CPU, start the processes with torchrun: accelerate picks the multi-CPU (gloo) backend from
the WORLD_SIZE/RANK it sets. (`accelerate launch --cpu --num_processes 2` starts only one process
in accelerate 1.15 unless an MPI hostfile is given; on GPUs `accelerate launch --num_processes N`
is the usual way.)

The trainer draws every random number of a step for the whole global batch and gives each
process its slice, so both runs see the same batches; they differ only by the order of
floating-point sums (gradient all-reduce), hence a tolerance instead of equality.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import datasets
import numpy as np
from PIL import Image
from safetensors.torch import load_file

from pddlib.data.schema import features
from pddlib.recipes import tiny_config
from pddlib.runs import latest_checkpoint
from pddlib.training import train


def squares(n: int = 16) -> datasets.Dataset:
    """n tiny images in the common schema: red or blue squares on white."""
    feats = features(["red", "blue"])
    cols: dict[str, list] = {k: [""] * n for k in feats}
    images = []
    for i in range(n):
        a = np.full((16, 16, 3), 255, np.uint8)
        a[3 + i % 4:12, 4:12] = (200, 30, 30) if i % 2 == 0 else (30, 30, 200)
        images.append(Image.fromarray(a))
    cols.update(image=images, label=[i % 2 for i in range(n)], sha1=[f"{i:040x}" for i in range(n)],
                width=[16] * n, height=[16] * n)
    # Drawn for the tests, dedicated to the public domain: the trainer refuses rows without that.
    cols.update(source=["tests"] * n, source_url=["file://synthetic"] * n,
                license=["CC0"] * n, license_reason=["made for the tests"] * n)
    return datasets.Dataset.from_dict(cols, features=feats)


def main() -> None:
    """Train the tiny model for a few steps; optionally compare with another run's weights."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    cfg = tiny_config(max_steps=args.steps, checkpoint_every=args.steps, batch_size=8)
    result = train(cfg, squares(), args.out)
    import torch.distributed as dist

    if dist.is_initialized():
        print(f"rank {dist.get_rank()} of {dist.get_world_size()} done")
        if dist.get_rank() != 0:
            return
    print(f"trained {result.step} steps, loss {result.loss:.5f}")
    if args.compare:
        a = load_file(latest_checkpoint(args.out) / "unet/diffusion_pytorch_model.safetensors")
        b = load_file(latest_checkpoint(args.compare) / "unet/diffusion_pytorch_model.safetensors")
        diff = max((a[k] - b[k]).abs().max().item() for k in a)
        scale = max(b[k].abs().max().item() for k in b)
        print(f"max |weight difference| vs {args.compare}: {diff:.2e} (max |weight| {scale:.2f})")
        assert diff < 1e-4, "data-parallel run diverged from the single-process run"
        print("OK: two processes == one process (up to float reduction order)")


if __name__ == "__main__":
    main()

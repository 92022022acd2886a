"""A small image autoencoder for latent diffusion: images <-> latents a few times smaller.

Stable Diffusion's design at course scale: a diffusers `AutoencoderKL` is trained once on the
training images (reconstruction MSE plus a tiny KL term that keeps the latents smooth), then
the diffusion UNet learns to denoise its latents instead of pixels. With f = 4 a 32 px image
becomes 4 x 8 x 8 numbers, 12x fewer than its pixels, so each UNet step is far cheaper and the
UNet spends its capacity on layout and shape rather than on flat colour. The latents are scaled
to unit variance (the `scaling_factor` in the autoencoder's config, as in Stable Diffusion), so
the noise schedule means the same as it does for pixels in [-1, 1].
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from pddlib import runs
from pddlib.folders import RECOPY, REINSTALL, check_autoencoder, loaded
from pddlib.pixels import to_model, to_uint8
from pddlib.precision import default_device
from pddlib.progress import progress_bar

# Autoencoders that ship inside pddlib (pddlib/weights/NAME, fp16 safetensors with their
# training.json): a TrainConfig or a command line may name one instead of a folder.
SHIPPED = ("pd-ae32",)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape and training of the autoencoder."""

    sample_size: int = 32  # image side in pixels
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (32, 64, 128)  # each level after the first halves the side
    layers_per_block: int = 1
    norm_num_groups: int = 32
    steps: int = 1200  # optimizer steps
    batch_size: int = 32
    lr: float = 1e-3
    kl_weight: float = 1e-6  # small: the latents stay close to deterministic, just smooth
    seed: int = 0


def factor(vae: AutoencoderKL) -> int:
    """How many pixels per side one latent stands for."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def build_autoencoder(config: AutoencoderConfig) -> AutoencoderKL:
    """A fresh AutoencoderKL of that shape, initialised from config.seed."""
    n = len(config.block_out_channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=config.latent_channels,
            sample_size=config.sample_size, block_out_channels=config.block_out_channels,
            down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
            layers_per_block=config.layers_per_block, norm_num_groups=config.norm_num_groups)


def autoencoder_loss(vae: AutoencoderKL, x: torch.Tensor, kl_weight: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Reconstruction MSE of a latent drawn from the encoder's posterior, plus kl_weight x KL."""
    post = vae.encode(x).latent_dist
    # Drawn on the generator's device, then moved (a CPU generator draws alike everywhere).
    eps = torch.randn(post.mean.shape, generator=generator, device=generator.device)
    eps = eps.to(post.mean.device)
    z = post.mean + post.std * eps
    return F.mse_loss(vae.decode(z).sample, x) + kl_weight * post.kl().mean()


def train_autoencoder(x: torch.Tensor, config: AutoencoderConfig = AutoencoderConfig(),
                      progress: bool = True, device: str | torch.device | None = None,
                      ) -> AutoencoderKL:
    """Train on images x (N, 3, S, S) in [-1, 1] (random flips); set the latent scaling factor.

    device: where it trains and stays (default: the GPU if there is one, else the CPU).
    """
    device = torch.device(device) if device is not None else default_device()
    vae = build_autoencoder(config).to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)  # CPU draws: the same on every device
    b, x = config.batch_size, x.to(device)
    for _ in progress_bar(range(config.steps), desc="autoencoder", disable=not progress):
        idx = torch.randint(0, len(x), (b,), generator=g).to(device)
        flip = (torch.rand(b, 1, 1, 1, generator=g) < 0.5).to(device)
        xb = torch.where(flip, x[idx].flip(-1), x[idx])
        loss = autoencoder_loss(vae, xb, config.kl_weight, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    vae = vae.eval().requires_grad_(False)
    vae.register_to_config(scaling_factor=1.0)
    z = encode(vae, x)
    vae.register_to_config(scaling_factor=float(1 / z.std()))
    return vae


@torch.no_grad()
def encode(vae: AutoencoderKL, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Scaled latents (N, C, S/f, S/f) of images x (N, 3, S, S) in [-1, 1] (posterior means)."""
    z = [vae.encode(b.to(vae.device, vae.dtype)).latent_dist.mean for b in x.split(batch_size)]
    return torch.cat(z).float() * vae.config.scaling_factor


@torch.no_grad()
def decode(vae: AutoencoderKL, z: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Images (N, 3, S, S) in [-1, 1] (not clipped) from scaled latents."""
    out = [vae.decode(b.to(vae.device, vae.dtype) / vae.config.scaling_factor).sample
           for b in z.split(batch_size)]
    return torch.cat(out).float()


def roundtrip(vae: AutoencoderKL, images_uint8: np.ndarray) -> np.ndarray:
    """Images (N, S, S, 3) uint8 encoded and decoded: the softening every latent sample carries."""
    return to_uint8(decode(vae, encode(vae, to_model(images_uint8))))


def autoencoder_folder(name_or_folder: str | Path) -> Path:
    """The folder of a shipped autoencoder's name (SHIPPED), or the folder given."""
    if str(name_or_folder) in SHIPPED:
        return Path(str(resources.files("pddlib").joinpath("weights", str(name_or_folder))))
    return Path(name_or_folder)


def save_autoencoder(vae: AutoencoderKL, folder: str | Path, config: AutoencoderConfig,
                     **record) -> Path:
    """Save the weights (safetensors, in vae's dtype) and how they were made (training.json)."""
    folder = Path(folder)
    vae.save_pretrained(folder)
    info = {"config": asdict(config), **record}
    (folder / runs.TRAINING_RECORD).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return folder


def training_record(name_or_folder: str | Path) -> dict:
    """How a saved autoencoder was made (its training.json), or {} when it has none."""
    path = autoencoder_folder(name_or_folder) / runs.TRAINING_RECORD
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def load_autoencoder(name_or_folder: str | Path) -> AutoencoderKL:
    """Load a shipped (by name) or saved autoencoder in float32, once its folder checks out."""
    folder = autoencoder_folder(name_or_folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no autoencoder: name a shipped one "
                                f"({', '.join(SHIPPED)}) or train one with "
                                f"`python scripts/train_autoencoder.py --out {folder}`.")
    remedy = REINSTALL if str(name_or_folder) in SHIPPED else RECOPY
    check_autoencoder(folder, remedy=remedy)  # whole safetensors of its config's shapes, no code
    vae = loaded(folder, lambda: AutoencoderKL.from_pretrained(
        folder, use_safetensors=True, torch_dtype=torch.float32), remedy)
    return vae.eval().requires_grad_(False)

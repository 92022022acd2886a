"""The standard FID network: TensorFlow's 2015 InceptionV3 as ported by pytorch-fid, in plain torch.

Why not import it: pytorch-fid builds on torchvision, and torch-fidelity (which torchmetrics uses)
imports torchvision when its package loads; pddlib must not need torchvision. This file ports the
same graph (pytorch-fid's `fid_inception_v3` / torch-fidelity's `FeatureExtractorInceptionV3`,
Apache-2.0): torchvision's Inception3 names, so the standard weights file loads unchanged, with
the TF patches (average pools that ignore padding; max pool in the last block).
scripts/check_fid_port.py checks it bit-exact against torch-fidelity's graph (same weights).

Preprocessing follows torch-fidelity, which reproduces the original TensorFlow FID code: uint8
pixels, TF1 bilinear resize to 299 without antialiasing, then (x - 128) / 128. At 32 px the
resize only upsamples, where antialiasing changes nothing; what matters for comparability with
published 32 px numbers (CIFAR-10, computed with the TF code) is TF's resize arithmetic.

Weights are read from the local torch hub cache only, with `torch.load(weights_only=True)`;
`prefetch_weights()` (the CLI's `pddlib eval --prefetch-weights`) is the one place that
downloads.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pddlib.checksums import sha256
from pddlib.metrics.featurespace import Extractor, FeatureSpace
from pddlib.metrics.hub_cache import download, hub_checkpoint

FILENAME = "pt_inception-2015-12-05-6726825d.pth"
URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FILENAME}"
SHA256_PREFIX = "6726825d"  # torch.hub convention: the name carries the file's sha256 prefix
# torch-fidelity (and so torchmetrics) caches the same weights under this name.
ALTERNATIVE_FILENAMES = ("weights-inception-2015-12-05-6726825d.pth",)
INPUT_SIZE = 299
FEATURE_DIM = 2048


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as in TF) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, cout, H', W')."""
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x: torch.Tensor) -> torch.Tensor:
    """3x3 average pool, stride 1, whose border averages ignore the padding, as TF does."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled branches (Mixed_5b-d)."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, 35, 35) -> (N, 224 + pool_features, 35, 35)."""
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_tf(x)),
        ], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 288, 35, 35) -> (N, 768, 17, 17)."""
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b-e)."""

    def __init__(self, cin: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 768, 17, 17) -> (N, 768, 17, 17)."""
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool_tf(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 768, 17, 17) -> (N, 1280, 8, 8)."""
        b7 = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3,
                      self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7,
                          F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 branches (Mixed_7b: avg pool; Mixed_7c: max pool, as in TF)."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, 8, 8) -> (N, 2048, 8, 8)."""
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        # The FID graph's last block max-pools here (a quirk of the 2015 TF model, kept as is).
        pooled = _avg_pool_tf(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """InceptionV3 of the FID: uint8 images (N, 3, H, W) -> pool features (N, 2048)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        # 1008 ImageNet-2012 classes of the 2015 graph; unused by FID, kept so the weights load.
        self.fc = nn.Linear(2048, 1008)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float32 pool3 features (N, 2048)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        x = tf1_resize_bilinear(images.float(), INPUT_SIZE)
        x = (x - 128) / 128
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = getattr(self, name)(x)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                     "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))


def tf1_resize_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float (N, C, H, W) to (N, C, size, size) like TF1 `resize_bilinear` (align_corners=False).

    TF1 maps output pixel i to input coordinate i * in / out (no half-pixel offset, unlike
    torch's `interpolate`) and never antialiases; arithmetic in float32 as in torch-fidelity.
    """
    def axis(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(size, dtype=torch.float32, device=x.device) * torch.tensor(
            n_in / size, dtype=torch.float32, device=x.device)
        lo = pos.long()
        return lo, (lo + 1).clamp_max(n_in - 1), pos - lo.float()

    ylo, yhi, dy = axis(x.shape[2])
    xlo, xhi, dx = axis(x.shape[3])
    top, bottom = x[:, :, ylo, :], x[:, :, yhi, :]
    top = top[..., xlo] + (top[..., xhi] - top[..., xlo]) * dx
    bottom = bottom[..., xlo] + (bottom[..., xhi] - bottom[..., xlo]) * dx
    return top + (bottom - top) * dy[:, None]


# ---------------------------------------------------------------------------------------------
# Weights: local cache only; downloading is an explicit, separate step.
# ---------------------------------------------------------------------------------------------

def weights_path() -> Path:
    """Where the FID weights belong: <torch hub dir>/checkpoints/pt_inception-2015-12-05-6726825d.pth."""
    return hub_checkpoint(FILENAME)


def find_weights() -> Path | None:
    """The cached weights file (pytorch-fid's or torch-fidelity's name), or None."""
    folder = weights_path().parent
    for name in (FILENAME, *ALTERNATIVE_FILENAMES):
        if (folder / name).is_file():
            return folder / name
    return None


def missing_weights_message() -> str:
    """The one error message for an offline machine without the FID weights."""
    return (
        f"The FID Inception weights are not in the local torch cache: expected the file "
        f"{FILENAME} at {weights_path()} (sha256 starting {SHA256_PREFIX}). On a machine with "
        f"internet run `pddlib eval --prefetch-weights` (or download {URL}), then copy the file "
        f"to that path (the folder is $TORCH_HOME/hub/checkpoints, by default "
        f"~/.cache/torch/hub/checkpoints). Offline, use features='pdshape' instead "
        f"(reported as FD-pdshape, not FID)."
    )


def load_fid_inception(device: str | torch.device = "cpu") -> FIDInceptionV3:
    """Build the FID network with the standard weights from the local cache (never downloads)."""
    path = find_weights()
    if path is None:
        raise FileNotFoundError(missing_weights_message())
    digest = sha256(path)
    if not digest.startswith(SHA256_PREFIX):
        raise ValueError(f"{path} is not the FID Inception weights (sha256 {digest[:16]}..., "
                         f"expected {SHA256_PREFIX}...): delete it and fetch it again with "
                         f"`pddlib eval --prefetch-weights`.")
    # weights_only: tensors and plain containers only, never arbitrary pickled objects.
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = FIDInceptionV3()
    result = model.load_state_dict(state, strict=False)
    # Files saved before BatchNorm counted batches lack num_batches_tracked; nothing else may differ.
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"{path} does not match the FID InceptionV3 graph (missing {missing[:3]}, "
                         f"unexpected {result.unexpected_keys[:3]}).")
    return model.eval().requires_grad_(False).to(device)


def prefetch_weights(progress: bool = True) -> Path:
    """Download the FID weights into the torch hub cache (checking the sha256 prefix); return the path."""
    return find_weights() or download(URL, FILENAME, hash_prefix=SHA256_PREFIX, progress=progress)


# ---------------------------------------------------------------------------------------------
# The feature space "inception": FID
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def pool3(model: FIDInceptionV3, device: torch.device, batch_uint8: np.ndarray) -> np.ndarray:
    """pool3 features (B, 2048) float32 of one uint8 batch (the network resizes and normalises)."""
    x = torch.from_numpy(np.ascontiguousarray(batch_uint8)).to(device)
    return model(x.permute(0, 3, 1, 2).contiguous()).float().cpu().numpy()


def extractor(device: torch.device) -> Extractor:
    """The FID network as a feature map on `device` (fails now when its weights are not cached)."""
    model = load_fid_inception(device)
    # Small batches on CPU: every image becomes 299 px activations there.
    return Extractor("inception", f"inception-{SHA256_PREFIX}-tf1resize", None,
                     32 if device.type == "cpu" else 128, partial(pool3, model, device))


SPACE = FeatureSpace("inception", extractor, fd_name="FID")

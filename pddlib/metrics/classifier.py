"""A small clip-art classifier trained from scratch: a judge's network, augmented, a fixed step count.

One recipe behind two measurements: the shipped judges (scripts/train_judge.py trains them) and
the classification accuracy score (metrics.cas, which trains one on a model's samples). The
network is a judge's (judge.ARCHS), built fresh; the augmentation keeps what names a class -- its
shape -- and varies what should not: position, scale, a slight rotation, mirroring, hue (half the
batch, any angle), saturation, brightness, mild blur and noise, so that colour alone cannot name a
class. AdamW with a linear warm-up and a cosine decay to zero. Seeded throughout, CPU.
The same recipe can first train on another set (its own classes) and then fine-tune with a fresh
head (pretrain_then_finetune, measured by benchmarks/judge_corpus.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from pddlib.metrics.anchors import hue_rotation
from pddlib.metrics.judge import ARCHS
from pddlib.progress import progress_bar


@dataclass(frozen=True)
class ClassifierConfig:
    """How a classifier is trained (the defaults are the judges'); images seen at image_size px."""

    arch: str = "resnet"  # a key of judge.ARCHS
    image_size: int = 32  # the course's CPU resolution
    width: int = 32
    steps: int = 1020  # batches drawn (the judges: 60 passes over 1067 images in batches of 64)
    batch_size: int = 64
    lr: float = 2e-3  # AdamW peak, cosine-decayed to zero after a short warm-up
    weight_decay: float = 5e-2
    label_smoothing: float = 0.1
    hue_share: float = 0.5  # the share of a batch whose hue is turned (by any angle)
    grey_share: float = 0.1  # the share of a batch made grey


def uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    """n seeded draws from U(low, high)."""
    return torch.empty(n).uniform_(low, high, generator=g)


def warmup_cosine(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first 5 % of `total` steps, then a cosine decay to zero."""
    warmup = max(1, total // 20)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / total))))


def geometric(x: torch.Tensor, out_size: int, g: torch.Generator) -> torch.Tensor:
    """Random scale 0.8-1.15, rotation +-11 deg, shift +-6 %, mirror; white outside; pooled down."""
    n, _, s, _ = x.shape
    scale, angle = uniform(n, 0.8, 1.15, g), uniform(n, -0.2, 0.2, g)
    mirror = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    tx, ty = uniform(n, -0.12, 0.12, g), uniform(n, -0.12, 0.12, g)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * mirror, -sin, tx], 1),
                         torch.stack([sin * mirror, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (n, 3, s, s), align_corners=False)
    x = F.grid_sample(x - 1, grid, align_corners=False) + 1  # zero padding of x - 1 is white
    return F.avg_pool2d(x, s // out_size)


def photometric(x: torch.Tensor, g: torch.Generator, hue_share: float = 0.5,
                grey_share: float = 0.1) -> torch.Tensor:
    """Hue turned by any angle (hue_share of images); saturation, brightness, contrast; blur; noise."""
    n = len(x)
    angles = uniform(n, -math.pi, math.pi, g) * (torch.rand(n, generator=g) < hue_share)
    rot = torch.stack([torch.from_numpy(hue_rotation(float(a))).float() for a in angles])
    x = torch.einsum("nij,njhw->nihw", rot, x)
    grey = x.mean(1, keepdim=True)
    sat = uniform(n, 0.6, 1.3, g) * (torch.rand(n, generator=g) > grey_share)
    x = grey + (x - grey) * sat[:, None, None, None]
    x = x * uniform(n, 0.8, 1.2, g)[:, None, None, None] + uniform(n, -0.15, 0.15, g)[:, None, None, None]
    blur = torch.rand(n, generator=g) < 0.3
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        kernel = (k[:, None] * k[None]).expand(3, 1, 3, 3)
        x = x.clone()
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    sigma = uniform(n, 0, 0.12, g) * (torch.rand(n, generator=g) < 0.3)
    return (x + sigma[:, None, None, None] * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def batches(n: int, batch_size: int, steps: int, g: torch.Generator) -> Iterator[torch.Tensor]:
    """`steps` batches of indices, in passes over n items, each pass a fresh permutation."""
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=g)
        for i in range(0, min(n, (steps - done) * batch_size), batch_size):
            yield order[i:i + batch_size]
        done += math.ceil(n / batch_size)


def with_new_head(model: nn.Module, num_classes: int) -> nn.Module:
    """model (trained) with its last linear layer replaced by a fresh one for num_classes."""
    name, lin = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Linear(lin.in_features, num_classes))
    return model


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     config: ClassifierConfig, generator: torch.Generator, *, init_seed: int,
                     start: nn.Module | None = None, desc: str = "classifier",
                     progress: bool = False) -> nn.Module:
    """A network trained on config.steps batches of images (N, 3, S, S) in [-1, 1]; eval mode.

    The network is a fresh config.arch, or `start` (trained elsewhere, changed in place) with a
    fresh head for num_classes: fine-tuning. S is a multiple of config.image_size (augmented at
    S, average-pooled to image_size). A batch of one image (a pass's last) is drawn but not
    learnt from: BatchNorm needs more. generator draws the batches and the augmentation;
    init_seed seeds the layers' initialisation and dropout (torch's global generator, restored
    afterwards).
    """
    if len(images) < 2 or config.batch_size < 2:
        raise ValueError(f"training needs batches of 2 images or more: got {len(images)} images, "
                         f"batch size {config.batch_size}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = (ARCHS[config.arch](num_classes, config.width) if start is None
                 else with_new_head(start, num_classes)).to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        sched = warmup_cosine(opt, config.steps)
        model.train()
        bar = progress_bar(total=config.steps, desc=desc, disable=not progress)
        for step, idx in enumerate(batches(len(images), config.batch_size, config.steps, generator)):
            bar.update()
            if len(idx) < 2:
                continue
            x = photometric(geometric(images[idx], config.image_size, generator), generator,
                            config.hue_share, config.grey_share)
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)),
                                   labels[idx], label_smoothing=config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
    return model.eval()


def far_from(images: torch.Tensor, held: torch.Tensor, min_rms: float = 0.1) -> torch.Tensor:
    """Mask of images (N,3,S,S) whose 16x16 RMS distance to every held-out image (and its mirror) >= min_rms."""
    pool = held.shape[-1] // 16
    a, b = F.avg_pool2d(images, pool).flatten(1), F.avg_pool2d(held, pool).flatten(1)
    d = torch.cdist(a, b) / math.sqrt(a.shape[1])
    # A mirrored held-out image is the same drawing: keep it out of pretraining too.
    d = torch.minimum(d, torch.cdist(a, F.avg_pool2d(held.flip(3), pool).flatten(1)) / math.sqrt(a.shape[1]))
    return d.min(1).values >= min_rms


def pretrain_then_finetune(corpus: tuple[torch.Tensor, torch.Tensor, int],
                           task: tuple[torch.Tensor, torch.Tensor, int], config: ClassifierConfig,
                           pretrain_steps: int, seed: int, progress: bool = False) -> nn.Module:
    """Train on a corpus (images, labels, classes) with seed, then a fresh head on the task (seed + 1).

    Both stages are train_classifier with config (the task stage for config.steps batches);
    the corpus must not hold the task's held-out images (far_from).
    """
    (xc, yc, nc), (x, y, n) = corpus, task
    base = train_classifier(xc, yc, nc, replace(config, steps=pretrain_steps),
                            torch.Generator().manual_seed(seed), init_seed=seed,
                            desc=f"pretrain {seed}", progress=progress)
    return train_classifier(x, y, n, config, torch.Generator().manual_seed(seed + 1), init_seed=seed,
                            start=base, desc=f"fine-tune {seed}", progress=progress)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted class indices (N,) of images (N, 3, S, S) in [-1, 1] at the model's size."""
    model.eval()
    out = [model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

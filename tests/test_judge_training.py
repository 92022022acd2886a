"""How a judge can be trained on another set first: fine-tuning, seeding, held-out images kept out."""

from __future__ import annotations

from dataclasses import replace

import torch

from pddlib.metrics.classifier import (
    ClassifierConfig,
    far_from,
    pretrain_then_finetune,
    train_classifier,
)
from pddlib.metrics.judge import ShapeNet

TINY = ClassifierConfig(width=4, steps=2, batch_size=4)


def tiny_data(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n random 32 px images in [-1, 1] and their labels."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, classes, (n,), generator=g)


def test_fine_tuning_starts_from_the_pretrained_network_with_a_fresh_head() -> None:
    x, y = tiny_data(8, 3, 0)
    base = train_classifier(x, y, 3, TINY, torch.Generator().manual_seed(0), init_seed=0)
    stem = base.stem[0].weight.detach().clone()
    tuned = train_classifier(x[:4], y[:4] % 2, 2, replace(TINY, lr=0.0), torch.Generator(),
                             init_seed=1, start=base)
    assert tuned is base and tuned.head.out_features == 2
    torch.testing.assert_close(tuned.stem[0].weight, stem)  # lr 0: the body is the pretrained one


def test_pretrain_then_finetune_is_seeded() -> None:
    corpus, task = (*tiny_data(8, 4, 1), 4), (*tiny_data(8, 2, 2), 2)
    a, b, c = (pretrain_then_finetune(corpus, task, TINY, 2, seed) for seed in (0, 0, 1))
    assert isinstance(a, ShapeNet) and a.head.out_features == 2
    torch.testing.assert_close(a.state_dict(), b.state_dict())
    assert not torch.equal(a.head.weight, c.head.weight)


def test_far_from_keeps_held_out_images_and_their_mirrors_out() -> None:
    held = torch.zeros(2, 3, 64, 64)
    held[0, :, :, :20] = 1.0  # a bar at the left
    held[1, :, :32] = -1.0  # a dark upper half
    other = torch.zeros(1, 3, 64, 64)
    other[0, :, 40:, 10:50] = 1.0
    candidates = torch.cat([held[:1], held[:1].flip(3), held[1:] + 0.01, other])
    assert far_from(candidates, held).tolist() == [False, False, False, True]

"""The copy guard's descriptor: copies of training images are flagged, new images at the background."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pddlib.data import load_images
from pddlib.data.transforms import as_uint8
from pddlib.metrics import check_copies, replication
from pddlib.metrics.copydetect import copy_descriptors, record
from pddlib.metrics.replication import BACKGROUND_RATE


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return as_uint8(load_images("openclipart", split="train"), size=32)


def faint_soft_copy(image: np.ndarray, ink: float) -> np.ndarray:
    """A copy as a diffusion model draws one: lighter ink, blurred, mirrored."""
    faded = 255 - ink * (255 - image.astype(np.float64))
    soft = Image.fromarray(faded.round().astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    return np.asarray(soft)[:, ::-1].copy()


def test_the_descriptor_is_shipped_offline_and_says_how_it_was_made() -> None:
    meta = record()
    # Trained on images the guard never measures: none of the workshop set's, in either split.
    assert "less the workshop's 16-class set" in meta["data"] and "no pretrained weights" in meta["data"]
    corpus, workshop = load_images("pdcorpus"), load_images("openclipart")
    assert meta["n_train"] <= len(set(corpus["sha1"]) - set(workshop["sha1"]))
    assert meta["command"].startswith("python scripts/train_copy_detector.py")
    d = copy_descriptors(np.full((2, 16, 16, 3), 255, dtype=np.uint8))  # any size is resized
    assert d.shape == (2, meta["dim"])
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)


def test_faint_soft_mirrored_copies_are_flagged_as_copies_of_their_original(train) -> None:
    rows = np.arange(0, len(train), 17)[:48]
    copies = np.stack([faint_soft_copy(train[r], ink) for r, ink in zip(rows, np.linspace(0.5, 1, 48), strict=True)])
    check = check_copies(copies, train)
    assert check.space == "pdcopy" and 0.8 < check.threshold < 1
    assert check.flagged.mean() >= 0.9
    assert (check.index[check.flagged] == rows[check.flagged]).mean() >= 0.9
    # The pixel space, by contrast, misses such copies: it measures how much white is shared.
    assert check_copies(copies, train, space="pixel").flagged.mean() < 0.5


def test_the_threshold_is_calibrated_on_each_training_sets_own_background(train) -> None:
    held = as_uint8(load_images("openclipart", split="heldout"), size=32)
    full = replication(held, train, spaces=("pdcopy",))["pdcopy"]
    # By construction the training set's own near-duplicates pass at BACKGROUND_RATE; the
    # held-out control, never used to set it, comes out at that rate too: new real images are
    # flagged no more often than the collection's own near-duplicates.
    assert full.background_above_fraction == pytest.approx(BACKGROUND_RATE, abs=0.01)
    assert full.above_fraction <= full.background_above_fraction + 0.03
    assert check_copies(held, train).threshold == pytest.approx(full.threshold)
    # Sixteen distinct drawings come less close to each other than a thousand do: the bar drops.
    few = replication(held, train[:16], spaces=("pdcopy",))["pdcopy"]
    assert few.threshold < full.threshold - 0.1
    assert few.above_fraction < 0.15


def test_the_training_views_and_loss_behave() -> None:
    import torch
    from train_copy_detector import TrainConfig, copy_view, info_nce, train

    x = torch.rand(8, 3, 16, 16) * 2 - 1
    g = torch.Generator().manual_seed(0)
    v = copy_view(x, x.flip(-1), g)
    assert v.shape == x.shape and v.min() >= -1 and v.max() <= 1
    assert torch.equal(v, copy_view(x, x.flip(-1), torch.Generator().manual_seed(0)))  # seeded
    e = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    assert info_nce(e, e, 0.1) < info_nce(e, e.roll(1, 0), 0.1)  # matching views score lower
    model = train(x, x, TrainConfig(width=8, dim=16, epochs=1, batch_size=4))
    assert model(x).shape == (8, 16) and not model.training

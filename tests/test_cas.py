"""pddlib.metrics.classifier and .cas: the judges' training recipe, and the classification accuracy
score (a classifier trained on given images, tested on the real held-out split)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pddlib.data import load_images
from pddlib.data.transforms import as_uint8
from pddlib.metrics import cas, real_cas
from pddlib.metrics.anchors import colour_blobs, noise_images
from pddlib.metrics.cas import CAS_CLASSIFIER, accuracy_report, per_class_subset
from pddlib.metrics.classifier import batches, train_classifier

N = 16  # training images a class
FAST = replace(CAS_CLASSIFIER, steps=150)
CHANCE_BOUND = 0.16  # 1/16 plus about 4 SE on 118 test images; a one-class guess scores <= 0.1


@pytest.fixture(scope="module")
def train():
    return load_images("openclipart", split="train")


@pytest.fixture(scope="module")
def heldout():
    return load_images("openclipart", split="heldout")


@pytest.fixture(scope="module")
def real_subset(train) -> tuple[np.ndarray, list[int]]:
    """N training images a class at 32 px, and their labels."""
    subset = train.select(per_class_subset(train["label"], N, torch.Generator().manual_seed(0)))
    return as_uint8(subset, size=32), list(subset["label"])


@pytest.fixture(scope="module")
def real_score(train, heldout) -> dict:
    return real_cas(train, heldout, N, FAST, torch.Generator().manual_seed(0))


# --- pure parts --------------------------------------------------------------------------------

def test_the_report_holds_accuracy_its_binomial_se_and_per_class_figures() -> None:
    r = accuracy_report(np.array([0, 1, 1, 2, 0]), np.array([0, 1, 2, 2, 2]), ["a", "b", "c"],
                        np.array([3, 0, 2]))
    assert r["accuracy"] == 0.6 and r["n_test"] == 5
    assert r["se"] == pytest.approx(math.sqrt(0.6 * 0.4 / 5), rel=1e-12)
    assert r["per_class"] == pytest.approx({"a": 1.0, "b": 1.0, "c": 1 / 3})
    assert r["n_test_per_class"] == {"a": 1, "b": 1, "c": 3}
    assert r["n_train_per_class"] == {"a": 3, "b": 0, "c": 2}


def test_per_class_subset_takes_up_to_n_of_each_class_reproducibly() -> None:
    labels = [0] * 5 + [1] * 2 + [2] * 9
    idx = per_class_subset(labels, 3, torch.Generator().manual_seed(1))
    assert np.bincount(np.asarray(labels)[idx]).tolist() == [3, 2, 3]
    assert len(set(idx)) == len(idx)
    assert idx == per_class_subset(labels, 3, torch.Generator().manual_seed(1))


def test_batches_cover_each_pass_once_and_stop_at_the_step_count() -> None:
    got = list(batches(10, 4, 5, torch.Generator().manual_seed(0)))
    assert [len(b) for b in got] == [4, 4, 2, 4, 4]
    assert sorted(torch.cat(got[:3]).tolist()) == list(range(10))
    assert [len(b) for b in batches(9, 4, 3, torch.Generator())] == [4, 4, 1]


def test_training_refuses_batches_batchnorm_cannot_learn_from() -> None:
    x, y = torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match="2 images or more"):
        train_classifier(x, y, 2, CAS_CLASSIFIER, torch.Generator(), init_seed=0)


# --- CAS on images whose answer is known ---------------------------------------------------------

def test_real_images_teach_a_classifier_well_above_chance(real_score, heldout) -> None:
    names = heldout.features["label"].names
    assert real_score["n_test"] == len(heldout)
    assert set(real_score["per_class"]) == set(names)
    assert all(0 < n <= N for n in real_score["n_train_per_class"].values())
    assert real_score["accuracy"] > 0.3  # chance is 1/16
    assert real_score["se"] == pytest.approx(math.sqrt(
        real_score["accuracy"] * (1 - real_score["accuracy"]) / len(heldout)))


def test_shuffled_labels_teach_nothing(real_subset, heldout) -> None:
    images, labels = real_subset
    shuffled = np.random.default_rng(0).permutation(labels)
    r = cas(images, shuffled, heldout, FAST, torch.Generator().manual_seed(0))
    assert r["accuracy"] < CHANCE_BOUND


@pytest.mark.parametrize("kind", ["noise", "colour blobs"])
def test_noise_and_colour_blobs_score_near_chance(kind, real_subset, real_score, heldout) -> None:
    images, labels = real_subset
    fake = (noise_images(len(images), 32, torch.Generator().manual_seed(0)) if kind == "noise"
            else colour_blobs(images))
    r = cas(fake, labels, heldout, FAST, torch.Generator().manual_seed(0))
    assert r["accuracy"] < CHANCE_BOUND
    assert r["accuracy"] < real_score["accuracy"] / 2


def test_cas_is_deterministic_and_leaves_torchs_generator_alone(real_subset, heldout) -> None:
    images, labels = real_subset
    quick = replace(FAST, steps=5)
    state = torch.get_rng_state()
    a = cas(images, labels, heldout, quick, torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert cas(images, labels, heldout, quick, torch.Generator().manual_seed(3)) == a


def test_cas_takes_class_names_and_refuses_mismatches(real_subset, heldout) -> None:
    images, labels = real_subset
    names = heldout.features["label"].names
    quick = replace(FAST, steps=2)
    by_name = cas(images, [names[i] for i in labels], heldout, quick, torch.Generator())
    assert by_name == cas(images, labels, heldout, quick, torch.Generator())
    with pytest.raises(ValueError, match="labels"):
        cas(images, labels[:-1], heldout, quick)
    with pytest.raises(ValueError, match="Unknown class name"):
        cas(images[:2], ["bird", "unicorn"], heldout, quick)

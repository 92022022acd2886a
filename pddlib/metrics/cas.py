"""The classification accuracy score (CAS; Ravuri & Vinyals 2019): can a model's samples teach a
classifier to name real images?

Class agreement asks a fixed judge whether each sample looks like its class; on good models it
saturates, and a sample that meets the judge's shortcuts passes. CAS turns the question round: a
fresh classifier (metrics.classifier: the judges' recipe, smaller, every image's hue turned so
that a palette names nothing) learns the classes from N generated images a class only, and is
tested on the real held-out split. Samples that carry each class's shapes teach it; blobs, or
samples that all look alike, teach little a real drawing shares. The same recipe trained on N
real training images a class is the ceiling ("real CAS").

The standard error is the test set's binomial one, sqrt(a (1 - a) / n_test). The classifier's
own seed adds a spread beside it: repeat with other generators to see it. The held-out split is
small (about 7 images a class), so a per-class accuracy is coarse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from pddlib.batches import class_names_of_dataset
from pddlib.data.transforms import as_uint8
from pddlib.labels import indices_of
from pddlib.metrics.classifier import ClassifierConfig, predict, train_classifier
from pddlib.pixels import to_model

# The judges' network at half width and a few hundred steps (cheap on a CPU), every training
# image's hue turned: with only the judges' half turned, a palette alone taught it enough for
# colour blobs to score well above chance (benchmarks/RESULTS.md, CAS).
CAS_CLASSIFIER = ClassifierConfig(width=16, steps=300, hue_share=1.0)


def accuracy_report(predicted: np.ndarray, truth: np.ndarray, names: Sequence[str],
                    n_train: np.ndarray) -> dict:
    """Accuracy of predicted against true class indices: overall with its binomial SE, per class."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    hits = predicted == truth
    if not len(hits):
        raise ValueError("no test images to score")
    acc = float(hits.mean())
    present = [c for c in range(len(names)) if (truth == c).any()]
    return {"accuracy": acc, "se": math.sqrt(acc * (1 - acc) / len(hits)), "n_test": len(hits),
            "per_class": {names[c]: float(hits[truth == c].mean()) for c in present},
            "n_test_per_class": {names[c]: int((truth == c).sum()) for c in present},
            "n_train_per_class": {name: int(n) for name, n in zip(names, n_train, strict=True)}}


def cas(generated_uint8: np.ndarray, generated_labels: Sequence[int | str], real_heldout,
        config: ClassifierConfig = CAS_CLASSIFIER, generator: torch.Generator | None = None) -> dict:
    """Train a classifier on the generated images, report its accuracy on the real held-out set.

    generated_uint8: (N, S, S, 3), brought to config.image_size; generated_labels: class names
    or indices of real_heldout's classes. Returns accuracy, se, n_test, per_class {class:
    accuracy}, n_test_per_class and n_train_per_class. generator: seeds everything (default 0).
    """
    names = class_names_of_dataset(real_heldout)
    y = torch.tensor(indices_of(list(generated_labels), names, "the held-out set"), dtype=torch.long)
    x = to_model(as_uint8(generated_uint8, size=config.image_size))
    if len(x) != len(y):
        raise ValueError(f"got {len(x)} images but {len(y)} labels")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    init_seed = int(torch.randint(0, 2**31 - 1, (), generator=g))
    model = train_classifier(x, y, len(names), config, g, init_seed=init_seed)
    predicted = predict(model, to_model(as_uint8(real_heldout, size=config.image_size)))
    counts = np.bincount(y.numpy(), minlength=len(names))
    return accuracy_report(predicted.numpy(), np.asarray(real_heldout["label"]), names, counts)


def per_class_subset(labels: Sequence[int], n_per_class: int, generator: torch.Generator) -> list[int]:
    """Indices of up to n_per_class items of each class, drawn at random, in class order."""
    labels = np.asarray(labels)
    out: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        order = torch.randperm(len(members), generator=generator)[:n_per_class].numpy()
        out += members[np.sort(order)].tolist()
    return out


def real_cas(real_train, real_heldout, n_per_class: int, config: ClassifierConfig = CAS_CLASSIFIER,
             generator: torch.Generator | None = None) -> dict:
    """The ceiling: CAS of up to n_per_class real training images a class (drawn by generator)."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    subset = real_train.select(per_class_subset(real_train["label"], n_per_class, g))
    return cas(as_uint8(subset, size=config.image_size), subset["label"], real_heldout, config, g)

"""The two types of a feature space: its loaded feature map, and how images are compared there.

A feature space turns images into vectors and says how to measure between them. Every measurement
that compares images through vectors takes one by name from the registry (pddlib.metrics.spaces):
FD / KID / precision-recall, replication, the copy guard and `pddlib eval --features`. The types
live apart from the registry so that a space's own module can build one without importing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# How nearest neighbours are measured: 1 - cosine, or the L2 distance / sqrt(D) (for pixels in
# [0, 1]: the RMS pixel difference, itself in [0, 1]).
DISTANCES = ("cosine", "rms")


@dataclass(frozen=True)
class Extractor:
    """A loaded feature map: uint8 images (B, S, S, 3) -> vectors (B, D), one batch per call."""

    name: str
    key: str | None  # names the map and its weights in the feature cache; None: never cached
    size: int | None  # side images are brought to first (square-padded on white); None: as given
    batch_size: int
    embed: Callable[[np.ndarray], np.ndarray]  # one uint8 batch -> numpy vectors (B, D)

    def __call__(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Vectors (B, D) of one batch."""
        return self.embed(batch_uint8)


def always_available() -> str | None:
    """No reason a space cannot run here (the default of FeatureSpace.missing)."""
    return None


@dataclass(frozen=True)
class FeatureSpace:
    """A named space images are compared in: how to load its feature map and how to measure there."""

    name: str
    load: Callable[[torch.device], Extractor]  # builds the feature map on a device
    fd_name: str | None = None  # what FD here is reported as; None: not a sample-quality space
    distance: str = "cosine"  # nearest neighbours: a name in DISTANCES
    centre: bool = False  # subtract the training set's mean vector before comparing (cosine)
    threshold: float | None = None  # copy similarity threshold; None: calibrated per training set
    replication: bool = False  # offered to replication() and check_copies()
    missing: Callable[[], str | None] = always_available  # why it cannot run here, or None

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f"space {self.name!r}: distance must be one of {DISTANCES}, "
                             f"got {self.distance!r}")

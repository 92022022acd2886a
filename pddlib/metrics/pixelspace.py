"""The "pixel" space: an image's own values in [0, 1] as its vector, compared by RMS difference."""

from __future__ import annotations

import numpy as np
import torch

from pddlib.metrics.featurespace import Extractor, FeatureSpace
from pddlib.pixels import uint8_to_unit


def pixel_vectors(images_uint8: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float64 (N, D) in [0, 1] (float64: an exact copy gets distance 0)."""
    return uint8_to_unit(images_uint8.reshape(len(images_uint8), -1), torch.float64).numpy()


def extractor(device: torch.device) -> Extractor:
    """The pixel map (the same on every device; never cached: reading pixels is the cheap part)."""
    return Extractor("pixel", None, None, 1024, pixel_vectors)


# Pixels only catch near-exact copies: a softened or shifted copy on white is already far away.
# No fixed threshold: a fixed one (0.95 once) flagged nothing, obvious copies included, because
# how close two drawings on white come depends on the collection; so it is calibrated on each
# training set's own background, as pdcopy's is.
SPACE = FeatureSpace("pixel", extractor, distance="rms", replication=True)

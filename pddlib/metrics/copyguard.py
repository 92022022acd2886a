"""The copy guard: flag generated images that come too close to a training image, before sharing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pddlib.metrics.replication import replication


@dataclass(frozen=True)
class CopyCheck:
    """Which generated images come closer to a training image than the threshold."""

    space: str
    threshold: float  # similarity
    flagged: np.ndarray  # (N,) bool
    index: np.ndarray  # (N,) nearest training row
    similarity: np.ndarray  # (N,)

    @property
    def ok(self) -> bool:
        """True when no sample is flagged."""
        return not bool(self.flagged.any())

    def __str__(self) -> str:
        bad = np.flatnonzero(self.flagged)
        if not len(bad):
            return (f"no near-copies: all {len(self.flagged)} samples have {self.space} "
                    f"similarity <= {self.threshold} to every training image")
        pairs = ", ".join(f"sample {i} ~ training row {self.index[i]} ({self.similarity[i]:.3f})"
                          for i in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        return (f"{len(bad)} of {len(self.flagged)} samples are near-copies of training images "
                f"({self.space} similarity > {self.threshold}): {pairs}{more}")


def check_copies(images, train, *, space: str = "pdcopy", threshold: float | None = None,
                 flips: bool = True) -> CopyCheck:
    """Flag generated images more similar than `threshold` to a training image (or its mirror).

    The guard to run before sharing samples: `check = check_copies(pipe(...).images, train)`,
    then keep `[im for im, bad in zip(images, check.flagged) if not bad]`. space: any replication
    space (pddlib.metrics.spaces). threshold: default the space's own; pdcopy's is calibrated on
    `train` (pddlib.metrics.replication.calibrated_threshold).
    """
    report = replication(images, train, spaces=(space,), flips=flips, k=2, background=False,
                         thresholds=None if threshold is None else {space: threshold})
    r = report[space]
    sim = r.neighbours.similarity
    return CopyCheck(space, r.threshold, sim > r.threshold, r.neighbours.index[:, 0], sim)

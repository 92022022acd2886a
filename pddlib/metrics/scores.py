"""Sample-quality scores by name: each a function of (real, fake) features that fills named values.

One dict of named values travels from here to every reader: QualityReport.scores, the JSON of
`pddlib eval`, metrics.json (pddlib.provenance.eval_metrics) and the model card's table. A new
score is one function added to SCORES; it then shows up in all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from pddlib.metrics.frechet import fd_from_features
from pddlib.metrics.kid import kid_from_features
from pddlib.metrics.prdc import precision_recall_from_features


@dataclass(frozen=True)
class ScoreSettings:
    """How scores subsample: precision / recall's neighbours, KID's subsets, one seed for all."""

    k: int = 3
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    seed: int = 0


ScoreFn = Callable[[np.ndarray, np.ndarray, ScoreSettings], dict[str, float]]


def fd_score(f_real: np.ndarray, f_fake: np.ndarray, s: ScoreSettings) -> dict[str, float]:
    """{"fd": the Frechet distance} (reported as FID or FD-<judge>, by the space)."""
    return {"fd": fd_from_features(f_real, f_fake)}


def kid_score(f_real: np.ndarray, f_fake: np.ndarray, s: ScoreSettings) -> dict[str, float]:
    """{"kid", "kid_std"}: mean and spread of the unbiased KID over random subsets."""
    mean, std = kid_from_features(f_real, f_fake, subset_size=s.kid_subset_size,
                                  n_subsets=s.kid_subsets, seed=s.seed)
    return {"kid": mean, "kid_std": std}


def pr_score(f_real: np.ndarray, f_fake: np.ndarray, s: ScoreSettings) -> dict[str, float]:
    """{"precision", "recall"}: k-NN realism and coverage (pddlib.metrics.prdc)."""
    pr = precision_recall_from_features(f_real, f_fake, k=s.k, seed=s.seed)
    return {"precision": pr.precision, "recall": pr.recall}


# In the order they are reported; "fd" first: it names a result (FID, FD-<judge>).
SCORES: dict[str, ScoreFn] = {"fd": fd_score, "kid": kid_score, "precision_recall": pr_score}


def score_all(f_real: np.ndarray, f_fake: np.ndarray,
              settings: ScoreSettings = ScoreSettings()) -> dict[str, float]:
    """Every registered score of fake against real features, as one dict of named values."""
    out: dict[str, float] = {}
    for fn in SCORES.values():
        out.update(fn(f_real, f_fake, settings))
    return out


# ---------------------------------------------------------------- how a score is shown

# Label and decimals of scores that need their own; any other: its name with spaces, 3 decimals.
SHOWN = {"kid": ("KID", 4)}


def label(name: str) -> str:
    """How a score is titled in text and tables ("kid" -> "KID", "class_agreement" -> "class agreement")."""
    return SHOWN.get(name, (name.replace("_", " "), 3))[0]


def formatted(name: str, value: float) -> str:
    """A score's value with its decimals."""
    return f"{value:.{SHOWN.get(name, ('', 3))[1]}f}"


def is_spread(name: str, names: Iterable[str]) -> bool:
    """True for "<x>_std" beside "<x>": the spread of x, shown with x rather than on its own."""
    return name.endswith("_std") and name[:-len("_std")] in set(names)

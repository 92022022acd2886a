"""Images trained on without a class: more drawings for the denoiser, none for the class labels.

A class-conditional model already learns an unconditional denoiser (label dropout, for
guidance). Rows labelled UNLABELLED carry the no-class label too: they shape the model's
unconditional prediction and nothing it learns about a class by name, so a larger public-domain
corpus filed under other classes can still teach the model to draw, while each workshop image is
seen less often per step (copying grows with the passes over each image, benchmarks/RESULTS.md).
"""

from __future__ import annotations

import datasets

from pddlib.data.dedup import duplicates_in
from pddlib.data.transforms import as_uint8

UNLABELLED = -1  # the label of a row without a class (datasets' ClassLabel allows -1)


def outside(extra: datasets.Dataset, avoid: datasets.Dataset) -> datasets.Dataset:
    """Rows of `extra` that are not, and do not duplicate or mirror, any image of `avoid`.

    Pass the labelled source whole (both splits): a held-out image's twin trained on would leak
    into the control that copying is measured against.
    """
    shared = set(avoid["sha1"])
    rows = [i for i, s in enumerate(extra["sha1"]) if s not in shared]
    twins = duplicates_in(as_uint8(extra.select(rows), size=64), as_uint8(avoid, size=64))
    return extra.select([r for r, t in zip(rows, twins, strict=True) if t < 0])


def with_unlabelled(labelled: datasets.Dataset, extra: datasets.Dataset) -> datasets.Dataset:
    """`labelled` followed by `extra`'s rows labelled UNLABELLED (labelled's class names kept)."""
    rows = extra.remove_columns("label").add_column("label", [UNLABELLED] * len(extra))
    rows = rows.select_columns(labelled.column_names).cast(labelled.features)
    return datasets.concatenate_datasets([labelled, rows])

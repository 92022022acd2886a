"""Class labels given by name or by index, turned into indices with one clear error."""

from __future__ import annotations

from collections.abc import Sequence


def indices_of(labels: Sequence[int | str], names: Sequence[str], owner: str) -> list[int]:
    """Indices into `names` of labels given as names or indices; `owner` names who knows them."""
    names = list(names)
    out = []
    for label in labels:
        if isinstance(label, str):
            if label not in names:
                raise ValueError(f"Unknown class name {label!r}: {owner} knows {names}.")
            out.append(names.index(label))
        elif 0 <= int(label) < len(names):
            out.append(int(label))
        else:
            raise ValueError(f"Class index {label} out of range: {owner} has {len(names)} "
                             f"classes (0..{len(names) - 1}): {names}.")
    return out



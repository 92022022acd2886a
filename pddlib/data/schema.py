"""The common dataset schema every image source yields (README.md, "Architecture").

Every loader (the embedded clip art, a scraped Commons folder) returns a `datasets.Dataset`
with these columns, so training, provenance and metrics never ask where images came from.
"""

from __future__ import annotations

import datasets

COLUMNS = (
    "image", "label", "title", "source", "source_url", "author",
    "license", "license_url", "license_reason", "sha1", "width", "height",
)
TEXT_COLUMNS = ("title", "source", "source_url", "author", "license", "license_url",
                "license_reason", "sha1")


def features(class_names: list[str]) -> datasets.Features:
    """Return the `datasets.Features` of the common schema with the given class names."""
    cols = {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(class_names))}
    cols.update({name: datasets.Value("string") for name in TEXT_COLUMNS})
    cols.update({"width": datasets.Value("int32"), "height": datasets.Value("int32")})
    return datasets.Features({name: cols[name] for name in COLUMNS})

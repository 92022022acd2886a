"""The common dataset schema every image source yields, and a dataset folder's file layout.

Every loader (the embedded clip art, a scraped Commons folder) returns a `datasets.Dataset`
with these columns, so training, provenance and metrics never ask where images came from
(README.md, "Architecture"). A dataset folder, as `pddlib scrape` writes it and
`load_images(DIR)` reads it, is an HF imagefolder: DIR/images/ + DIR/metadata.jsonl, plus the
scraper's own DIR/decisions.jsonl and DIR/scrape_state.json.
"""

from __future__ import annotations

import datasets

COLUMNS = (
    "image", "label", "title", "source", "source_url", "author",
    "license", "license_url", "license_reason", "sha1", "width", "height",
)
TEXT_COLUMNS = ("title", "source", "source_url", "author", "license", "license_url",
                "license_reason", "sha1")

# A dataset folder's names, spelled here only.
IMAGES = "images"                  # subfolder of the image files
METADATA = "metadata.jsonl"        # one row per image: file_name + the columns above
DECISIONS = "decisions.jsonl"      # every candidate the scraper saw, with its decision and why
STATE = "scrape_state.json"        # the scraper's walk position and per-item status


def features(class_names: list[str]) -> datasets.Features:
    """Return the `datasets.Features` of the common schema with the given class names."""
    cols = {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(class_names))}
    cols.update({name: datasets.Value("string") for name in TEXT_COLUMNS})
    cols.update({"width": datasets.Value("int32"), "height": datasets.Value("int32")})
    return datasets.Features({name: cols[name] for name in COLUMNS})

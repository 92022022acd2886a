"""The embedded public-domain datasets, shipped inside the package and loaded offline.

    openclipart  openclipart64.npz  Open Clip Art Library 0.18 as Debian ships it: 16 classes,
                                    the workshop's set (scripts/build_openclipart.py)
    pdcorpus     pdcorpus64.npz     four public-domain sources, more images in broader classes
                                    (scripts/build_corpus.py; datasheet PDCORPUS.md)

Layout of both files, all arrays plain (read with allow_pickle=False, never unpickled):
  images  uint8  (N, 64, 64, 3)   RGB on white, square-padded
  labels  int64  (N,)             index into meta["class_names"]
  meta    uint8  (B,)             UTF-8 JSON: {"class_names": [...], "records": [{schema text
                                  columns + width, height, ...}, ...], "build": {...}}
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from pddlib.data import checks
from pddlib.data.schema import features

SETS = {"openclipart": "openclipart64.npz", "pdcorpus": "pdcorpus64.npz"}
REBUILD = {"openclipart": "python scripts/build_openclipart.py",
           "pdcorpus": "python scripts/build_corpus.py --cache DIR --out DIR --download --install"}
FILENAME = SETS["openclipart"]
SOURCE = "openclipart"


def data_path(name: str = SOURCE) -> Path:
    """Path of an embedded dataset file inside the installed package."""
    return Path(str(resources.files("pddlib.data").joinpath(SETS[name])))


@lru_cache(maxsize=2)
def read_arrays(path: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read (images (N,64,64,3) uint8, labels (N,) int64, meta dict) from an embedded file."""
    file = Path(path) if path else data_path()
    if not file.is_file():
        name = next((k for k, v in SETS.items() if v == file.name), SOURCE)
        raise FileNotFoundError(
            f"The embedded dataset {file} is missing. Reinstall pddlib from a full checkout, "
            f"or rebuild it with `{REBUILD[name]}`."
        )
    with np.load(file, allow_pickle=False) as npz:
        images, labels, meta = npz["images"], npz["labels"], npz["meta"]
    return images, labels.astype(np.int64), json.loads(meta.tobytes().decode("utf-8"))


def load(path: str | None = None) -> datasets.Dataset:
    """Return an embedded set (default: the clip art) as a `datasets.Dataset`, common schema."""
    # Encoding 1 000+ images into Arrow takes a second or two; do it once per process and hand
    # out fresh views, so a caller's set_format/set_transform never reaches the next caller.
    cached = build_dataset(path)
    return cached.select(range(len(cached)))


@lru_cache(maxsize=2)
def build_dataset(path: str | None = None) -> datasets.Dataset:
    """Build the Arrow-backed dataset from the embedded arrays (cached; use `load`)."""
    images, labels, meta = read_arrays(path)
    records = meta["records"]
    # The same licence check as every other source: a row without an accepted decision is out.
    keep = [i for i, r in enumerate(records) if not checks.row_problems(r)]
    if len(keep) < len(records):
        report = checks.LoadReport(str(path or data_path()), kept=len(keep), excluded=[
            checks.Exclusion(i + 1, r.get("title", ""), "licence not accepted: "
                             + "; ".join(checks.row_problems(r)))
            for i, r in enumerate(records) if checks.row_problems(r)])
        report.warn()
        records, images, labels = [records[i] for i in keep], images[keep], labels[keep]
    columns: dict[str, list] = {name: [r[name] for r in records] for name in records[0]}
    columns["image"] = [Image.fromarray(a) for a in images]
    columns["label"] = labels.tolist()
    feats = features(meta["class_names"])
    return datasets.Dataset.from_dict({k: columns[k] for k in feats}, features=feats)

"""`load_images`: one entry point for every image source, always the common schema."""

from __future__ import annotations

import hashlib
from pathlib import Path

import datasets
import numpy as np

from pddlib.data import checks, embedded
from pddlib.data.schema import COLUMNS, METADATA, features

SPLITS = ("train", "heldout")


def stratified_split(
    labels: list[int], keys: list[str], heldout_fraction: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Split row indices into (train, heldout), stratified by label and deterministic.

    Each row's side depends only on its key (the image's sha1), the seed and its class size,
    so the split never changes with row order and a held-out image never leaks into train.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    heldout: list[int] = []
    for idx in by_class.values():
        ranked = sorted(idx, key=lambda i: hashlib.sha1(f"{seed}:{keys[i]}".encode()).hexdigest())
        # Every class with two or more images keeps at least one held out.
        n_held = max(1, round(heldout_fraction * len(ranked))) if len(ranked) > 1 else 0
        heldout.extend(ranked[:n_held])
    held = set(heldout)
    return [i for i in range(len(labels)) if i not in held], sorted(held)


def load_folder(path: Path) -> datasets.Dataset:
    """Load a scraped (or hand-made) folder: metadata.jsonl + images, every row checked.

    Rows that fail a check (pddlib.data.checks) are left out with their reason, and an
    ExcludedRowsWarning says which; a malformed metadata line refuses the whole load.
    """
    meta_file = path / METADATA
    if not meta_file.is_file():
        raise ValueError(
            f"{path} is not a scraped dataset: expected an imagefolder with {METADATA} "
            "(written by `pddlib scrape`), or use source='openclipart'."
        )
    rows = checks.read_metadata(meta_file)
    if not rows:
        raise ValueError(f"{meta_file} lists no images; scrape some first (`pddlib scrape`).")
    report = checks.LoadReport(str(path))
    kept, images, seen, folder = [], [], {}, path.resolve()
    for line, row in rows:
        try:
            images.append(checks.check_row(folder, row, seen))
        except ValueError as e:
            report.excluded.append(checks.Exclusion(line, str(row.get("file_name")), str(e)))
            continue
        seen[row["sha1"]] = line
        kept.append(row)
    report.kept = len(kept)
    class_names = sorted({str(r["label"]) for r in kept})
    report.empty_classes = sorted({str(r["label"]) for _, r in rows} - set(class_names))
    if not kept:
        raise ValueError("No usable images: " + " ".join(report.lines()))
    report.warn()
    cols = {c: [r[c] for r in kept] for c in COLUMNS if c not in ("image", "label")}
    cols["label"] = [class_names.index(str(r["label"])) for r in kept]
    cols["image"] = images
    return datasets.Dataset.from_dict({c: cols[c] for c in COLUMNS},
                                      features=features(class_names))


def load_images(
    source: str | Path = "openclipart",
    split: str | None = None,
    *,
    heldout_fraction: float = 0.1,
    seed: int = 0,
) -> datasets.Dataset:
    """Load an embedded set ("openclipart", "pdcorpus") or a scraped folder; split None/train/heldout."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be None, 'train' or 'heldout', got {split!r}")
    if str(source) == embedded.SOURCE:
        ds = embedded.load()
    elif str(source) in embedded.SETS:
        ds = embedded.load(str(embedded.data_path(str(source))))
    elif Path(source).is_dir():
        ds = load_folder(Path(source))
    else:
        raise ValueError(
            f"Unknown image source {str(source)!r}: expected 'openclipart' (the embedded "
            "16-class set), 'pdcorpus' (the embedded multi-source corpus) or the folder of a "
            f"scraped dataset (with {METADATA})."
        )
    if split is None:
        return ds
    train, heldout = stratified_split(ds["label"], ds["sha1"], heldout_fraction, seed)
    return ds.select(train if split == "train" else heldout)


def class_counts(ds: datasets.Dataset) -> dict[str, int]:
    """Return {class name: number of rows} for a dataset with the common schema."""
    names = ds.features["label"].names
    counts = np.bincount(np.asarray(ds["label"], dtype=np.int64), minlength=len(names))
    return dict(zip(names, counts.tolist(), strict=True))

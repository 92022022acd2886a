"""load_images on a scraped-style folder, the stratified split, and the tensor transforms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pddlib.data import COLUMNS, class_counts, load_images, stratified_split, to_pil, to_tensor
from pddlib.data.schema import DECISIONS, IMAGES, METADATA, STATE


def write_folder(root: Path, labels: list[str]) -> Path:
    """Write a tiny imagefolder with metadata.jsonl in the scraper's layout."""
    (root / IMAGES).mkdir(parents=True)
    with (root / METADATA).open("w") as f:
        for i, label in enumerate(labels):
            colour = (i * 37 % 256, i * 91 % 256, 200)
            Image.new("RGB", (12, 10), colour).save(root / IMAGES / f"{i:03d}.png")
            row = {
                "file_name": f"{IMAGES}/{i:03d}.png", "label": label, "title": f"File:{i}.png",
                "source": "wikimedia-commons", "source_url": f"https://example.test/{i}",
                "author": "Anon", "license": "Public domain", "license_url": "",
                "license_reason": "pd + PD category", "sha1": f"{i:040x}",
                "width": 12, "height": 10,
            }
            f.write(json.dumps(row) + "\n")
    return root


def test_folder_loads_in_common_schema(tmp_path: Path) -> None:
    ds = load_images(write_folder(tmp_path / "scraped", ["cat", "dog", "cat", "ship"]))
    assert ds.column_names == list(COLUMNS)
    assert ds.features["label"].names == ["cat", "dog", "ship"]
    assert [ds.features["label"].int2str(y) for y in ds["label"]] == ["cat", "dog", "cat", "ship"]
    assert ds[0]["image"].mode == "RGB" and ds[0]["image"].size == (12, 10)
    assert ds[3]["sha1"] == f"{3:040x}" and ds[3]["width"] == 12
    assert class_counts(ds) == {"cat": 2, "dog": 1, "ship": 1}


def test_unknown_source_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected 'openclipart'.*metadata.jsonl"):
        load_images("imagenet")
    with pytest.raises(ValueError, match="not a scraped dataset.*metadata.jsonl"):
        load_images(tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        load_images(tmp_path, split="test")


def test_folder_layout_keeps_its_names() -> None:
    # HF's imagefolder reads only metadata.jsonl, and scrape folders already made must resume.
    assert (IMAGES, METADATA, DECISIONS, STATE) == (
        "images", "metadata.jsonl", "decisions.jsonl", "scrape_state.json")


def test_folder_missing_schema_columns(tmp_path: Path) -> None:
    (tmp_path / METADATA).write_text(json.dumps({"file_name": "a.png"}) + "\n")
    with pytest.raises(ValueError, match="lacks the schema columns"):
        load_images(tmp_path)


def test_stratified_split_is_disjoint_deterministic_and_order_free() -> None:
    labels = [0] * 30 + [1] * 10 + [2] * 2 + [3]
    keys = [f"k{i}" for i in range(len(labels))]
    train, held = stratified_split(labels, keys, 0.1, seed=0)
    assert set(train).isdisjoint(held) and sorted(train + held) == list(range(len(labels)))
    assert [labels[i] for i in held].count(0) == 3 and [labels[i] for i in held].count(1) == 1
    assert [labels[i] for i in held].count(2) == 1 and 42 in train  # singleton stays in train
    # Same keys in another order -> the same images are held out.
    order = list(reversed(range(len(labels))))
    _, held_rev = stratified_split([labels[i] for i in order], [keys[i] for i in order], 0.1)
    assert {keys[order[i]] for i in held_rev} == {keys[i] for i in held}
    assert stratified_split(labels, keys, 0.1, seed=1)[1] != held


def test_split_of_a_folder(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "s", ["a"] * 10 + ["b"] * 10)
    train, held = load_images(root, split="train"), load_images(root, split="heldout")
    assert len(train) == 18 and len(held) == 2
    assert set(train["sha1"]).isdisjoint(held["sha1"])
    assert sorted(held["label"]) == [0, 1]


def test_to_tensor_pads_resizes_and_round_trips() -> None:
    wide = Image.new("RGB", (20, 10), (0, 0, 0))
    x = to_tensor([wide, Image.new("RGB", (8, 8), (255, 0, 0))], size=8)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x[0, :, 0, 0], torch.ones(3), atol=0.02)   # white padding on top
    assert torch.allclose(x[0, :, 4, 4], -torch.ones(3), atol=0.02)  # black content centred
    back = np.asarray(to_pil(x)[1])
    assert back.shape == (8, 8, 3) and (back == [255, 0, 0]).all()

"""Images trained on without a class: which rows are kept, how they are labelled, what they train."""

from __future__ import annotations

import json
from dataclasses import replace

import datasets
import pytest
from PIL import Image

from pddlib import provenance as pv
from pddlib.card import build_card
from pddlib.data import load_images
from pddlib.data.unlabelled import UNLABELLED, outside, with_unlabelled
from pddlib.recipes import tiny_config
from pddlib.training import train
from scripts.ship_reference import retrain_command

# `data` (eight training images of the workshop set): tests/conftest.py.


@pytest.fixture(scope="module")
def other():
    """Four held-out workshop images standing in for another set: another class list, too."""
    rows = load_images("openclipart", split="heldout").select(range(4))
    features = rows.features.copy()
    features["label"] = datasets.ClassLabel(names=["one", "two"])
    return rows.map(lambda r: {"label": 1}, features=features)


def mirrored(ds: datasets.Dataset, row: int) -> datasets.Dataset:
    """Row `row` of ds mirrored left-right, as another file (another sha1)."""
    return ds.select([row]).map(lambda r: {
        "image": r["image"].transpose(Image.Transpose.FLIP_LEFT_RIGHT), "sha1": "f" * 40})


def test_outside_drops_the_images_it_must_avoid_their_twins_and_their_mirror_images(data, other) -> None:
    extra = datasets.concatenate_datasets([
        data.select([0, 1]).cast(other.features),  # the same files
        mirrored(data, 2).cast(other.features),  # a mirror image, another file
        other])
    kept = outside(extra, data)
    assert list(kept["sha1"]) == list(other["sha1"])


def test_unlabelled_rows_follow_the_labelled_ones_with_their_class_names(data, other) -> None:
    both = with_unlabelled(data, other)
    assert list(both["sha1"]) == list(data["sha1"]) + list(other["sha1"])
    assert list(both["label"]) == list(data["label"]) + [UNLABELLED] * len(other)
    assert both.features["label"].names == data.features["label"].names


def losses(folder) -> list[float]:
    """The loss of every step a run recorded."""
    return [json.loads(ln)["loss"] for ln in (folder / "loss.jsonl").read_text().splitlines()]


def test_an_unlabelled_row_trains_the_null_class_as_a_dropped_label_does(data, tmp_path) -> None:
    unlabelled = with_unlabelled(data.select([]), data)
    config = tiny_config(max_steps=3, batch_size=4, checkpoint_every=3, label_dropout=0.0)
    train(config, unlabelled, tmp_path / "unlabelled")
    train(replace(config, label_dropout=1.0), data, tmp_path / "dropped")
    train(config, data, tmp_path / "labelled")
    assert losses(tmp_path / "unlabelled") == losses(tmp_path / "dropped")
    assert losses(tmp_path / "unlabelled") != losses(tmp_path / "labelled")


def test_a_model_with_unlabelled_images_proves_its_data_from_both_sources(data, other, tmp_path) -> None:
    out = tmp_path / "mix"
    train(tiny_config(max_steps=1, batch_size=4, checkpoint_every=1), with_unlabelled(data, other), out)
    rows = pv.read_manifest(out)
    assert [r["label"] for r in rows[len(data):]] == [""] * len(other)
    assert pv.verify_provenance(out, (data, other)) == []
    found = pv.training_images(out, (data, other))
    assert list(found["sha1"]) == list(data["sha1"]) + list(other["sha1"])
    card = build_card(out)
    assert f"{len(rows)} images: {len(data)} with a class and {len(other)} (33% of the images its " \
        "batches draw from) without one" in card
    missing = pv.verify_provenance(out, data)
    assert len(missing) == len(other) and "matches no image" in missing[0]
    with pytest.raises(ValueError, match=f"{len(other)} of the {len(rows)} training images"):
        pv.training_images(out, data)


def test_pddlib_train_adds_another_sources_images_without_a_class(tmp_path, monkeypatch) -> None:
    from test_data import write_folder

    from pddlib import cli
    from pddlib.recipes import RECIPES

    monkeypatch.setitem(RECIPES, "cpu-tiny", tiny_config(batch_size=4, checkpoint_every=1))
    folder = write_folder(tmp_path / "scraped", ["a", "b", "a"])
    out = tmp_path / "run"
    assert cli.main(["train", "--preset", "cpu-tiny", "--max-steps", "1", "--unlabelled",
                     str(folder), "--out", str(out)]) == 0
    rows = pv.read_manifest(out)
    workshop = load_images("openclipart", split="train")
    assert [r["sha1"] for r in rows] == list(workshop["sha1"]) + [f"{i:040x}" for i in range(3)]
    assert {r["label"] for r in rows[-3:]} == {""} and rows[0]["label"] == "bird"
    # The shipping script's command to remake the run: a folder is not an embedded set to name.
    assert "--max-steps 1 --seed 0 --unlabelled SOURCE --out" in retrain_command(out)

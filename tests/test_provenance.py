"""Provenance: the manifest is the training split, its verification, compute and metrics records."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pddlib import provenance as pv
from pddlib import runs
from pddlib.data import load_images
from pddlib.data.schema import IMAGES, METADATA, TEXT_COLUMNS

# `data` and `model` (a tiny 2-step run): tests/conftest.py.


def test_train_writes_the_manifest_of_exactly_the_training_split(model, data) -> None:
    rows = pv.read_manifest(model)
    assert [r["sha1"] for r in rows] == data["sha1"]
    text = {f: data[0][f] for f in TEXT_COLUMNS}
    label = data.features["label"].int2str(data[0]["label"])
    assert rows[0] == {**text, "label": label, "pixels_sha1": pv.pixels_sha1(data[0]["image"])}
    assert set(rows[0]) == set(pv.MANIFEST_FIELDS)
    assert pv.verify_manifest(rows) == []
    assert [r["sha1"] for r in pv.read_manifest(model / "provenance" / "manifest.jsonl")] == \
        data["sha1"]
    assert pv.training_images(model)["sha1"] == data["sha1"]


def test_verification_catches_rows_that_are_not_public_domain(model) -> None:
    rows = pv.read_manifest(model)
    rows[2] = {**rows[2], "license": "CC BY-SA 4.0",
               "license_url": "https://creativecommons.org/licenses/by-sa/4.0/"}
    rows[5] = {**rows[5], "license_reason": " "}
    failures = pv.verify_manifest(rows)
    assert [f.row for f in failures] == [2, 5]
    assert "not public domain or CC0" in str(failures[0])
    assert failures[1].problems == ("no recorded reason why the licence was accepted",)
    cc0 = {**rows[0], "license": "CC0", "license_url": "https://creativecommons.org/publicdomain/zero/1.0/"}
    assert pv.verify_manifest([cc0]) == []
    assert [f.problems for f in pv.verify_manifest([rows[0], rows[0]])] == [("duplicate sha1",)] * 2


def test_a_trained_folder_proves_its_data_against_the_images_themselves(model, data) -> None:
    assert pv.verify_provenance(model, data) == []
    assert pv.verify_provenance(model, "openclipart") == []  # found by sha1 in the whole set
    record = json.loads((model / runs.DATASET_RECORD).read_text())
    assert record["images"] == len(data) and record["class_names"] == data.features["label"].names


def write_rows(folder: Path, rows: list[dict]) -> None:
    (folder / runs.MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_manifest_edited_after_training_fails_though_every_licence_passes(model, tmp_path) -> None:
    folder = shutil.copytree(model, tmp_path / "edited")
    rows = pv.read_manifest(folder)
    # A held-out image listed in place of one the model trained on: a licence as good as any.
    rows[3] = pv.manifest_rows(load_images("openclipart", split="heldout").select([0]))[0]
    write_rows(folder, rows)
    assert pv.verify_manifest(rows) == []  # the licence check alone cannot see it
    problems = pv.verify_provenance(folder, "openclipart")
    assert len(problems) == 2  # against dataset.json and against the last checkpoint
    assert all("does not list the images this model was trained on" in p for p in problems)
    assert runs.DATASET_RECORD in problems[0] and runs.CHECKPOINT_STATE in problems[1]
    (folder / runs.DATASET_RECORD).unlink()
    assert "dataset.json is missing" in pv.verify_provenance(folder)[0]


def test_an_image_that_is_not_the_one_listed_is_caught_by_its_pixels(model, data) -> None:
    rows = pv.read_manifest(model)
    changed = np.asarray(data[1]["image"]).copy()
    changed[0, 0] = 255 - changed[0, 0]  # one pixel
    other = data.map(lambda ex, i: {"image": Image.fromarray(changed) if i == 1 else ex["image"]},
                     with_indices=True)
    failures = pv.verify_images(rows, other)
    assert [f.row for f in failures] == [1]
    assert failures[0].problems == ("its pixels differ from those recorded (pixels_sha1)",)
    legacy = [{k: v for k, v in r.items() if k != "pixels_sha1"} for r in rows[:1]]
    assert "no pixels_sha1 recorded" in str(pv.verify_images(legacy, data)[0])
    assert "matches no image" in str(pv.verify_images([{**rows[0], "sha1": "f" * 40}], data)[0])


def test_a_scraped_file_is_hashed_again_from_its_bytes(tmp_path) -> None:
    root = tmp_path / "scraped"
    (root / IMAGES).mkdir(parents=True)
    lines = []
    for i, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        path = root / IMAGES / f"{i}.png"
        Image.new("RGB", (12, 10), colour).save(path)
        lines.append({"file_name": f"{IMAGES}/{i}.png", "label": "square", "title": f"File:{i}.png",
                      "source": "wikimedia-commons", "source_url": f"https://example.test/{i}",
                      "author": "Anon", "license": "Public domain", "license_url": "",
                      "license_reason": "pd + PD category", "width": 12, "height": 10,
                      "sha1": hashlib.sha1(path.read_bytes()).hexdigest()})
    (root / METADATA).write_text("".join(json.dumps(r) + "\n" for r in lines))
    ds = load_images(root)
    rows = pv.manifest_rows(ds)
    assert pv.verify_images(rows, ds) == []
    Image.new("RGB", (12, 10), (0, 200, 0)).save(root / IMAGES / "1.png")  # replaced after training
    (failure,) = pv.verify_images(rows, ds)
    assert failure.row == 1 and "does not hash to the recorded sha1" in failure.problems[1]
    assert "pixels differ" in failure.problems[0]


def test_session_seconds_add_up_over_resumes(tmp_path) -> None:
    log = [{"step": 1, "seconds": 2.0}, {"step": 2, "seconds": 5.0},  # first session
           {"step": 3, "seconds": 1.5}, {"step": 4, "seconds": 3.0}]  # resumed: clock restarts
    (tmp_path / "loss.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    assert runs.training_seconds(tmp_path) == pytest.approx(8.0)
    assert runs.training_seconds(tmp_path, upto=2) == pytest.approx(5.0)
    assert runs.training_seconds(tmp_path, upto=3) == pytest.approx(6.5)




def test_the_compute_record_names_the_session(model) -> None:
    session = json.loads((model / runs.COMPUTE).read_text().splitlines()[0])
    assert session["device"] == "cpu" and session["start_step"] == 0
    assert "cpu" in pv.compute_used(model).device


def test_metrics_merge_by_name_and_keep_the_rest(model, tmp_path) -> None:
    import shutil

    folder = shutil.copytree(model, tmp_path / "copy")
    pv.record_metrics(folder, {"FD-pdcls": {"value": 1.0}})
    pv.record_metrics(folder, {"replication": {"pixel": {"n": 4}}})
    assert set(pv.read_metrics(folder)) == {"FD-pdcls", "replication"}
    assert json.loads((folder / runs.METRICS).read_text())["FD-pdcls"]["value"] == 1.0
    assert "measured" in pv.read_metrics(folder)["FD-pdcls"]

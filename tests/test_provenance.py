"""Provenance: the manifest is the training split, its verification, compute and metrics records."""

from __future__ import annotations

import json

import pytest

from pddlib import provenance as pv
from pddlib import runs

# `data` and `model` (a tiny 2-step run): tests/conftest.py.


def test_train_writes_the_manifest_of_exactly_the_training_split(model, data) -> None:
    rows = pv.read_manifest(model)
    assert [r["sha1"] for r in rows] == data["sha1"]
    assert rows[0] == {f: data[0][f] for f in pv.MANIFEST_FIELDS}
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

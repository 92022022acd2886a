"""Provenance: the manifest is the training split, its verification, the model card, `pddlib card`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pddlib import provenance as pv
from pddlib import runs
from pddlib.cli import main
from pddlib.data import load_images
from pddlib.training import train
from pddlib.recipes import tiny_config


@pytest.fixture(scope="module")
def data():
    return load_images("openclipart", split="train").select(range(0, 40, 5))  # 8 images


@pytest.fixture(scope="module")
def model(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_config(max_steps=2, checkpoint_every=2, batch_size=4), data, out)
    pv.write_card(out)  # what `pddlib train` does after training
    return out


def test_train_writes_the_manifest_of_exactly_the_training_split(model, data) -> None:
    rows = pv.read_manifest(model)
    assert [r["sha1"] for r in rows] == data["sha1"]
    assert rows[0] == {f: data[0][f] for f in pv.MANIFEST_FIELDS}
    assert set(rows[0]) == set(pv.MANIFEST_FIELDS)
    assert pv.verify_manifest(rows) == []
    assert [r["sha1"] for r in pv.read_manifest(model / "provenance" / "manifest.jsonl")] == \
        data["sha1"]
    assert pv.training_images(model)["sha1"] == data["sha1"]


def test_the_card_has_valid_front_matter_and_the_training_data(model) -> None:
    meta = pv.read_card_metadata(model / "README.md")
    assert meta["license"] == "cc0-1.0" and meta["library_name"] == "diffusers"
    # Class-conditional: the Hub's only generation tag ("unconditional-...") would be wrong.
    assert "pipeline_tag" not in meta and "class-conditional" in meta["tags"]
    assert meta["datasets"] == ["openclipart"] and "public-domain" in meta["tags"]
    text = (model / "README.md").read_text()
    assert "| openclipart | 8 |" in text
    assert "provenance/manifest.jsonl" in text and "Not measured yet" in text
    session = json.loads((model / "provenance" / "compute.jsonl").read_text().splitlines()[0])
    assert session["device"] == "cpu" and session["start_step"] == 0


def test_card_reports_the_measured_metrics(model, tmp_path) -> None:
    pv.record_metrics(model, {"FD-pdcls": {"value": 12.345, "kid": 0.0123, "precision": 0.5,
                                           "recall": 0.25, "n_generated": 64}})
    pv.record_metrics(model, {"replication": {"pixel": {
        "n": 64, "threshold": 0.95, "ratio_fraction": 0.125, "above_fraction": 0.0625,
        "background_above_fraction": 0.04}}})
    text = pv.build_card(model)
    assert "| FD-pdcls | 12.345 | 0.0123 | 0.500 | 0.250 |" in text
    assert "| pixel | 64 | 12.5% | 6.2% | 0.95 | 4.0% |" in text
    assert "Not measured yet" not in text
    assert set(pv.read_metrics(model)) == {"FD-pdcls", "replication"}


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


def test_pddlib_card_cli(model, tmp_path, capsys) -> None:
    (model / "README.md").unlink()
    assert main(["card", "--model", str(model), "--license", "mit"]) == 0
    assert pv.read_card_metadata(model / "README.md")["license"] == "mit"
    assert "every image public domain" in capsys.readouterr().out
    assert main(["card", "--model", str(tmp_path)]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_publish_refuses_a_failing_manifest(model, tmp_path) -> None:
    bad = tmp_path / "bad"
    (bad / "provenance").mkdir(parents=True)
    row = {**pv.read_manifest(model)[0], "license": "All rights reserved"}
    (bad / "provenance" / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="Not publishing"):
        pv.publish(bad, "someone/model")  # fails before any network call


def test_the_cards_example_asks_for_the_class_the_model_draws_best(model, tmp_path) -> None:
    import shutil

    folder = shutil.copytree(model, tmp_path / "copy")
    classes = pv.build_card(folder).split("Classes: ")[1].split(".")[0].split(", ")
    assert f'class_labels="{classes[0]}"' in pv.build_card(folder)  # nothing measured yet
    pv.record_metrics(folder, {"FD-pdshape": {"value": 9.0, "per_class": {
        classes[0]: 0.25, classes[1]: 0.75}}})
    assert f'class_labels="{classes[1]}"' in pv.build_card(folder)
    # A person's choice wins: the judge over-rates classes nobody would recognise.
    assert f'class_labels="{classes[0]}"' in pv.build_card(folder, example=classes[0])
    with pytest.raises(ValueError, match="not one of the model's classes"):
        pv.build_card(folder, example="unicorn")
    unconditional = pv.card_metadata(folder, [], {"conditional": False}, "cc0-1.0")
    assert "pipeline_tag: unconditional-image-generation" in unconditional

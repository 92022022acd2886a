"""The model card: rendered from what a run folder records, its tables built from the recorded dicts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pddlib import card, runs
from pddlib import provenance as pv
from pddlib.cli import main
from pddlib.recipes import RUNTIME_FIELDS


@pytest.fixture(scope="module")
def model(model) -> Path:
    """tests/conftest.py's tiny run, with the card `pddlib train` writes after training."""
    card.write_card(model)
    return model


@pytest.fixture
def folder(model, tmp_path) -> Path:
    """A copy of the tiny run with no measurements, to record made-up ones in."""
    copy = shutil.copytree(model, tmp_path / "copy")
    (copy / runs.METRICS).unlink(missing_ok=True)
    return copy


def test_the_card_has_valid_front_matter_and_the_training_data(model) -> None:
    meta = card.read_card_metadata(model / "README.md")
    assert meta["license"] == "cc0-1.0" and meta["library_name"] == "diffusers"
    # Class-conditional: the Hub's only generation tag ("unconditional-...") would be wrong.
    assert "pipeline_tag" not in meta and "class-conditional" in meta["tags"]
    # Source names are not Hub dataset identifiers: no `datasets:` entry; the table names them.
    assert "datasets" not in meta and "public-domain" in meta["tags"]
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
    text = card.build_card(model)
    assert "| FD-pdcls | 12.345 | 0.0123 | 0.500 | 0.250 |" in text
    assert "| pixel | 64 | 12.5% | 6.2% | 0.95 | 4.0% |" in text
    assert "Not measured yet" not in text
    assert set(pv.read_metrics(model)) == {"FD-pdcls", "replication"}


def test_pddlib_card_cli(model, tmp_path, capsys) -> None:
    (model / "README.md").unlink()
    assert main(["card", "--model", str(model), "--license", "mit"]) == 0
    assert card.read_card_metadata(model / "README.md")["license"] == "mit"
    assert "every image public domain" in capsys.readouterr().out
    assert main(["card", "--model", str(tmp_path)]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_publish_refuses_a_failing_manifest(model, tmp_path) -> None:
    bad = tmp_path / "bad"
    (bad / "provenance").mkdir(parents=True)
    row = {**pv.read_manifest(model)[0], "license": "All rights reserved"}
    (bad / "provenance" / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="Not publishing"):
        card.publish(bad, "someone/model")  # fails before any network call


def test_publish_refuses_a_list_edited_after_training(model, tmp_path) -> None:
    edited = shutil.copytree(model, tmp_path / "edited")
    rows = pv.read_manifest(edited)[1:]  # one image dropped: every remaining licence is fine
    (edited / "provenance" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="does not list the images this model was trained on"):
        card.publish(edited, "someone/model")


def test_the_cards_example_asks_for_the_class_the_model_draws_best(folder) -> None:
    classes = card.build_card(folder).split("Classes: ")[1].split(".")[0].split(", ")
    assert f'class_labels="{classes[0]}"' in card.build_card(folder)  # nothing measured yet
    pv.record_metrics(folder, {"FD-pdshape": {"value": 9.0, "per_class": {
        classes[0]: 0.25, classes[1]: 0.75}}})
    assert f'class_labels="{classes[1]}"' in card.build_card(folder)
    # A person's choice wins: the judge over-rates classes nobody would recognise.
    assert f'class_labels="{classes[0]}"' in card.build_card(folder, example=classes[0])
    with pytest.raises(ValueError, match="not one of the model's classes"):
        card.build_card(folder, example="unicorn")
    unconditional = card.card_metadata({"conditional": False}, "cc0-1.0")
    assert "pipeline_tag: unconditional-image-generation" in unconditional


def test_the_card_skips_exactly_the_runtime_settings_but_max_steps(model) -> None:
    config = runs.read_config(model)
    rows = {line.split(" | ")[0][2:] for line in card.build_card(model).splitlines()
            if line.startswith("| ") and line.count(" | ") == 1}
    assert set(RUNTIME_FIELDS) - {"max_steps"} <= set(config) and not rows & set(RUNTIME_FIELDS
                                                                               ) - {"max_steps"}
    assert "max_steps" in rows and "lr" in rows and "model" not in rows


def test_a_new_score_in_the_result_dict_shows_in_the_card_with_no_other_edit(folder) -> None:
    """A score only the QualityReport's dict names travels to JSON, metrics.json and the card."""
    from pddlib.metrics import EvalConfig, EvalResult, QualityReport

    scores = {"fd": 7.5, "kid": 0.01, "kid_std": 0.002, "precision": 0.5, "recall": 0.25,
              "sharpness": 0.875}
    result = EvalResult(QualityReport("pdshape", 118, 32, scores), 0.5, {"bird": 0.5},
                        EvalConfig(n=32, steps=2))
    assert result.to_dict()["sharpness"] == 0.875
    assert "| sharpness 0.875 (32 generated" in str(result.report)
    pv.record_metrics(folder, pv.eval_metrics(result))
    text = card.build_card(folder)
    assert ("| metric | value | KID | precision | recall | sharpness | class agreement | samples "
            "| against |") in text
    assert ("| FD-pdshape | 7.500 | 0.0100 | 0.500 | 0.250 | 0.875 | 0.500 | 32 (euler-a 2 steps)"
            " | openclipart held-out split |") in text


def test_a_registered_score_reaches_the_card_through_quality_report(folder, monkeypatch) -> None:
    from pddlib.metrics import EvalConfig, EvalResult, quality_report, scores

    def spread(f_real, f_fake, settings) -> dict[str, float]:
        return {"spread_ratio": float(f_fake.std() / f_real.std())}

    monkeypatch.setitem(scores.SCORES, "spread", spread)
    rng = np.random.default_rng(0)
    real, fake = (rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8) for _ in range(2))
    report = quality_report(real, fake, progress=False, kid_subset_size=12, kid_subsets=4,
                            cache_real=False)
    assert list(report.scores) == ["fd", "kid", "kid_std", "precision", "recall", "spread_ratio"]
    pv.record_metrics(folder, pv.eval_metrics(EvalResult(report, None, None, EvalConfig(n=24))))
    text = card.build_card(folder)
    assert "| metric | value | KID | precision | recall | spread ratio | samples | against |" in text
    assert f"| {report.scores['spread_ratio']:.3f} | 24 (" in text


def test_an_evaluation_without_a_score_shows_a_dash(folder) -> None:
    pv.record_metrics(folder, {"FD-pdshape": {"value": 2.0, "kid": 0.5, "n_generated": 8},
                               "FID": {"value": 30.0, "n_generated": 8}})
    text = card.build_card(folder)
    assert "| metric | value | KID | samples | against |" in text
    assert "| FID | 30.000 | - | 8 (?) | ? |" in text


def test_a_blind_judgement_reaches_the_card(folder) -> None:
    """A person's verdict recorded in metrics.json shows in the card, class by class."""
    import numpy as np

    from pddlib import blind

    img = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    trials = blind.make_trials(img, ["bird"], img, ["bird"], per_class=1, n_real=1, seed=0)
    answers = [blind.Answer("bird", blind.GENERATED if t.source == blind.GENERATED else blind.REAL)
               for t in trials]
    pv.record_metrics(folder, {blind.METRICS_KEY: blind.score(trials, answers, ["bird"])})
    text = card.build_card(folder)
    assert "Blind judgement by a person" in text and "| bird | 1 of 1 |" in text


def test_the_usage_example_comes_from_agreement_even_when_a_blind_verdict_was_recorded_first(
) -> None:
    metrics = {"blind_judgement": {"per_class": 6, "by_class": {}},  # an int, not per class
               "FD-pdshape": {"per_class": {"bird": 0.5, "flag": 1.0, "ghost": 1.0}}}
    assert card.best_class(["bird", "flag"], metrics) == "flag"
    assert card.best_class(["bird", "flag"], {"blind_judgement": {"per_class": 6}}) == "bird"


def test_a_persons_verdict_survives_a_re_render_without_it(folder) -> None:
    card.write_card(folder, looked="- **recognisable:** flags.")
    assert pv.read_metrics(folder)[card.LOOKED_KEY]["text"] == "- **recognisable:** flags."
    card.write_card(folder)  # as notebook 07 re-renders: no looked= given
    text = (folder / "README.md").read_text()
    assert "## Looked at, class by class\n\n- **recognisable:** flags." in text


def test_the_copying_limitation_is_written_from_the_recorded_copy_guard(folder) -> None:
    assert "copying is not measured yet" in card.build_card(folder)
    guard = {"n": 256, "threshold": 0.88, "ratio_fraction": 0.3, "above_fraction": 0.48,
             "background_above_fraction": 0.10}
    pv.record_metrics(folder, {"replication": {"pdcopy": guard}})
    text = card.build_card(folder)
    assert "flagged 48% of 256 samples" in text and "10% of the training images" in text
    assert "it reproduces training images" in text
    pv.record_metrics(folder, {"replication": {"pdcopy": {**guard, "above_fraction": 0.12}}})
    assert "about as often as the data set repeats itself" in card.build_card(folder)
    pv.record_metrics(folder, {"replication": {"pdcopy": {**guard, "above_fraction": 0.02}}})
    assert "flagged 2% of 256 samples" in (text := card.build_card(folder))
    assert "less often than the data set repeats itself" in text


def test_the_card_says_the_pipeline_needs_pddlib(folder) -> None:
    text = card.build_card(folder)
    assert "`model_index.json` names `PDDiffusionPipeline`" in text
    assert "often not recognisable" not in text

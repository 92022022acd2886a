"""The blind judgement: trials mixed and shuffled with a seed, answers scored, the verdict
recorded in metrics.json, and the widget clicked through as a person would."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pddlib import blind, provenance
from pddlib.blind import CANT_TELL, GENERATED, REAL, Answer, Trial

CLASSES = ["bird", "car", "flag"]


def images(n: int, start: int = 0) -> np.ndarray:
    """n distinct 4 px images: image i is filled with the value start + i."""
    return np.stack([np.full((4, 4, 3), start + i, np.uint8) for i in range(n)])


def generated(per_class: int = 4) -> tuple[np.ndarray, list[str]]:
    """Samples drawn classes in turn, as generate_samples draws them."""
    labels = [CLASSES[i % 3] for i in range(3 * per_class)]
    return images(len(labels)), labels


def real() -> tuple[np.ndarray, list[str]]:
    """Ten real images: five birds, three cars, two flags."""
    labels = ["bird"] * 5 + ["car"] * 3 + ["flag"] * 2
    return images(len(labels), start=100), labels


def trials(per_class: int = 2, n_real: int = 3, seed: int = 0) -> list[Trial]:
    return blind.make_trials(*generated(), *real(), per_class=per_class, n_real=n_real, seed=seed)


def test_trials_hold_the_first_samples_of_each_class_and_real_images_one_class_at_a_time() -> None:
    t = trials(per_class=2, n_real=3)
    gen = [x for x in t if x.source == GENERATED]
    shown = sorted(int(x.image[0, 0, 0]) for x in gen)
    assert shown == [0, 1, 2, 3, 4, 5]  # the first two drawn of each class, none picked
    assert sorted(x.label for x in t if x.source == REAL) == CLASSES  # one of each class
    for x in t:  # an image keeps its own label
        value = int(x.image[0, 0, 0])
        want = CLASSES[value % 3] if value < 100 else real()[1][value - 100]
        assert x.label == want


def test_more_real_images_than_classes_go_round_the_classes_again() -> None:
    labels = [x.label for x in trials(n_real=7) if x.source == REAL]
    assert len(labels) == 7 and {labels.count(c) for c in CLASSES} <= {2, 3}
    assert len([x for x in trials(n_real=50) if x.source == REAL]) == 10  # all there are


def test_the_order_is_shuffled_and_repeats_with_its_seed() -> None:
    order = [int(x.image[0, 0, 0]) for x in trials(seed=1)]
    assert order == [int(x.image[0, 0, 0]) for x in trials(seed=1)]
    assert order != sorted(order)
    assert order != [int(x.image[0, 0, 0]) for x in trials(seed=2)]


def test_images_of_different_sizes_are_refused_as_a_giveaway() -> None:
    with pytest.raises(ValueError, match="give them away"):
        blind.make_trials(images(3), CLASSES, np.zeros((1, 8, 8, 3), np.uint8), ["bird"])


def scripted(ts: list[Trial]) -> list[Answer]:
    """A person who names birds and flags right, never cars, and calls every bird real."""
    out = []
    for t in ts:
        label = CANT_TELL if t.label == "car" else t.label
        out.append(Answer(label, REAL if t.label == "bird" else GENERATED))
    return out


def test_score_counts_per_class_and_real_calls() -> None:
    ts = trials(per_class=2, n_real=3)
    v = blind.score(ts, scripted(ts))
    assert (v["n_generated"], v["n_real"], v["n_classes"]) == (6, 3, 3)
    assert v["by_class"]["car"] == {"named": 0, "shown": 2, "cant_tell": 2}
    assert v["by_class"]["bird"] == {"named": 2, "shown": 2, "cant_tell": 0}
    assert sorted(v["recognisable"]) == ["bird", "flag"]
    assert v["recognised"] == pytest.approx(4 / 6) and v["cant_tell"] == pytest.approx(2 / 6)
    assert v["real_recognised"] == pytest.approx(2 / 3)
    assert v["passed_as_real"] == pytest.approx(2 / 6)  # the two generated birds
    assert v["real_called_real"] == pytest.approx(1 / 3)  # the real bird
    json.dumps(v)  # plain JSON types, for metrics.json


def test_rows_follow_the_class_order_given() -> None:
    ts = trials()
    assert list(blind.score(ts, scripted(ts), ["flag", "car", "bird"])["by_class"]) == [
        "flag", "car", "bird"]
    assert sorted(blind.score(ts, scripted(ts), ["flag"])["by_class"]) == sorted(CLASSES)


def test_half_right_is_not_recognisable() -> None:
    ts = [Trial(images(1)[0], "car", GENERATED)] * 2
    v = blind.score(ts, [Answer("car", GENERATED), Answer("bird", GENERATED)])
    assert v["recognisable"] == [] and v["real_recognised"] is None


def test_score_refuses_missing_or_malformed_answers() -> None:
    ts = trials()
    with pytest.raises(ValueError, match="answer every image"):
        blind.score(ts, scripted(ts)[:-1])
    with pytest.raises(ValueError, match="source"):
        blind.score(ts, [Answer("bird", "fake")] * len(ts))


def test_the_verdict_is_recorded_in_metrics_json_and_written_for_the_card(tmp_path) -> None:
    ts = trials()
    verdict = {**blind.score(ts, scripted(ts)), "sampler": "euler-a 25 steps", "seed": 1}
    provenance.record_metrics(tmp_path, {blind.METRICS_KEY: verdict})
    stored = provenance.read_metrics(tmp_path)[blind.METRICS_KEY]
    assert stored["by_class"]["flag"]["named"] == 2 and "measured" in stored
    text = "\n".join(blind.card_lines(stored))
    assert "2 of 3 classes: bird, flag" in text
    assert "| car | 0 of 2 | 2 |" in text
    assert "euler-a 25 steps" in text and "4 of 6 (67%)" in text


def test_the_widget_clicked_through_scores_and_hands_over_the_verdict() -> None:
    from pddlib.blind_widget import BlindJudgement

    ts = trials()
    got: list[dict] = []
    widget = BlindJudgement(ts, CLASSES, got.append)
    assert "1 of 9" in widget.status.value and bytes(widget.picture.value).startswith(b"\x89PNG")
    answers = scripted(ts)
    widget.labels["bird"].click()
    widget.back_button.click()  # a change of mind before the second click: nothing stored
    assert widget.answers == [] and widget.label is None
    for a in answers[:2]:
        widget.sources[a.source].click()  # either order works
        widget.labels[a.label].click()
    assert "3 of 9" in widget.status.value
    widget.back_button.click()  # take the second answer back, give it again
    assert len(widget.answers) == 1
    for a in answers[1:]:
        widget.labels[a.label].click()
        widget.sources[a.source].click()
    assert got == [blind.score(ts, answers, CLASSES)] and widget.verdict == got[0]
    assert list(got[0]["by_class"]) == CLASSES  # rows in the model's class order
    assert all(b.disabled for b in widget.labels.values())
    assert widget.question.layout.display == "none"  # the verdict replaces the question
    widget.labels["bird"].click()  # after the verdict, clicks change nothing
    assert len(widget.answers) == len(ts) and len(got) == 1


def test_headless_the_widget_is_a_numbered_grid(monkeypatch) -> None:
    from pddlib.blind_widget import blind_judgement

    monkeypatch.setenv("PDD_STATIC", "1")
    fig = blind_judgement(trials(), CLASSES, on_done=pytest.fail)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == [f"#{i}" for i in range(1, 10)]

"""A blind judgement: a person names the class of generated images shuffled among real ones.

Pure logic; pddlib.viz draws the widget. `make_trials` mixes the first `per_class` generated
images of each class with real held-out images in a seeded order; a person answers each with a
class name (or CANT_TELL) and REAL or GENERATED; `score` turns the answers into a verdict, a
plain dict: per class how many generated images were named right out of how many, which
classes were recognisable (more than half named right), and how often generated images passed
as real beside how often real ones were called real. The verdict is stored under METRICS_KEY in
a model folder's metrics.json; `card_lines` writes it for the model card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CANT_TELL = "can't tell"
REAL, GENERATED = "real", "generated"
SOURCES = (REAL, GENERATED)
METRICS_KEY = "blind_judgement"


@dataclass(frozen=True)
class Trial:
    """One image to judge: its pixels, its true class, and where it came from."""

    image: np.ndarray  # uint8 (S, S, 3)
    label: str  # the class a generated image was asked for, or a real image's class
    source: str  # REAL or GENERATED


@dataclass(frozen=True)
class Answer:
    """A person's answer to one trial."""

    label: str  # a class name, or CANT_TELL
    source: str  # REAL or GENERATED


def _first_per_class(labels: Sequence[str], k: int) -> list[int]:
    """Indices of the first k items of each class, classes in order of first appearance."""
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(labels):
        seen.setdefault(name, [])
        if len(seen[name]) < k:
            seen[name].append(i)
    return [i for rows in seen.values() for i in rows]


def _real_in_turn(labels: Sequence[str], n: int, rng: np.random.Generator) -> list[int]:
    """n indices of real images, one class after another in random order, random within a class."""
    by_class: dict[str, list[int]] = {}
    for i in rng.permutation(len(labels)).tolist():
        by_class.setdefault(labels[i], []).append(i)
    classes = [by_class[c] for c in rng.permutation(sorted(by_class)).tolist()]
    picked: list[int] = []
    while len(picked) < n and any(classes):
        for rows in classes:
            if rows and len(picked) < n:
                picked.append(rows.pop())
    return picked


def make_trials(generated: np.ndarray, generated_labels: Sequence[str], real: np.ndarray,
                real_labels: Sequence[str], *, per_class: int = 3, n_real: int = 16,
                seed: int = 0) -> list[Trial]:
    """The first per_class generated images of each class and n_real real ones, shuffled.

    generated, real: uint8 (N, S, S, 3) of one size; the labels are class names. The generated
    images are the first drawn of each class (none picked by eye); the real ones go through
    the classes in turn, so every class gets one before any gets two.
    """
    if len(generated) != len(generated_labels) or len(real) != len(real_labels):
        raise ValueError("every image needs exactly one label")
    if len(generated) and len(real) and generated.shape[1:] != real.shape[1:]:
        raise ValueError(f"generated {generated.shape[1:]} and real {real.shape[1:]} images "
                         "differ in size, which would give them away: bring both to one size")
    rng = np.random.default_rng(seed)
    trials = [Trial(generated[i], generated_labels[i], GENERATED)
              for i in _first_per_class(list(generated_labels), per_class)]
    trials += [Trial(real[i], real_labels[i], REAL)
               for i in _real_in_turn(list(real_labels), n_real, rng)]
    return [trials[i] for i in rng.permutation(len(trials))]


def _fraction(hits: int, shown: int) -> float | None:
    """hits / shown, or None when nothing was shown."""
    return hits / shown if shown else None


def score(trials: Sequence[Trial], answers: Sequence[Answer],
          classes: Sequence[str] = ()) -> dict:
    """The verdict of a person's answers, one per trial, as plain JSON types.

    classes: the order of the per-class rows (the model's class order); others follow.
    """
    if len(answers) != len(trials):
        raise ValueError(f"{len(answers)} answers for {len(trials)} trials: answer every image")
    bad = sorted({a.source for a in answers} - set(SOURCES))
    if bad:
        raise ValueError(f"an answer's source must be {REAL!r} or {GENERATED!r}, got {bad}")
    pairs = list(zip(trials, answers, strict=True))
    gen = [(t, a) for t, a in pairs if t.source == GENERATED]
    real = [(t, a) for t, a in pairs if t.source == REAL]
    by_class: dict[str, dict[str, int]] = {c: {"named": 0, "shown": 0, "cant_tell": 0}
                                           for c in classes if any(t.label == c for t, _ in gen)}
    for t, a in gen:
        row = by_class.setdefault(t.label, {"named": 0, "shown": 0, "cant_tell": 0})
        row["shown"] += 1
        row["named"] += a.label == t.label
        row["cant_tell"] += a.label == CANT_TELL
    named = sum(r["named"] for r in by_class.values())
    return {
        "n_generated": len(gen), "n_real": len(real),
        "recognised": _fraction(named, len(gen)),
        "recognisable": [c for c, r in by_class.items() if 2 * r["named"] > r["shown"]],
        "n_classes": len(by_class),
        "by_class": by_class,
        "cant_tell": _fraction(sum(r["cant_tell"] for r in by_class.values()), len(gen)),
        "real_recognised": _fraction(sum(a.label == t.label for t, a in real), len(real)),
        "passed_as_real": _fraction(sum(a.source == REAL for _, a in gen), len(gen)),
        "real_called_real": _fraction(sum(a.source == REAL for _, a in real), len(real)),
    }


def _of(fraction: float | None, n: int) -> str:
    """'12 of 48 (25 %)' from a fraction of n, or 'none shown'."""
    if fraction is None:
        return "none shown"
    return f"{round(fraction * n)} of {n} ({fraction:.0%})"


def summary_lines(verdict: dict) -> list[str]:
    """The verdict in a few Markdown lines: recognisable classes, names and 'real' calls."""
    g, r = verdict["n_generated"], verdict["n_real"]
    classes = verdict["recognisable"]
    return [
        (f"- **Recognisable** (more than half of a class's images named right): "
         f"{len(classes)} of {verdict['n_classes']} classes"
         + (f": {', '.join(classes)}." if classes else ".")),
        (f"- Generated images named right: {_of(verdict['recognised'], g)}; "
         f"\"{CANT_TELL}\": {_of(verdict['cant_tell'], g)}. Real images named right (the "
         f"control): {_of(verdict['real_recognised'], r)}."),
        (f"- Generated images taken for real: {_of(verdict['passed_as_real'], g)}; "
         f"real images taken for real: {_of(verdict['real_called_real'], r)}."),
    ]


def class_table(verdict: dict) -> list[str]:
    """A Markdown table: per class, generated images named right out of those shown."""
    out = [f"| class | named right | {CANT_TELL} |", "|---|---|---|"]
    for name, row in verdict["by_class"].items():
        out.append(f"| {name} | {row['named']} of {row['shown']} | {row['cant_tell']} |")
    return out


def card_lines(verdict: dict) -> list[str]:
    """Markdown lines for the model card: how the judgement was made, its summary, per class."""
    how = (f"A person named the class of {verdict['n_generated']} generated images shuffled "
           f"with {verdict['n_real']} real held-out ones, without seeing which was which, or "
           f"said \"{CANT_TELL}\", and called each real or generated")
    drawn = ", ".join(f"{k} {verdict[k]}" for k in ("sampler", "guidance", "seed") if k in verdict)
    return ["**Blind judgement by a person**", "", how + (f" (samples: {drawn})." if drawn
                                                          else "."), "",
            *summary_lines(verdict), "", *class_table(verdict), ""]

"""A person's blind judgement of a model, outside a notebook: numbered sheets, typed answers.

    python benchmarks/blind_sheets.py make --model runs/DIR|reference --name NAME
        [--per-class 6] [--n-real 32] [--seed 101]
    (look at runs/blind/NAME/sheet*.png without opening key.json; write answers.txt, one line
     an image: `INDEX CLASS|? r|g`, ? for "can't tell", r/g for real/generated)
    python benchmarks/blind_sheets.py score --name NAME [--record]

The trials are pddlib.blind's (the first samples of each class, Euler ancestral 25 steps at the
default guidance, shuffled among real held-out images), as notebook 05's widget shows them;
`score` prints pddlib.blind's verdict, writes verdict.json beside the answers and, with
--record, stores it in the model folder's metrics.json as the widget does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pddlib import blind, metrics, provenance
from pddlib.data import load_images
from pddlib.defaults import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.reference import resolve_model

OUT = Path("runs/blind")
SHOW, COLUMNS, PER_SHEET = 128, 8, 32  # pixels an image, images a row, images a sheet


def make(model: str, name: str, per_class: int, n_real: int, seed: int) -> Path:
    """Draw the trials, save numbered sheets without labels and the key beside them."""
    folder = resolve_model(model)
    pipe = PDDiffusionPipeline.from_run(folder)
    fresh, labels = metrics.generate_samples(pipe, per_class * len(pipe.class_names),
                                             steps=DEFAULT_STEPS, guidance=DEFAULT_GUIDANCE,
                                             seed=seed, progress=False)
    held = load_images("openclipart", split="heldout")
    trials = blind.make_trials(fresh, [pipe.class_names[i] for i in labels],
                               metrics.as_uint8(held, size=fresh.shape[1]),
                               held.features["label"].int2str(held["label"]),
                               per_class=per_class, n_real=n_real, seed=seed)
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", np.stack([t.image for t in trials]))
    key = {"model": str(folder), "classes": list(pipe.class_names),
           "trials": [[t.label, t.source] for t in trials], "per_class": per_class,
           "n_real": n_real, "seed": seed, "guidance": DEFAULT_GUIDANCE,
           "sampler": f"{DEFAULT_SCHEDULER} {DEFAULT_STEPS} steps"}
    (out / "key.json").write_text(json.dumps(key, indent=1))
    for k in range(0, len(trials), PER_SHEET):
        sheet(trials[k:k + PER_SHEET], first=k).save(out / f"sheet{k // PER_SHEET}.png")
    return out


def sheet(trials: list[blind.Trial], first: int) -> Image.Image:
    """The trials' images enlarged, each under its number, no labels."""
    rows = -(-len(trials) // COLUMNS)
    page = Image.new("RGB", (COLUMNS * (SHOW + 4), rows * (SHOW + 18)), "white")
    draw = ImageDraw.Draw(page)
    for j, t in enumerate(trials):
        x, y = (j % COLUMNS) * (SHOW + 4), (j // COLUMNS) * (SHOW + 18)
        page.paste(Image.fromarray(t.image).resize((SHOW, SHOW), Image.Resampling.NEAREST),
                   (x, y + 16))
        draw.text((x + 2, y + 2), str(first + j), fill="black")
    return page


def read_answers(path: Path, n: int) -> list[blind.Answer]:
    """answers.txt's lines `INDEX CLASS|? r|g`, one for each of the n trials."""
    answers: dict[int, blind.Answer] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            index, label, source = line.split()
            answers[int(index)] = blind.Answer(blind.CANT_TELL if label == "?" else label,
                                               blind.REAL if source == "r" else blind.GENERATED)
    missing = sorted(set(range(n)) - set(answers))
    if missing:
        raise SystemExit(f"{path}: no answer for images {missing}: add a line for each")
    return [answers[i] for i in range(n)]


def score(name: str, record: bool) -> dict:
    """The verdict of answers.txt against the key; optionally recorded with the model."""
    out = OUT / name
    key = json.loads((out / "key.json").read_text())
    images = np.load(out / "images.npy")
    trials = [blind.Trial(images[i], label, source)
              for i, (label, source) in enumerate(key["trials"])]
    verdict = blind.score(trials, read_answers(out / "answers.txt", len(trials)), key["classes"])
    verdict.update({k: key[k] for k in ("sampler", "guidance", "seed")},
                   generated_per_class=key["per_class"])
    (out / "verdict.json").write_text(json.dumps(verdict, indent=1))
    if record:
        provenance.record_metrics(Path(key["model"]), {blind.METRICS_KEY: verdict})
    return verdict


def main() -> None:
    """Parse the command line and make the sheets or score the answers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("make", "score"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", default="reference")
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--n-real", type=int, default=32)
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    if args.action == "make":
        print(f"sheets in {make(args.model, args.name, args.per_class, args.n_real, args.seed)}")
        return
    verdict = score(args.name, args.record)
    print("\n".join(blind.summary_lines(verdict)))
    for c, row in verdict["by_class"].items():
        print(f"{c:10s} named {row['named']} of {row['shown']}, can't tell {row['cant_tell']}")


if __name__ == "__main__":
    main()

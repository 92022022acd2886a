"""Ship a finished run as the reference model: fp16 weights, measured as users get them, carded.

    OMP_NUM_THREADS=2 pddlib train --preset cpu-reference --out runs/reference
    python scripts/ship_reference.py runs/reference [--n 256] [--example CLASS] [--looked TEXT]

The measurements (the judge's FD and per-class agreement, replication against the training
images) are taken on a working copy rebuilt from the rounded fp16 weights, then written with
the model card into the shipped folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from pddlib import runs
from pddlib.card import write_card
from pddlib.defaults import DEFAULT_GUIDANCE, DEFAULT_STEPS
from pddlib.metrics import EvalConfig, evaluate_model, measure_replication
from pddlib.provenance import eval_metrics, find_images, read_manifest, record_metrics
from pddlib.reference import NAME, ship, working_copy

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "pddlib" / "weights" / "pd-reference"
# The shipped folder holds no autoencoder (pd-ae32 ships once, by name): load it by name.
LOAD = 'PDDiffusionPipeline.from_run("reference")  # a working copy in runs/, with pd-ae32'


def retrain_command(run: Path, example: str | None = None) -> str:
    """The commands that remake this run and its shipped form, from what the run recorded."""
    config = runs.read_config(run)
    session = json.loads((run / runs.COMPUTE).read_text().splitlines()[0])
    out = f"runs/{run.name}"
    # Rows without a class came from `pddlib train --unlabelled SOURCE`: name the source.
    extra = [r["sha1"] for r in read_manifest(run) if r["label"] == ""] if config["conditional"] else []
    unlabelled = ""
    if extra:
        unlabelled = f" --unlabelled {'SOURCE' if find_images(extra, 'pdcorpus')[1] else 'pdcorpus'}"
    return (f"# the same weights given the same torch ({session['torch']}) and thread count\n"
            f"OMP_NUM_THREADS={session['threads']} pddlib train --preset {config['preset']} "
            f"--max-steps {config['max_steps']} --seed {config['seed']}"
            f"{unlabelled} --out {out}\n"
            f"python scripts/ship_reference.py {out}" + (f" --example {example}" if example else ""))


def main(argv: list[str] | None = None) -> int:
    """Ship, measure and card; print where the folder is."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a finished `pddlib train` folder")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the shipped folder to write")
    p.add_argument("--n", type=int, default=256, help="samples for each measurement")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="denoising steps")
    p.add_argument("--example", help="class the card's usage example asks for")
    p.add_argument("--looked", help="a person's per-class verdict on the sample grid (Markdown)")
    p.add_argument("--card-only", action="store_true",
                   help="rewrite only the card of the shipped folder, from its recorded metrics")
    p.add_argument("--copies", action="store_true",
                   help="with --card-only: measure replication (the copy guard) again first")
    args = p.parse_args(argv)
    shipped = args.out if args.card_only else ship(args.run, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        copy = working_copy(shipped, tmp)
        if not args.card_only:
            result = evaluate_model(copy, EvalConfig(n=args.n, steps=args.steps), progress=False)
            print(result)
            record_metrics(copy, eval_metrics(result))
        if not args.card_only or args.copies:
            print(measure_replication(copy, n=args.n, steps=args.steps,
                                      guidance=DEFAULT_GUIDANCE, progress=False))
        write_card(copy, model_name=NAME, example=args.example, looked=args.looked, load=LOAD,
                   reproduce=retrain_command(args.run, args.example))
        for name in (runs.METRICS, runs.CARD):
            shutil.copy2(copy / name, shipped / name)
    size = sum(f.stat().st_size for f in shipped.rglob("*") if f.is_file())
    print(f"shipped {shipped} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

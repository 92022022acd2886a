"""The `pddlib` command: scrape, train, sample, eval, card, check, course, figures.

Each subcommand lives in its own `add_<name>(subparsers)` function that registers a parser and
sets `func`; argparse stays here, the library functions take frozen configs or plain arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pddlib import __version__
from pddlib.defaults import (
    DEFAULT_GUIDANCE,
    DEFAULT_JUDGE,
    DEFAULT_SCHEDULER,
    DEFAULT_STEPS,
    JUDGE_NAMES,
)
from pddlib.schedulers import NAMES as SCHEDULER_NAMES

MODEL_HELP = 'a `pddlib train` folder, or "reference" (the model shipped with pddlib)'

SCHEDULER_HELP = (", ".join(SCHEDULER_NAMES) + f" (default {DEFAULT_SCHEDULER}; a flow-matching "
                  "model: euler or euler-a), or one of pddlib's own samplers (pddlib.samplers: "
                  "pd-ddim, pd-ddpm, ...), which sample every objective")


def add_course(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib course`: run every notebook headless and summarise."""
    p = sub.add_parser("course", help="run every notebook in order, headless")
    p.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    p.add_argument("--out", type=Path, default=Path("runs/course"))
    p.add_argument("--fast", action="store_true", help="tiny sizes (sets PDD_FAST=1)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")

    def run(args: argparse.Namespace) -> int:
        from pddlib.course import run_notebooks

        results = run_notebooks(args.notebooks, args.out, fast=args.fast,
                                cell_timeout=args.timeout)
        return 0 if all(r.ok for r in results) else 1

    p.set_defaults(func=run)


def add_scrape(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib scrape`: public-domain images from Wikimedia Commons, resumable."""
    from pddlib.data.commons import DEFAULT_API, DEFAULT_CATEGORY, STANDARD_WIDTHS

    p = sub.add_parser("scrape", help="collect public-domain images from Wikimedia Commons")
    p.add_argument("--email", required=True, help="your contact e-mail (sent in the User-Agent)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (rerun to resume)")
    p.add_argument("--category", action="append", dest="categories", metavar="NAME",
                   help=f"category to walk (repeatable; default {DEFAULT_CATEGORY!r})")
    p.add_argument("--depth", type=int, default=0, help="subcategory levels to walk")
    p.add_argument("--limit", type=int, default=None, help="stop at this many images")
    p.add_argument("--width", type=int, default=250, choices=STANDARD_WIDTHS,
                   help="thumbnail width (a standard Commons width)")
    p.add_argument("--labels", default=None, metavar="MAPPING",
                   help="category->class: a JSON file, JSON text or 'Category=label;...'")
    p.add_argument("--allow-cc0", action="store_true", help="also accept CC0 files")
    p.add_argument("--api", default=DEFAULT_API, help="Action API endpoint")

    def run(args: argparse.Namespace) -> int:
        from pddlib.data.commons import scrape

        summary = scrape(args.email, args.out,
                         categories=args.categories or (DEFAULT_CATEGORY,), depth=args.depth,
                         limit=args.limit, width=args.width, labels=args.labels,
                         allow_cc0=args.allow_cc0, api=args.api)
        print(summary)
        return 0

    p.set_defaults(func=run)


def add_eval(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib eval`: FD, KID, precision and recall of a model against held-out images."""
    from pddlib.metrics.spaces import quality_spaces

    p = sub.add_parser("eval", help=f"measure sample quality (FD-{DEFAULT_JUDGE} offline, FID online)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--n", type=int, default=1000, help="images to generate")
    p.add_argument("--features", choices=quality_spaces(), default=DEFAULT_JUDGE,
                   help=f"a feature space: a judge (offline, FD-<judge>; default {DEFAULT_JUDGE}) "
                        "or inception (standard FID; needs its cached weights)")
    p.add_argument("--judge", choices=JUDGE_NAMES, default=DEFAULT_JUDGE,
                   help="the classifier that names each sample's class (class agreement)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (fd, agreement, per_class, ...) on stdout")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="denoising steps")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                   help="classifier-free guidance scale")
    p.add_argument("--scheduler", default=DEFAULT_SCHEDULER, help=SCHEDULER_HELP)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="openclipart", help="real images: openclipart, pdcorpus or a folder")
    p.add_argument("--prefetch-weights", action="store_true",
                   help="download the FID Inception weights into the torch cache and exit")

    def run(args: argparse.Namespace) -> int:
        if args.prefetch_weights:
            from pddlib.metrics.inception import prefetch_weights

            print(f"FID Inception weights: {prefetch_weights()}")
            return 0
        if args.model is None:
            raise ValueError("--model DIR is required (or --prefetch-weights)")
        from pddlib.metrics.evaluate import EvalConfig, evaluate_model

        config = EvalConfig(n=args.n, features=args.features, judge=args.judge, steps=args.steps,
                            guidance=args.guidance, scheduler=args.scheduler, seed=args.seed,
                            data=args.data)
        result = evaluate_model(args.model, config)
        print(json.dumps(result.to_dict()) if args.json else result)
        from pddlib import runs
        from pddlib.provenance import eval_metrics, record_metrics

        record_metrics(args.model, eval_metrics(result))  # the model card reports it
        # With --json, stdout holds the JSON object alone.
        print(f"recorded in {args.model / runs.METRICS}; `pddlib card --model {args.model}` "
              "puts it in the model card", file=sys.stderr if args.json else sys.stdout)
        return 0

    p.set_defaults(func=run)


def add_train(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib train`: train a UNet preset on the embedded set or a scraped folder."""
    p = sub.add_parser("train", help="train a diffusion UNet (resumable)")
    p.add_argument("--data", default="openclipart", help="openclipart, pdcorpus or a scraped folder")
    p.add_argument("--preset", default="cpu-latent",
                   help="cpu-latent (the course recipe), cpu-reference (the long reference run), "
                        "cpu-tiny (pixels), colab-t4 or gpu-base")
    p.add_argument("--out", type=Path, required=True, help="output folder (a diffusers pipeline)")
    p.add_argument("--conditional", action=argparse.BooleanOptionalAction, default=True,
                   help="class-conditional, for guidance (default); --no-conditional: not")
    p.add_argument("--max-steps", type=int, help="optimizer steps (default: the preset's)")
    p.add_argument("--objective",
                   help="what the UNet learns to predict: a name in pddlib.objectives (e.g. "
                        "v_prediction, epsilon, flow; default: the preset's)")
    p.add_argument("--unlabelled", metavar="SOURCE",
                   help="also train on SOURCE's images (e.g. pdcorpus) without a class: those "
                        "that are not, and do not duplicate, any --data image")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--seed", type=int, default=0)

    def run(args: argparse.Namespace) -> int:
        from pddlib.card import write_card
        from pddlib.data import load_images
        from pddlib.recipes import recipe
        from pddlib.training import train

        overrides = {"conditional": args.conditional, "seed": args.seed}
        if args.max_steps is not None:
            overrides["max_steps"] = args.max_steps
        if args.objective is not None:  # with the fields it needs (flow: no min-SNR weights)
            from pddlib.objectives import objective_class

            overrides.update(prediction_type=args.objective,
                             **objective_class(args.objective).config_defaults)
        config = recipe(args.preset, **overrides)
        # Train on the train split: the held-out images stay unseen for evaluation.
        data = load_images(args.data, split="train")
        if args.unlabelled:
            from pddlib.data.unlabelled import outside, with_unlabelled

            extra = outside(load_images(args.unlabelled), load_images(args.data))
            data = with_unlabelled(data, extra)
        result = train(config, data, args.out, resume=args.resume)
        card = write_card(args.out)  # after training: a card problem never stops a run
        print(f"trained {result.step} steps into {result.out_dir} (loss {result.loss:.4f}, "
              f"{result.images_per_second:.1f} img/s); model card {card}")
        return 0

    p.set_defaults(func=run)


def add_sample(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib sample`: a grid of samples from a trained model."""
    p = sub.add_parser("sample", help="sample a grid of images from a trained model")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--n", type=int, default=16, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="denoising steps")
    p.add_argument("--scheduler", default=DEFAULT_SCHEDULER, help=SCHEDULER_HELP)
    p.add_argument("--guidance", type=float,
                   help=f"guidance scale (default {DEFAULT_GUIDANCE:g}, or 1 if uncond.)")
    p.add_argument("--label", help="class name (default: every class in turn)")
    p.add_argument("--out", type=Path, default=Path("grid.png"), help="PNG file to write")

    def run(args: argparse.Namespace) -> int:
        import math

        import torch

        from pddlib.data.transforms import pil_grid
        from pddlib.pipeline import PDDiffusionPipeline
        from pddlib.precision import default_device

        pipe = PDDiffusionPipeline.from_run(args.model).with_scheduler(args.scheduler)
        pipe = pipe.to(default_device())  # the GPU when there is one
        labels = args.label if args.label is not None else pipe.classes_in_turn(args.n)
        guidance = pipe.effective_guidance(
            DEFAULT_GUIDANCE if args.guidance is None else args.guidance, labels)
        images = pipe(args.n, class_labels=labels, guidance_scale=guidance,
                      num_inference_steps=args.steps,
                      generator=torch.Generator().manual_seed(args.seed)).images
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pil_grid(images, nrow=math.ceil(math.sqrt(args.n))).save(args.out)
        print(f"wrote {args.out} ({args.n} images, {args.scheduler}, {args.steps} steps, "
              f"guidance {guidance})")
        return 0

    p.set_defaults(func=run)


def add_card(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib card`: (re)write a model folder's model card from what it records."""
    p = sub.add_parser("card", help="write the model card (README.md) of a trained model")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--license", default="cc0-1.0", help="licence of the weights (HF identifier)")
    p.add_argument("--example", help="class the usage example asks for (one you found it draws)")

    def run(args: argparse.Namespace) -> int:
        from pddlib.card import write_card
        from pddlib.folders import check_pipeline
        from pddlib.provenance import read_manifest, verify_manifest

        check_pipeline(args.model)  # a damaged folder gets its one line, not a card
        path = write_card(args.model, license=args.license, example=args.example)
        failures = verify_manifest(read_manifest(args.model))
        print(f"wrote {path}; manifest: "
              + (f"{len(failures)} rows FAIL the public-domain check" if failures
                 else "every image public domain / CC0 with a recorded reason"))
        return 1 if failures else 0

    p.set_defaults(func=run)


def add_check(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib check`: whether a model folder and its checkpoints are whole (SHA-256)."""
    p = sub.add_parser("check", help="check that a model folder is whole (after copying it, "
                                     "before a workshop)")
    p.add_argument("--model", required=True,
                   help=MODEL_HELP + ", a checkpoint or an autoencoder folder")

    def run(args: argparse.Namespace) -> int:
        from pddlib.checkpoint import checkpoint_folders
        from pddlib.folders import DamagedFolder, check_checkpoint, check_folder
        from pddlib.reference import REFERENCE, check_shipped, shipped_folder

        shipped = shipped_folder()
        if args.model_given == REFERENCE or args.model.resolve() == shipped.resolve():
            print(f"{shipped}: shipped weights, {check_shipped(shipped)}")
            if args.model_given != REFERENCE:
                return 0
        print(f"{args.model}: {check_folder(args.model, full=True)}")
        damaged = 0
        for ckpt in checkpoint_folders(args.model):
            try:
                print(f"{ckpt}: {check_checkpoint(ckpt, full=True)}")
            except DamagedFolder as e:  # the model loads; resuming would pass over this one
                damaged += 1
                print(f"pddlib check: warning: {e}", file=sys.stderr)
        return 1 if damaged else 0

    p.set_defaults(func=run)


def add_pack(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib pack`: one zip of a trained run, to copy onto a class's laptops."""
    p = sub.add_parser("pack", help="zip a trained run (checked first) to copy onto other machines")
    p.add_argument("--model", default=None,
                   help="a `pddlib train` folder; default: the course model in runs/")
    p.add_argument("--out", type=Path, default=Path("course-model.zip"), help="zip file to write")

    def run(args: argparse.Namespace) -> int:
        from pddlib.trained import course_config, course_run_dir
        from pddlib.transfer import pack

        model = args.model if args.model is not None else course_run_dir(course_config())
        print(f"packed {model} into {pack(model, args.out)}; on each machine: "
              f"`pddlib unpack {args.out.name}`")
        return 0

    p.set_defaults(func=run)


def add_unpack(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib unpack`: a packed run into runs/, checked before it is used."""
    p = sub.add_parser("unpack", help="unzip a packed run into runs/, checked on the way in")
    p.add_argument("archive", type=Path, help="the zip `pddlib pack` wrote")
    p.add_argument("--runs", type=Path, default=None, help="where runs live (default: runs/)")

    def run(args: argparse.Namespace) -> int:
        from pddlib.transfer import unpack

        print(f"unpacked and checked {unpack(args.archive, args.runs)}: the notebooks use it")
        return 0

    p.set_defaults(func=run)


def add_figures(sub: argparse._SubParsersAction) -> None:
    """Register `pddlib figures`: README.md's figures from a model (default: the course model)."""
    p = sub.add_parser("figures", help="draw the README figures from a model")
    p.add_argument("--model", help=MODEL_HELP + "; default: the course model in runs/")
    p.add_argument("--beside", help="a second model drawn beside it per class, e.g. course "
                                    "(the learner's course model, trained first if runs/ has none)")
    p.add_argument("--out", type=Path, default=Path("images"), help="folder for the PNGs")

    def run(args: argparse.Namespace) -> int:
        from pddlib.figures import make_figures

        model = getattr(args, "model_given", args.model)  # "reference" names it in a figure
        for path in make_figures(args.out, model=model, beside=args.beside):
            print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
        return 0

    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="pddlib", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pddlib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_scrape, add_train, add_sample, add_eval, add_card, add_check, add_pack,
                add_unpack, add_course, add_figures):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pddlib` console script."""
    import warnings

    from pddlib.data.checks import ExcludedRowsWarning

    args = build_parser().parse_args(argv)

    def show(message, category, *rest, **kw) -> None:
        print(f"pddlib {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            # What a load left out is said once, as the command's own words.
            warnings.simplefilter("always", ExcludedRowsWarning)
            warnings.showwarning = show
            if getattr(args, "model", None) is not None:  # "reference" -> its working copy
                from pddlib.reference import resolve_model

                args.model_given = args.model
                args.model = resolve_model(args.model)
            return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as e:
        # Errors a user can cause (a damaged model folder among them) get one clear line, not a
        # traceback.
        line = " ".join(str(e).split())
        print(f"pddlib {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

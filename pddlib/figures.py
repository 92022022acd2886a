"""The figures README.md shows, regenerated from a real course run (`make figures`).

Each figure is one short call into pddlib, made from a model folder (README's: the shipped
reference model) or else the course model in runs/ (trained first if there is none:
`course_model`). Small PNGs: 32 px images drawn a little larger, nothing more.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pddlib.defaults import DEFAULT_GUIDANCE
from pddlib.runs import SAMPLES, sample_grids, step_of

FIGURES = ("noising.png", "training_progress.png", "samples_per_class.png",
           "guidance_sweep.png", "closest_pairs.png", "latent_space.png")
BESIDE = "yours_and_reference.png"  # drawn when a second model is given
DPI = 72  # small files: the images are 32 px anyway


def save(fig, path: Path) -> Path:
    """Write a matplotlib figure as a compact PNG."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def noising_figure(data, n: int = 3, seed: int = 0):
    """Forward noising of n training images at six timesteps (the course's cosine schedule)."""
    from pddlib import noise
    from pddlib.data import to_tensor
    from pddlib.viz import noising_strip

    abar = noise.alphas_cumprod(noise.make_betas("squaredcos_cap_v2", 1000))
    rows = range(0, len(data), max(1, len(data) // n))[:n]
    x0 = to_tensor(data.select(list(rows))["image"], 32)
    return noising_strip(x0, [0, 100, 250, 500, 750, 999], abar,
                         torch.Generator().manual_seed(seed), title="forward noising")


def latent_figure(data, n: int = 8, seed: int = 0):
    """n images beside what the shipped autoencoder gives back from their latents."""
    from pddlib.autoencoder import decode, encode, load_autoencoder
    from pddlib.data import to_tensor
    from pddlib.viz import image_rows

    ae = load_autoencoder("pd-ae32")
    x = to_tensor(data.shuffle(seed=seed).select(range(n))["image"], 32)
    with torch.no_grad():
        back = decode(ae, encode(ae, x)).clamp(-1, 1)
    return image_rows({"held-out image": x, "from its latent": back}, size=1.1,
                      title="pd-ae32: 3 x 32 x 32 pixels -> 4 x 8 x 8 latent -> pixels")


def progress_figure(run_dir: Path):
    """The trainer's sample grids (same noise, every class in turn) as training went."""
    from PIL import Image

    from pddlib.viz import new_figure

    grids = sample_grids(run_dir)
    if not grids:
        raise FileNotFoundError(f"{Path(run_dir) / SAMPLES} holds no sample grids to show.")
    fig, axes = new_figure(1, len(grids), panel=(2.2, 2.4))
    for ax, path in zip(axes.flat, grids, strict=True):
        ax.imshow(Image.open(path), interpolation="nearest")
        ax.set_title(f"step {step_of(path)}")
        ax.set_axis_off()
    fig.suptitle("samples as training goes (EMA weights, same noise)")
    return fig


def side_by_side_figure(pipes: dict, n: int, steps: int, seed: int = 0):
    """n samples of every class from each model (name -> pipeline), same seeds, side by side."""
    from pddlib.experiments import sample
    from pddlib.viz import grouped_rows

    names = next(iter(pipes.values())).class_names
    rows = {c: {name: sample(pipe, seed=seed, n=n, steps=steps, class_label=c,
                             guidance=DEFAULT_GUIDANCE) for name, pipe in pipes.items()}
            for c in names}
    return grouped_rows(rows, size=0.8, title=f"{n} samples a class, the same seeds "
                                              f"(guidance {DEFAULT_GUIDANCE:g})")


def load_model(model: str | Path, fast: bool):
    """(pipeline, folder) of "course" (trained first if runs/ has none), "reference" or a run."""
    from pddlib.pipeline import PDDiffusionPipeline
    from pddlib.reference import resolve_model
    from pddlib.trained import course_config, course_model, course_run_dir

    if str(model) == "course":
        return course_model(fast=fast), course_run_dir(course_config(fast=fast))
    run_dir = resolve_model(model)
    return PDDiffusionPipeline.from_run(run_dir), run_dir


def make_figures(out_dir: str | Path = "images", *, model: str | Path | None = None,
                 beside: str | Path | None = None, fast: bool | None = None,
                 seed: int = 0) -> list[Path]:
    """Write FIGURES into out_dir from `model` (a run folder, "reference" or "course").

    beside: a second model (e.g. "course", the learner's) drawn beside `model`, per class.
    """
    from pddlib.data import load_images
    from pddlib.experiments import guidance_sweep, sample
    from pddlib.metrics import generate_samples, replication
    from pddlib.viz import image_rows, replication_grid

    fast = os.environ.get("PDD_FAST") == "1" if fast is None else fast
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipe, run_dir = load_model(model or "course", fast)
    train = load_images("openclipart", split="train")
    names, per_class, steps = pipe.class_names, 2 if fast else 8, 2 if fast else 25

    paths = [save(noising_figure(train, seed=seed), out / FIGURES[0]),
             save(progress_figure(run_dir), out / FIGURES[1])]
    rows = {c: sample(pipe, seed=seed, n=per_class, steps=steps, class_label=c,
                   guidance=DEFAULT_GUIDANCE)
            for c in names}
    title = f"samples per class (guidance {DEFAULT_GUIDANCE:g})"
    paths.append(save(image_rows(rows, size=0.9, title=title), out / FIGURES[2]))
    classes = names[::4] if len(names) > 4 else names
    sweep = guidance_sweep(pipe, classes, [0, 1, 2, 4, 6, 8], n=1, steps=steps, seed=seed,
                           measure=False)
    paths.append(save(image_rows(sweep.rows(0), [f"w = {w:g}" for w in sweep.scales],
                                 title="guidance scale (every image from the same start noise)"),
                      out / FIGURES[3]))
    samples, _ = generate_samples(pipe, 16 if fast else 64, steps=steps,
                                  guidance=DEFAULT_GUIDANCE, seed=seed, progress=False)
    report = replication(samples, train, spaces=("pixel",), background=False, seed=seed,
                         progress=False)
    pairs = replication_grid(report["pixel"], samples, train, n=8,
                             title="closest pairs: sample above nearest training image")
    paths.append(save(pairs, out / FIGURES[4]))
    paths.append(save(latent_figure(load_images("openclipart", split="heldout"), seed=seed),
                      out / FIGURES[5]))
    if beside is not None:
        pipes = {_name(beside): load_model(beside, fast)[0], _name(model or "course"): pipe}
        paths.append(save(side_by_side_figure(pipes, 2 if fast else 4, steps, seed), out / BESIDE))
    return paths


def _name(model: str | Path) -> str:
    """A model's name in a figure: the learner's course model, the reference, or its folder."""
    return {"course": "your course model", "reference": "the reference"}.get(str(model),
                                                                               Path(model).name)

"""Evaluate a trained model: sample it, then score the samples against the held-out split.

Used by `pddlib eval` and notebook 05. Samples are class-balanced for conditional models (the
held-out split is stratified), drawn from one seeded generator, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from pddlib.defaults import DEFAULT_GUIDANCE, DEFAULT_JUDGE, DEFAULT_SCHEDULER, DEFAULT_STEPS
from pddlib.metrics import judge
from pddlib.metrics.quality import QualityReport, quality_report
from pddlib.pixels import unit_to_uint8
from pddlib.progress import progress_bar


@dataclass(frozen=True)
class EvalConfig:
    """What `pddlib eval` measures and how."""

    n: int = 1000  # generated images
    features: str = DEFAULT_JUDGE  # a quality space (pddlib.metrics.spaces): a judge or "inception"
    judge: str = DEFAULT_JUDGE  # who names the class of each sample (class agreement)
    steps: int = DEFAULT_STEPS  # denoising steps
    guidance: float = DEFAULT_GUIDANCE  # classifier-free guidance (1 = none; unconditional: 1)
    scheduler: str = DEFAULT_SCHEDULER  # sampler (a name in pddlib.schedulers)
    batch_size: int | None = None  # images per pipeline call (None: sampling_batch_size)
    seed: int = 0
    data: str = "openclipart"  # real images: the held-out split of this source


@dataclass(frozen=True)
class EvalResult:
    """Scores of one model, plus how often the judge recognises the requested class."""

    report: QualityReport
    class_agreement: float | None  # None: unconditional model, or classes the judge does not know
    per_class: dict[str, float] | None  # class name -> agreement, as class_agreement
    config: EvalConfig
    note: str = ""  # what a reader must know to compare the numbers (e.g. a resolution change)

    def __str__(self) -> str:
        c = self.config
        lines = [(f"{c.n} samples, {c.scheduler} {c.steps} steps, guidance {c.guidance}, "
                 f"seed {c.seed}, against the {c.data} held-out split"), str(self.report)]
        if self.class_agreement is not None:
            lines.append(f"class agreement ({c.judge}) {self.class_agreement:.3f}; per class:")
            lines += [f"  {name:<12} {value:.3f}" for name, value in self.per_class.items()]
        return "\n".join(lines + ([f"note: {self.note}"] if self.note else []))

    def to_dict(self) -> dict:
        """The result as plain JSON types: fd, its name, every other score, agreement, per class."""
        r, c = self.report, self.config
        scores = dict(r.scores)
        return {"fd": scores.pop("fd"), "fd_name": r.fd_name, "features": r.features,
                "judge": c.judge, **scores, "agreement": self.class_agreement,
                "per_class": self.per_class, "n": r.n_fake, "n_real": r.n_real,
                "steps": c.steps, "scheduler": c.scheduler, "guidance": c.guidance,
                "seed": c.seed, "note": self.note}


def sampling_batch_size(device: torch.device | str) -> int:
    """Images per pipeline call: few on CPU (cache-sized activations run faster), many on GPUs."""
    return 16 if torch.device(device).type == "cpu" else 256


def generate_samples(
    pipe, n: int, *, steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE,
    seed: int = 0, batch_size: int | None = None, progress: bool = True,
    guidance_interval: tuple[float, float] = (0.0, 1.0), weak_unet=None,
) -> tuple[np.ndarray, list[int] | None]:
    """(uint8 images (n, S, S, 3), class labels or None): n samples, classes in turn if conditional.

    weak_unet: guide away from this weaker model instead of the null class (autoguidance).
    """
    labels = pipe.classes_in_turn(n)
    generator = torch.Generator().manual_seed(seed)
    out = []
    batch_size = batch_size or sampling_batch_size(pipe.device)
    for i in progress_bar(range(0, n, batch_size), desc="sampling", disable=not progress):
        b = min(batch_size, n - i)
        images = pipe(b, class_labels=labels[i:i + b] if labels else None,
                      guidance_scale=guidance, num_inference_steps=steps,
                      generator=generator, output_type="np",
                      guidance_interval=guidance_interval, weak_unet=weak_unet).images
        out.append(unit_to_uint8(images))
    return np.concatenate(out), labels


def evaluate_pipeline(pipe, real, config: EvalConfig, *, progress: bool = True) -> EvalResult:
    """Sample `pipe` as config says and score the samples against the real images."""
    judge.check_judge(config.judge)
    # Report the guidance that was really applied (none for an unconditional model).
    config = replace(config, guidance=pipe.effective_guidance(
        config.guidance, pipe.classes_in_turn(1)))
    if pipe.class_names and config.n < len(pipe.class_names):
        raise ValueError(f"n = {config.n} samples leave some of the model's "
                         f"{len(pipe.class_names)} classes without one: a per-class figure needs "
                         f"n >= {len(pipe.class_names)} (8 or more per class to mean much).")
    images, labels = generate_samples(pipe, config.n, steps=config.steps, guidance=config.guidance,
                              seed=config.seed, batch_size=config.batch_size, progress=progress)
    report = quality_report(real, images, config.features, progress=progress,
                            kid_subset_size=min(1000, config.n))
    agreement = per_class = None
    if labels is not None and judge.knows_classes(pipe.class_names, config.judge):
        requested = [pipe.class_names[i] for i in labels]
        want, hits = judge.agreements(images, requested, judge=config.judge)
        agreement = float(hits.mean())
        per_class = judge.agreement_by_class(want, hits, config.judge)
    size, judge_size = images.shape[1], judge.info(config.judge).image_size
    note = "" if size == judge_size else (
        f"the model draws {size} px images and the judge looks at {judge_size} px, so they were "
        "resized: compare these scores only with models of the same resolution.")
    return EvalResult(report, agreement, per_class, config, note)


def evaluate_model(model_dir, config: EvalConfig = EvalConfig(), *, progress: bool = True,
                   device: str | torch.device | None = None) -> EvalResult:
    """Load the trained pipeline in model_dir and evaluate it against the held-out split.

    device: where it samples (default: the GPU if there is one, else the CPU).
    """
    from pddlib.data import load_images
    from pddlib.metrics.features import get_extractor
    from pddlib.metrics.spaces import quality_space
    from pddlib.pipeline import PDDiffusionPipeline
    from pddlib.precision import default_device

    # Fail now (an unknown space, no FID weights offline), not after sampling.
    get_extractor(quality_space(config.features).name)
    pipe = PDDiffusionPipeline.from_run(model_dir).with_scheduler(config.scheduler)
    pipe = pipe.to(device or default_device())  # loaded here: no one else's copy is moved
    real = load_images(config.data, split="heldout")
    return evaluate_pipeline(pipe, real, config, progress=progress)

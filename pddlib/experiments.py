"""Notebook 04's experiments: the sampling knobs turned with evidence (seeds, steps, guidance, inside).

Notebook 04's figures are short calls into these functions. Each one samples a
`PDDiffusionPipeline` with explicit seeds and returns tensors (N, 3, S, S) in [-1, 1] (what
`pddlib.viz` draws) or a small pandas table of measurements; nothing here draws a figure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor

from pddlib.autoencoder import decode
from pddlib.defaults import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS
from pddlib.models import image_shape
from pddlib.pipeline import Label, PDDiffusionPipeline
from pddlib.pixels import to_uint8, unit_to_model
from pddlib.reverse import from_ve
from pddlib.schedulers import NAMES, is_flow


def seeded(seed: int) -> torch.Generator:
    """A fresh CPU generator seeded with `seed` (CPU draws are the same on every device)."""
    return torch.Generator().manual_seed(int(seed))


def initial_noise(pipe: PDDiffusionPipeline, n: int = 1,
                  generator: torch.Generator | list[torch.Generator] | None = None) -> torch.Tensor:
    """The start noise x_T (n, C, S, S) that `pipe(n, generator=generator)` draws first.

    On the pipeline's device, like everything that feeds its UNet; drawn on the generator's.
    """
    shape = (n, *image_shape(pipe.unet))
    # Exactly the pipeline's own call, so passing the result as `latents=` reproduces its images.
    return randn_tensor(shape, generator=generator, device=pipe.device, dtype=pipe.unet.dtype)


def sample(pipe: PDDiffusionPipeline, *, seed: int | Sequence[int] = 0, n: int | None = None,
           scheduler: str | None = None, steps: int = DEFAULT_STEPS, class_label: Label | None = None,
           guidance: float = 1.0, latents: torch.Tensor | None = None) -> torch.Tensor:
    """Images (n, 3, S, S) in [-1, 1]; `seed` a list gives one generator (and image) per seed."""
    if scheduler is not None:
        pipe = pipe.with_scheduler(scheduler)
    if isinstance(seed, int):
        n = n or (len(latents) if latents is not None else 1)
        generator: torch.Generator | list[torch.Generator] = seeded(seed)
    else:
        generator = [seeded(s) for s in seed]
        n = len(generator)
    out = pipe(n, class_labels=class_label, guidance_scale=guidance, num_inference_steps=steps,
               generator=generator, latents=latents, output_type="pt").images
    return unit_to_model(out)


def steps_sweep(pipe: PDDiffusionPipeline, scheduler: str, steps: Sequence[int], *, seed: int = 0,
                class_label: Label | None = None, guidance: float = 1.0) -> torch.Tensor:
    """The same seed sampled at each step count: images (len(steps), 3, S, S) in [-1, 1]."""
    pipe = pipe.with_scheduler(scheduler)
    return torch.cat([sample(pipe, seed=seed, steps=s, class_label=class_label, guidance=guidance)
                      for s in steps])


# ---------------------------------------------------------------- time


def time_sampling(pipe: PDDiffusionPipeline, schedulers: Sequence[str] = NAMES,
                  steps: Sequence[int] = (5, 10, 25, 50), *, batch_size: int = 4,
                  repeats: int = 2, class_label: Label | None = None, guidance: float = 1.0,
                  seed: int = 0):
    """Measured wall time per image on this device for each (scheduler, steps): a DataFrame.

    Columns: scheduler, steps, seconds_per_image (the fastest of `repeats` runs: other
    programs only ever add time, so the minimum is the best estimate of the cost itself),
    seconds_per_step (per image), batch_size.
    """
    import pandas as pd

    rows, cuda = [], pipe.device.type == "cuda"  # GPU work is asynchronous: wait before timing
    for name in schedulers:
        p = pipe.with_scheduler(name)
        p(1, class_labels=class_label, guidance_scale=guidance, num_inference_steps=2,
          generator=seeded(seed), output_type="pt")  # warm-up: first calls allocate and dispatch
        for n_steps in steps:
            best = math.inf
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                p(batch_size, class_labels=class_label, guidance_scale=guidance,
                  num_inference_steps=n_steps, generator=seeded(seed), output_type="pt")
                if cuda:
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            per_image = best / batch_size
            rows.append({"scheduler": name, "steps": int(n_steps), "seconds_per_image": per_image,
                         "seconds_per_step": per_image / n_steps, "batch_size": batch_size})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- quality


def quality_vs_steps(pipe: PDDiffusionPipeline, real, scheduler: str = DEFAULT_SCHEDULER,
                     steps: Sequence[int] = (5, 10, 25, 50), *, n: int = 128,
                     guidance: float = DEFAULT_GUIDANCE, seed: int = 0,
                     batch_size: int | None = None):
    """FD-<judge> to the real images (and the judge's class agreement) at each step count.

    The same seed, so the same start noise, at every step count; n class-balanced samples.
    A DataFrame with columns scheduler, steps, fd (FD on the default judge's features),
    class_agreement (NaN for unconditional models or classes the judge does not know), n.
    """
    import pandas as pd

    from pddlib.metrics import fd
    from pddlib.metrics.evaluate import generate_samples
    from pddlib.metrics.judge import class_agreement, knows_classes

    p = pipe.with_scheduler(scheduler)
    agree = knows_classes(pipe.class_names)
    rows = []
    for n_steps in steps:
        images, labels = generate_samples(p, n, steps=n_steps, guidance=guidance, seed=seed,
                                          batch_size=batch_size, progress=False)
        row = {"scheduler": scheduler, "steps": int(n_steps),
               "fd": fd(real, images, progress=False),
               "class_agreement": float("nan"), "n": n}
        if agree and labels is not None:
            row["class_agreement"] = class_agreement(images, [pipe.class_names[i] for i in labels])
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- guidance


def diversity(images: torch.Tensor, space: str = "pixels") -> float:
    """Mean pairwise distance between images (N, 3, S, S) in [-1, 1]; 0 when all are equal.

    space="pixels": root-mean-square difference per pixel value (0..2). space="judge": Euclidean
    distance between the default judge's features, which care about shapes, not exact pixels.
    """
    if len(images) < 2:
        raise ValueError("diversity needs at least two images")
    if space == "pixels":
        x = images.flatten(1).double()
        return float(torch.pdist(x).mean() / math.sqrt(x.shape[1]))
    if space == "judge":
        from pddlib.metrics import extract_features

        f = extract_features(to_uint8(images), cache=False, progress=False)
        return float(torch.pdist(torch.as_tensor(f).double()).mean())
    raise ValueError(f"space must be 'pixels' or 'judge', got {space!r}")


@dataclass(frozen=True)
class GuidanceSweep:
    """Samples of each (class, guidance scale) from shared start noise, and what was measured."""

    classes: list[str]
    scales: list[float]
    images: dict[tuple[str, float], torch.Tensor]  # (class, scale) -> (n, 3, S, S) in [-1, 1]
    table: object  # pandas DataFrame: one row per (class, scale)

    def by_scale(self):
        """The table averaged over classes: one row per guidance scale."""
        return self.table.drop(columns="class").groupby("guidance", as_index=False).mean()

    def rows(self, index: int = 0) -> dict[str, torch.Tensor]:
        """Class name -> image `index` at each scale (len(scales), 3, S, S): for viz.image_rows."""
        return {c: torch.stack([self.images[c, s][index] for s in self.scales])
                for c in self.classes}

    def grid(self, index: int = 0) -> torch.Tensor:
        """Image `index` of every (class, scale), class by class: (C * len(scales), 3, S, S)."""
        return torch.stack([self.images[c, s][index] for c in self.classes for s in self.scales])


def guidance_sweep(pipe: PDDiffusionPipeline, classes: Sequence[Label] | None = None,
                   scales: Sequence[float] = (0, 1, 2, 3, 5, 8), *, n: int = 8,
                   steps: int = 20, scheduler: str = DEFAULT_SCHEDULER, seed: int = 0,
                   measure: bool = True) -> GuidanceSweep:
    """Sample n images per class at each guidance scale, all scales from the same start noise.

    With `measure`, the table says for each (class, scale): class_agreement (the fraction the
    judge assigns to the requested class; NaN if it does not know the classes) and diversity in
    pixels and in the judge's features (mean pairwise distance within the class's n samples).
    """
    import pandas as pd

    if not pipe.class_names:
        raise ValueError("Guidance needs a class-conditional model; this one is unconditional.")
    p = pipe.with_scheduler(scheduler)
    names = [pipe.class_names[int(c)] if not isinstance(c, str) else c
             for c in (classes if classes is not None else range(len(pipe.class_names)))]
    p.label_ids(names, len(names))  # one clear error for an unknown class, before any sampling
    from pddlib.metrics.judge import class_agreement, knows_classes

    judged = measure and knows_classes(pipe.class_names)
    # One start noise per image slot, shared by every class and scale: differences between
    # columns of the grid are then caused by the guidance scale alone.
    latents = initial_noise(p, n, seeded(seed))
    images, rows = {}, []
    for name in names:
        for w in scales:
            # Stochastic samplers (DDPM) also draw noise at every step: reseed for each call.
            x = p(n, class_labels=name, guidance_scale=float(w), num_inference_steps=steps,
                  generator=seeded(seed + 1), latents=latents, output_type="pt").images
            x = unit_to_model(x)
            images[name, float(w)] = x
            if not measure:
                continue
            row = {"class": name, "guidance": float(w), "class_agreement": float("nan"),
                   "diversity_pixels": diversity(x) if n > 1 else float("nan"),
                   "diversity_judge": float("nan")}
            if judged:
                row["class_agreement"] = class_agreement(to_uint8(x), [name] * n)
                if n > 1:
                    row["diversity_judge"] = diversity(x, "judge")
            rows.append(row)
    return GuidanceSweep(names, [float(w) for w in scales], images, pd.DataFrame(rows))


# ---------------------------------------------------------------- inside the loop


@dataclass(frozen=True)
class Trajectory:
    """x_t and the predicted clean image x0 after chosen steps of one sampling run."""

    steps: list[int]  # step indices (0 = first step) that were recorded
    timesteps: list[int]  # the timestep t each recorded step denoised from
    # Both in image space: a latent-diffusion model's latents are decoded by its autoencoder.
    x_t: torch.Tensor  # (K, N, 3, S, S): the latents after each recorded step, in [-1, 1] scale
    x0: torch.Tensor  # (K, N, 3, S, S): the model's prediction of the clean image at that step
    images: torch.Tensor  # (N, 3, S, S) in [-1, 1]: the final images
    num_inference_steps: int


def evenly_spaced_steps(num_inference_steps: int, k: int = 6) -> list[int]:
    """k step indices from the first to the last, evenly spaced (fewer if there are fewer steps)."""
    k = max(1, min(k, num_inference_steps))
    return sorted({round(i * (num_inference_steps - 1) / max(1, k - 1)) for i in range(k)})


def carries_ve(pipe: PDDiffusionPipeline) -> bool:
    """Whether pipe's loop carries x0 + sigma noise (diffusers' Euler-type DDPM-family samplers)."""
    scheduler = pipe.scheduler
    return pipe.sampler is None and not is_flow(scheduler) and hasattr(scheduler, "sigmas")


def collect_trajectory(pipe: PDDiffusionPipeline, *, at: Sequence[int] | None = None,
                       seed: int = 0, n: int = 1, scheduler: str = DEFAULT_SCHEDULER, steps: int = DEFAULT_STEPS,
                       class_label: Label | None = None, guidance: float = 1.0) -> Trajectory:
    """Run the sampler with `callback_on_step_end`, keeping x_t and predicted x0 at steps `at`.

    `at` are step indices (default: 6 evenly spaced). x0 comes from the step's
    `pred_original_sample`: pddlib's samplers and most diffusers schedulers report it.
    """
    p = pipe.with_scheduler(scheduler)
    keep = set(evenly_spaced_steps(steps) if at is None else at)
    if any(not 0 <= i < steps for i in keep):
        raise ValueError(f"step indices must be in 0..{steps - 1}, got {sorted(keep)}")
    record: dict[str, list] = {"steps": [], "timesteps": [], "x_t": [], "x0": []}

    def on_step_end(pipe_, i: int, t, kwargs: dict) -> dict:
        if i in keep:
            x0 = kwargs["pred_original_sample"]
            if x0 is None:
                raise ValueError(f"The {scheduler} scheduler does not report the predicted x0; "
                                 f"look inside the loop with another, e.g. {DEFAULT_SCHEDULER} "
                                 "or one of pddlib.samplers.")
            x_t = kwargs["latents"]
            if carries_ve(pipe_):
                # After the step, step_index points at the sigma of the new x.
                x_t = from_ve(x_t, pipe_.scheduler.sigmas[pipe_.scheduler.step_index])
            record["steps"].append(i)
            record["timesteps"].append(int(t))
            record["x_t"].append(x_t.detach().cpu().clone())
            record["x0"].append(x0.detach().cpu().clone())
        return kwargs

    out = p(n, class_labels=class_label, guidance_scale=guidance, num_inference_steps=steps,
            generator=seeded(seed), output_type="pt",
            callback_on_step_end=on_step_end).images
    x_t, x0 = torch.stack(record["x_t"]), torch.stack(record["x0"])
    if pipe.vae is not None:  # show latents as the images they decode to
        x_t, x0 = (decode(pipe.vae, z.flatten(0, 1)).unflatten(0, z.shape[:2]) for z in (x_t, x0))
    return Trajectory(record["steps"], record["timesteps"], x_t, x0, unit_to_model(out), steps)

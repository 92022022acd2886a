"""`PDDiffusionPipeline`: unconditional and class-conditional sampling with classifier-free guidance.

It follows diffusers' `DDPMPipeline` (registered `unet` + `scheduler`, `generator=`,
`num_inference_steps=`, `output_type=`) and adds class labels and guidance. Any compatible
diffusers scheduler can be swapped in with `from_config`; `pipe.with_scheduler("ddim")` returns
a copy with another sampler by short name. `PDDiffusionPipeline.from_run(folder)` loads what
`pddlib train` wrote (EMA weights, or the raw weights of the last checkpoint). Loading draws no
bar (diffusers' "Loading pipeline components..." is silenced), and sampling's bar is
`pddlib.progress`'s: a widget in a front end a person watches, text in a saved notebook.

Guidance is decided here and only here: it steers towards requested classes, so it applies
when class labels are given; without them (an unconditional model, or a conditional model's
null class) there is nothing to steer towards and `guidance_scale` has no effect.
`effective_guidance` says which scale a call really uses, for reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    EulerAncestralDiscreteScheduler,
    ImagePipelineOutput,
    UNet2DModel,
)
from diffusers.utils.torch_utils import randn_tensor

from pddlib import progress, runs
from pddlib.autoencoder import decode, factor
from pddlib.folders import check_checkpoint, check_pipeline, loaded
from pddlib.labels import indices_of
from pddlib.models import class_names_of, image_shape, null_class
from pddlib.objectives import objective_of
from pddlib.pixels import model_to_unit
from pddlib.reference import resolve_model
from pddlib.samplers import SAMPLERS
from pddlib.schedulers import SCHEDULERS, make_scheduler

Label = int | str


@dataclass(frozen=True)
class Guidance:
    """How a call turns UNet outputs into the one it steps with: labels, scale, interval."""

    labels: torch.Tensor | None  # (N,) each image's class; the null class when none was asked
    scale: float  # 1: the conditional output alone
    interval: tuple[float, float]  # guide only where t / t_max lies in [lo, hi]
    weak_unet: UNet2DModel | None  # autoguidance's weaker model, or None: the null class
    null: int | None  # the null class of a conditional model
    t_max: int  # the scheduler's num_train_timesteps

    def applies_at(self, t) -> bool:
        """Whether the step at UNet timestep t is guided."""
        lo, hi = self.interval
        return self.scale != 1.0 and lo <= float(t) / self.t_max <= hi


def check_weak_unet(weak: UNet2DModel, unet: UNet2DModel) -> None:
    """Refuse an autoguidance model that does not denoise what `unet` denoises, naming the fix."""
    if image_shape(weak) != image_shape(unet) or class_names_of(weak) != class_names_of(unet):
        raise ValueError("weak_unet must be a version of the same model: the same latent shape "
                         f"({image_shape(unet)}, got {image_shape(weak)}) and the same classes. "
                         "Train it with the same recipe for fewer steps.")


def on_other_rank() -> bool:
    """True in a data-parallel process other than rank 0 (diffusers draws no bar there)."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_rank() != 0


class PDDiffusionPipeline(DiffusionPipeline):
    """Sample images from a (class-conditional) UNet2DModel with any diffusers scheduler."""

    model_cpu_offload_seq = "unet->vae"
    _optional_components = ["vae"]  # noqa: RUF012 (diffusers reads this class attribute)

    def __init__(self, unet: UNet2DModel, scheduler, vae: AutoencoderKL | None = None) -> None:
        super().__init__()
        # vae: latent diffusion (pddlib.autoencoder); the UNet then denoises its latents.
        self.register_modules(unet=unet, scheduler=scheduler, vae=vae)
        self.sampler: str | None = None  # a pddlib sampler's name; None: the scheduler's steps

    @property
    def class_names(self) -> list[str]:
        """Names of the classes the model knows ([] when unconditional)."""
        return class_names_of(self.unet)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path | None,
                        **kwargs: Any) -> PDDiffusionPipeline:
        """diffusers' `from_pretrained`, without its "Loading pipeline components..." bar."""
        with progress.diffusers_bars_off():
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def from_run(cls, run: str | Path, weights: str = "ema") -> PDDiffusionPipeline:
        """Load a checked `pddlib train` folder (or "reference"): weights="ema" (saved) or "raw"."""
        run = resolve_model(run)
        if weights not in ("ema", "raw"):
            raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
        # A folder from someone else is data: checked whole before diffusers reads it, never run.
        check_pipeline(run)
        pipe = loaded(run, lambda: cls.from_pretrained(run, use_safetensors=True))
        if weights == "raw":
            ckpt = runs.latest_checkpoint(run)
            if ckpt is None:
                raise FileNotFoundError(f"{run} has no checkpoint with raw weights.")
            check_checkpoint(ckpt, full=False)
            unet = loaded(ckpt, lambda: UNet2DModel.from_pretrained(ckpt / runs.UNET,
                                                                    use_safetensors=True))
            pipe = cls(unet, pipe.scheduler, pipe.vae)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def with_scheduler(self, name: str) -> PDDiffusionPipeline:
        """A new pipeline sharing this UNet with the sampler `name` (this one is unchanged)."""
        if name not in SAMPLERS and name not in SCHEDULERS:
            raise ValueError(f"Unknown scheduler {name!r}; choose a diffusers scheduler "
                             f"{sorted(SCHEDULERS)} or a pddlib sampler {sorted(SAMPLERS)}.")
        if name in SAMPLERS:  # pddlib's own: steps on the objective's x0 estimate
            new = type(self)(self.unet, self.scheduler, self.vae)
            new.sampler = name
        else:  # a diffusers scheduler of the model's family
            # Latents are not bounded like pixels: never clip them to [-1, 1].
            scheduler = make_scheduler(name, self.scheduler, clip_sample=self.vae is None)
            new = type(self)(self.unet, scheduler, self.vae)
        new.set_progress_bar_config(**getattr(self, "_progress_bar_config", {"disable": True}))
        return new

    def progress_bar(self, iterable: Iterable | None = None,
                     total: int | None = None) -> progress.Bar:
        """One call's bar, by `pddlib.progress`, with `set_progress_bar_config`'s options."""
        options = {"disable": on_other_rank(), **getattr(self, "_progress_bar_config", {})}
        return progress.progress_bar(iterable, total=total, **options)

    @property
    def image_size(self) -> int:
        """Side in pixels of the images the model makes."""
        side = image_shape(self.unet)[-1]
        return side * factor(self.vae) if self.vae is not None else side

    def classes_in_turn(self, n: int) -> list[int] | None:
        """Labels 0, 1, 2, ... cycling through the classes (None when unconditional)."""
        k = len(self.class_names)
        return [i % k for i in range(n)] if k else None

    @staticmethod
    def effective_guidance(guidance_scale: float, class_labels) -> float:
        """The guidance scale a call really uses: 1 without class labels (nothing to steer to)."""
        return float(guidance_scale) if class_labels is not None else 1.0

    def label_ids(self, class_labels: Label | Sequence[Label], batch_size: int) -> torch.Tensor:
        """Turn labels (indices or names, one or one per image) into a (batch_size,) long tensor."""
        if not self.class_names:
            raise ValueError("This model is unconditional: call it without class_labels "
                             "(train with --conditional to get a class-conditional model).")
        labels = [class_labels] if isinstance(class_labels, (int, str)) else list(class_labels)
        if len(labels) == 1:
            labels = labels * batch_size
        if len(labels) != batch_size:
            raise ValueError(f"Got {len(labels)} class labels for batch_size={batch_size}: "
                             "pass one label, or one per image.")
        return torch.tensor(indices_of(labels, self.class_names, "this model"), dtype=torch.long)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        class_labels: Label | Sequence[Label] | None = None,
        guidance_scale: float = 1.0,
        num_inference_steps: int = 50,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[..., dict] | None = None,
        guidance_interval: tuple[float, float] = (0.0, 1.0),
        weak_unet: UNet2DModel | None = None,
    ) -> ImagePipelineOutput | tuple:
        """Generate `batch_size` images (N, 3, S, S), optionally of given classes with guidance.

        class_labels: an index or name, or one per image; None samples the unconditional (null)
        class of a conditional model. guidance_scale: 1 uses the conditional prediction only;
        w > 1 extrapolates `uncond + w * (cond - uncond)`, both branches in one UNet call;
        without class_labels it has no effect (`effective_guidance`).
        guidance_interval (lo, hi): guide only at steps whose t / num_train_timesteps lies in
        [lo, hi]; elsewhere the conditional prediction alone, at half the cost (Kynkaanniemi
        et al., 2024: guidance at high noise mostly costs variety, at low noise it does little).
        weak_unet: autoguidance (Karras et al., 2024): guide away from a weaker version of the
        same model (fewer training steps or a smaller net, same classes) instead of from the
        null class: `weak + w * (cond - weak)`, both conditional, two UNet calls a step.
        latents: start noise (N, C, S, S) in the UNet's space (for a latent model: latents)
        instead of drawing it from `generator`.
        output_type: "pil", "np" (N, S, S, 3) in [0, 1], or "pt" (N, 3, S, S) in [0, 1].
        callback_on_step_end(pipe, step, timestep, callback_kwargs) -> dict is called after each
        step with "latents", "pred_original_sample" (x0, None where the scheduler does not give
        it) and "noise_pred"; a returned "latents" replaces the current latents.
        """
        self.check_inputs(batch_size, generator, output_type, guidance_interval, weak_unet)
        guidance = self.prepare_guidance(class_labels, batch_size, guidance_scale,
                                         guidance_interval, weak_unet)
        latents = self.prepare_latents(batch_size, generator, latents)
        if self.sampler is None:
            latents = self.scheduler_loop(latents, num_inference_steps, generator, guidance,
                                          callback_on_step_end)
        else:
            latents = self.sampler_loop(latents, num_inference_steps, generator, guidance,
                                        callback_on_step_end)
        image = self.decode_latents(latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)

    def check_inputs(self, batch_size: int, generator, output_type: str,
                     guidance_interval: tuple[float, float], weak_unet: UNet2DModel | None) -> None:
        """Refuse arguments that do not go together, each with one clear message."""
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"Got {len(generator)} generators for batch_size={batch_size}.")
        lo, hi = guidance_interval
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"guidance_interval must be (lo, hi) with 0 <= lo <= hi <= 1, "
                             f"got {guidance_interval}.")
        if weak_unet is not None:
            check_weak_unet(weak_unet, self.unet)

    def prepare_guidance(self, class_labels, batch_size: int, guidance_scale: float,
                         interval: tuple[float, float], weak_unet: UNet2DModel | None) -> Guidance:
        """Each image's label (the null class when none is asked for) and how to guide."""
        null, device = null_class(self.unet), self._execution_device
        if weak_unet is not None and weak_unet.device != self.unet.device:
            # Never moved here: the caller's model stays where the caller put it.
            raise ValueError(f"weak_unet is on {weak_unet.device}, this pipeline's UNet on "
                             f"{self.unet.device}: move it first, weak_unet.to(pipe.device).")
        if class_labels is not None:
            labels = self.label_ids(class_labels, batch_size).to(device)
        elif null is not None:
            labels = torch.full((batch_size,), null, dtype=torch.long, device=device)
        else:
            labels = None
        return Guidance(labels, self.effective_guidance(guidance_scale, class_labels), interval,
                        weak_unet, null, self.scheduler.config.num_train_timesteps)

    def prepare_latents(self, batch_size: int, generator, latents: torch.Tensor | None,
                        ) -> torch.Tensor:
        """The start noise: drawn from `generator`, or the given latents checked for shape."""
        shape = (batch_size, *image_shape(self.unet))
        device, dtype = self._execution_device, self.unet.dtype
        if latents is None:
            # Draw on the generator's device (CPU generators stay reproducible across devices).
            return randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        if tuple(latents.shape) != shape:
            size = shape[-1]
            raise ValueError(
                f"latents have shape {tuple(latents.shape)}, but this model makes {size}x{size} "
                f"images: pass latents of shape {shape} (the model was trained at {size} px).")
        return latents.to(device=device, dtype=dtype)

    def model_output(self, x: torch.Tensor, t, guidance: Guidance) -> torch.Tensor:
        """The UNet's output at (x, t) with guidance applied: the one place guidance happens."""
        labels = guidance.labels
        if not guidance.applies_at(t):
            return self.unet(x, t, class_labels=labels).sample
        if guidance.weak_unet is not None:  # autoguidance: away from the weaker model
            cond = self.unet(x, t, class_labels=labels).sample
            weak = guidance.weak_unet(x, t, class_labels=labels).sample
            return weak + guidance.scale * (cond - weak)
        # Classifier-free guidance: away from the null class, both halves in one UNet call.
        both = torch.cat([labels, torch.full_like(labels, guidance.null)])
        cond, uncond = self.unet(torch.cat([x, x]), t, class_labels=both).sample.chunk(2)
        return uncond + guidance.scale * (cond - uncond)

    def scheduler_loop(self, latents: torch.Tensor, steps: int, generator, guidance: Guidance,
                       callback: Callable[..., dict] | None) -> torch.Tensor:
        """Denoise with the diffusers scheduler: `scheduler.step` on each guided UNet output."""
        scheduler = self.scheduler
        # Set the timesteps first: init_noise_sigma of Euler-type schedulers depends on them
        # (scaling by the previous call's value would make results depend on call order).
        scheduler.set_timesteps(steps, device=latents.device)
        if isinstance(scheduler, EulerAncestralDiscreteScheduler):
            # Its step splits the noise as sigma_down = sqrt(sigma_to^2 - sigma_up^2), which cancels
            # to a negative number in float32 after a huge first sigma (NaN images at 3 steps with
            # the cosine schedule); float64 keeps it exact. Its sigmas live on the CPU.
            scheduler.sigmas = scheduler.sigmas.double()
        # Flow-matching schedulers start at unit noise and take the UNet's input as it is.
        latents = latents * getattr(scheduler, "init_noise_sigma", 1.0)
        scale = getattr(scheduler, "scale_model_input", lambda x, t: x)
        for i, t in enumerate(self.progress_bar(scheduler.timesteps)):
            out = self.model_output(scale(latents, t), t, guidance)
            step = scheduler.step(out, t, latents, generator=generator)
            latents = step.prev_sample
            if callback is not None:
                kwargs = {"latents": latents, "noise_pred": out,
                          "pred_original_sample": getattr(step, "pred_original_sample", None)}
                latents = callback(self, i, t, kwargs).get("latents", latents)
        return latents

    def sampler_loop(self, latents: torch.Tensor, steps: int, generator, guidance: Guidance,
                     callback: Callable[..., dict] | None) -> torch.Tensor:
        """Denoise with a pddlib sampler: the objective turns each guided output into x0."""
        objective = objective_of(self.scheduler)
        times, alphas, sigmas = objective.sampling_levels(steps)

        with self.progress_bar(total=steps) as bar:
            def denoise(x: torch.Tensor, i: int) -> torch.Tensor:
                t = objective.unet_timestep(times[i]).to(x.device)
                x0 = objective.to_x0(x, self.model_output(x, t, guidance), times[i])
                bar.update()
                return x0

            def after_step(i: int, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
                if callback is None:
                    return x
                kwargs = {"latents": x, "noise_pred": None, "pred_original_sample": x0}
                return callback(self, i, times[i], kwargs).get("latents", x)

            return SAMPLERS[self.sampler](denoise, latents, alphas, sigmas, generator=generator,
                                          callback=after_step)

    def decode_latents(self, latents: torch.Tensor, output_type: str):
        """The UNet's space to images in [0, 1]: decoded by the autoencoder of a latent model."""
        if self.vae is not None:
            latents = decode(self.vae, latents)
        image = model_to_unit(latents).float()
        if output_type == "pt":
            return image
        image = image.cpu().permute(0, 2, 3, 1).numpy()
        return self.numpy_to_pil(image) if output_type == "pil" else image

"""`PDDiffusionPipeline`: unconditional and class-conditional sampling with classifier-free guidance.

It follows diffusers' `DDPMPipeline` (registered `unet` + `scheduler`, `generator=`,
`num_inference_steps=`, `output_type=`) and adds class labels and guidance. Any compatible
diffusers scheduler can be swapped in with `from_config`; `pipe.with_scheduler("ddim")` returns
a copy with another sampler by short name. `PDDiffusionPipeline.from_run(folder)` loads what
`pddlib train` wrote (EMA weights, or the raw weights of the last checkpoint).

Guidance is decided here and only here: it steers towards requested classes, so it applies
when class labels are given; without them (an unconditional model, or a conditional model's
null class) there is nothing to steer towards and `guidance_scale` has no effect.
`effective_guidance` says which scale a call really uses, for reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor

from pddlib import runs
from pddlib.autoencoder import decode, factor
from pddlib.labels import label_indices
from pddlib.models import class_names_of, image_shape, null_class
from pddlib.pixels import model_to_unit
from pddlib.reference import resolve_model
from pddlib.schedulers import make_scheduler

Label = int | str


def check_weak_unet(weak: UNet2DModel, unet: UNet2DModel) -> None:
    """Refuse an autoguidance model that does not denoise what `unet` denoises, naming the fix."""
    if image_shape(weak) != image_shape(unet) or class_names_of(weak) != class_names_of(unet):
        raise ValueError("weak_unet must be a version of the same model: the same latent shape "
                         f"({image_shape(unet)}, got {image_shape(weak)}) and the same classes. "
                         "Train it with the same recipe for fewer steps.")


class PDDiffusionPipeline(DiffusionPipeline):
    """Sample images from a (class-conditional) UNet2DModel with any diffusers scheduler."""

    model_cpu_offload_seq = "unet->vae"
    _optional_components = ["vae"]  # noqa: RUF012 (diffusers reads this class attribute)

    def __init__(self, unet: UNet2DModel, scheduler, vae: AutoencoderKL | None = None) -> None:
        super().__init__()
        # vae: latent diffusion (pddlib.autoencoder); the UNet then denoises its latents.
        self.register_modules(unet=unet, scheduler=scheduler, vae=vae)

    @property
    def class_names(self) -> list[str]:
        """Names of the classes the model knows ([] when unconditional)."""
        return class_names_of(self.unet)

    @classmethod
    def from_run(cls, run: str | Path, weights: str = "ema") -> PDDiffusionPipeline:
        """Load a `pddlib train` folder (or "reference"): weights="ema" (the saved pipeline) or "raw"."""
        run = resolve_model(run)
        if not runs.has_pipeline(run):
            raise FileNotFoundError(f"{run} holds no trained pipeline; train one with "
                                    f"`pddlib train --out {run}` first.")
        if weights not in ("ema", "raw"):
            raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
        runs.refuse_pickles(run)  # a folder from someone else is data: never unpickle it
        pipe = cls.from_pretrained(run, use_safetensors=True)
        if weights == "raw":
            ckpt = runs.latest_checkpoint(run)
            if ckpt is None:
                raise FileNotFoundError(f"{run} has no checkpoint with raw weights.")
            pipe = cls(UNet2DModel.from_pretrained(ckpt / "unet", use_safetensors=True),
                       pipe.scheduler, pipe.vae)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def with_scheduler(self, name: str) -> PDDiffusionPipeline:
        """A new pipeline sharing this UNet with the sampler `name` (this one is unchanged)."""
        # Latents are not bounded like pixels: never clip them to [-1, 1].
        scheduler = make_scheduler(name, self.scheduler, clip_sample=self.vae is None)
        new = type(self)(self.unet, scheduler, self.vae)
        new.set_progress_bar_config(**getattr(self, "_progress_bar_config", {"disable": True}))
        return new

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
        return torch.tensor(label_indices(labels, self.class_names, "this model"), dtype=torch.long)

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
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        unet, scheduler, device = self.unet, self.scheduler, self._execution_device
        channels, size, _ = image_shape(unet)
        shape = (batch_size, channels, size, size)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"Got {len(generator)} generators for batch_size={batch_size}.")

        null = null_class(unet)
        if class_labels is not None:
            labels = self.label_ids(class_labels, batch_size).to(device)
        elif null is not None:
            labels = torch.full((batch_size,), null, dtype=torch.long, device=device)
        else:
            labels = None
        guidance_scale = self.effective_guidance(guidance_scale, class_labels)
        guided = guidance_scale != 1.0
        lo, hi = guidance_interval
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"guidance_interval must be (lo, hi) with 0 <= lo <= hi <= 1, "
                             f"got {guidance_interval}.")
        if weak_unet is not None:
            check_weak_unet(weak_unet, unet)
        # Classifier-free guidance runs the conditional and unconditional halves as one batch.
        both = torch.cat([labels, torch.full_like(labels, null)]) if guided else None
        t_max = scheduler.config.num_train_timesteps

        if latents is None:
            # Draw on the generator's device (CPU generators stay reproducible across devices).
            latents = randn_tensor(shape, generator=generator, device=device, dtype=unet.dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(
                f"latents have shape {tuple(latents.shape)}, but this model makes {size}x{size} "
                f"images: pass latents of shape {shape} (the model was trained at {size} px).")
        # Set the timesteps first: init_noise_sigma of Euler-type schedulers depends on them
        # (scaling by the previous call's value would make results depend on call order).
        scheduler.set_timesteps(num_inference_steps, device=device)
        # Flow-matching schedulers start at unit noise and take the UNet's input as it is.
        sigma = getattr(scheduler, "init_noise_sigma", 1.0)
        latents = latents.to(device=device, dtype=unet.dtype) * sigma
        scale = getattr(scheduler, "scale_model_input", lambda x, t: x)

        for i, t in enumerate(self.progress_bar(scheduler.timesteps)):
            guide = guided and lo <= float(t) / t_max <= hi
            if not guide:
                out = unet(scale(latents, t), t, class_labels=labels).sample
            elif weak_unet is not None:  # autoguidance: away from the weaker model's prediction
                x_in = scale(latents, t)
                cond = unet(x_in, t, class_labels=labels).sample
                weak = weak_unet(x_in, t, class_labels=labels).sample
                out = weak + guidance_scale * (cond - weak)
            else:  # classifier-free guidance: away from the null class's prediction
                cond, uncond = unet(scale(torch.cat([latents, latents]), t), t,
                                    class_labels=both).sample.chunk(2)
                out = uncond + guidance_scale * (cond - uncond)
            step = scheduler.step(out, t, latents, generator=generator)
            latents = step.prev_sample
            if callback_on_step_end is not None:
                kwargs = {"latents": latents, "noise_pred": out,
                          "pred_original_sample": getattr(step, "pred_original_sample", None)}
                latents = callback_on_step_end(self, i, t, kwargs).get("latents", latents)

        if self.vae is not None:
            latents = decode(self.vae, latents)
        image = model_to_unit(latents).float()
        if output_type != "pt":
            image = image.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                image = self.numpy_to_pil(image)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)


"""`PDDiffusionPipeline`: unconditional and class-conditional sampling with classifier-free guidance.

It follows diffusers' `DDPMPipeline` (registered `unet` + `scheduler`, `generator=`,
`num_inference_steps=`, `output_type=`) and adds class labels and guidance. Any compatible
diffusers scheduler can be swapped in with `from_config`; `set_scheduler(pipe, "ddim")` does it
by short name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    ImagePipelineOutput,
    UNet2DModel,
)
from diffusers.utils.torch_utils import randn_tensor

from pddlib.models import class_names_of, image_shape, null_class, predict

SCHEDULERS = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "euler-a": EulerAncestralDiscreteScheduler,
}

Label = int | str


class PDDiffusionPipeline(DiffusionPipeline):
    """Sample images from a (class-conditional) UNet2DModel with any diffusers scheduler."""

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DModel, scheduler) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    @property
    def class_names(self) -> list[str]:
        """Names of the classes the model knows ([] when unconditional)."""
        return class_names_of(self.unet)

    @property
    def image_size(self) -> int:
        """Side in pixels of the images the model makes."""
        return image_shape(self.unet)[-1]

    def label_ids(self, class_labels: Label | Sequence[Label], batch_size: int) -> torch.Tensor:
        """Turn labels (indices or names, one or one per image) into a (batch_size,) long tensor."""
        names = self.class_names
        if not names:
            raise ValueError("This model is unconditional: call it without class_labels "
                             "(train with --conditional to get a class-conditional model).")
        labels = [class_labels] if isinstance(class_labels, (int, str)) else list(class_labels)
        if len(labels) == 1:
            labels = labels * batch_size
        if len(labels) != batch_size:
            raise ValueError(f"Got {len(labels)} class labels for batch_size={batch_size}: "
                             "pass one label, or one per image.")
        ids = []
        for label in labels:
            if isinstance(label, str):
                if label not in names:
                    raise ValueError(f"Unknown class name {label!r}; this model knows {names}.")
                ids.append(names.index(label))
            elif 0 <= int(label) < len(names):
                ids.append(int(label))
            else:
                raise ValueError(f"Class index {label} out of range: this model has "
                                 f"{len(names)} classes (0..{len(names) - 1}): {names}.")
        return torch.tensor(ids, dtype=torch.long)

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
    ) -> ImagePipelineOutput | tuple:
        """Generate `batch_size` images (N, 3, S, S), optionally of given classes with guidance.

        class_labels: an index or name, or one per image; None samples the unconditional (null)
        class of a conditional model. guidance_scale: 1 uses the conditional prediction only;
        w > 1 extrapolates `uncond + w * (cond - uncond)`, both branches in one UNet call.
        guidance_interval (lo, hi): guide only at steps whose t / num_train_timesteps lies in
        [lo, hi]; elsewhere the conditional prediction alone, at half the cost (Kynkaanniemi
        et al., 2024: guidance at high noise mostly costs variety, at low noise it does little).
        latents: start noise (N, 3, S, S) instead of drawing it from `generator`.
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
        guided = guidance_scale != 1.0 and class_labels is not None
        if guidance_scale != 1.0 and null is None:
            raise ValueError("guidance_scale != 1 needs a class-conditional model "
                             "(train with --conditional); use guidance_scale=1.")
        lo, hi = guidance_interval
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"guidance_interval must be (lo, hi) with 0 <= lo <= hi <= 1, "
                             f"got {guidance_interval}.")
        if guided:
            # Conditional and unconditional halves of one batch: one UNet call per step.
            labels = torch.cat([labels, torch.full_like(labels, null)])
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
        latents = latents.to(device=device, dtype=unet.dtype) * scheduler.init_noise_sigma

        for i, t in enumerate(self.progress_bar(scheduler.timesteps)):
            guide = guided and lo <= float(t) / t_max <= hi
            x_in = torch.cat([latents, latents]) if guide else latents
            x_in = scheduler.scale_model_input(x_in, t)
            out = predict(unet, x_in, t, labels if guide or not guided else labels[:batch_size])
            if guide:
                cond, uncond = out.chunk(2)
                out = uncond + guidance_scale * (cond - uncond)
            step = scheduler.step(out, t, latents, generator=generator)
            latents = step.prev_sample
            if callback_on_step_end is not None:
                kwargs = {"latents": latents, "noise_pred": out,
                          "pred_original_sample": getattr(step, "pred_original_sample", None)}
                latents = callback_on_step_end(self, i, t, kwargs).get("latents", latents)

        image = (latents / 2 + 0.5).clamp(0, 1).float()
        if output_type != "pt":
            image = image.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                image = self.numpy_to_pil(image)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)


def set_scheduler(pipe: PDDiffusionPipeline, name: str) -> PDDiffusionPipeline:
    """Swap the pipeline's scheduler for `name` (ddpm, ddim, dpm++, euler, euler-a), in place."""
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
    pipe.scheduler = SCHEDULERS[name].from_config(pipe.scheduler.config)
    return pipe

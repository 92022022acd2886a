"""The samplers by short name: the one registry the pipeline, the CLI and the notebooks share.

Names map to diffusers scheduler classes; diffusers is imported only when one is built, so the
CLI can list the names without loading it.
"""

from __future__ import annotations

SCHEDULERS = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
}
NAMES = tuple(SCHEDULERS)


def check_scheduler(name: str) -> str:
    """`name` if it is a known sampler, else one clear error listing the known ones."""
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
    return name


def make_scheduler(name: str, config, clip_sample: bool = True):
    """A fresh scheduler `name` built from another scheduler's config (same noise schedule).

    clip_sample=False stops DDPM and DDIM from clipping their x0 estimate to [-1, 1]: right for
    pixels, wrong for a latent model's latents, which are not bounded.
    """
    import inspect

    import diffusers

    cls = getattr(diffusers, SCHEDULERS[check_scheduler(name)])
    if "clip_sample" in inspect.signature(cls.__init__).parameters:
        return cls.from_config(config, clip_sample=clip_sample)
    return cls.from_config(config)


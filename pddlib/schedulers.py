"""The samplers by short name: the one registry the pipeline, the CLI and the notebooks share.

Names map to diffusers scheduler classes; diffusers is imported only when one is built, so the
CLI can list the names without loading it. A model trained with flow matching has its own
family: "euler" integrates its velocity ODE, "euler-a" re-noises from the clean estimate at
every step (diffusers' FlowMatchEulerDiscreteScheduler, stochastic_sampling).
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
FLOW = "FlowMatchEulerDiscreteScheduler"
FLOW_SCHEDULERS = {"euler": False, "euler-a": True}  # name -> stochastic_sampling
FLOW_NAMES = tuple(FLOW_SCHEDULERS)


def check_scheduler(name: str) -> str:
    """`name` if it is a known sampler, else one clear error listing the known ones."""
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
    return name


def is_flow(scheduler) -> bool:
    """Whether a scheduler belongs to a flow-matching model (diffusers' FlowMatch family)."""
    return type(scheduler).__name__ == FLOW


def make_scheduler(name: str, scheduler, clip_sample: bool = True):
    """A fresh sampler `name` of `scheduler`'s family, on its noise schedule (its config).

    clip_sample=False stops DDPM and DDIM from clipping their x0 estimate to [-1, 1]: right for
    pixels, wrong for a latent model's latents, which are not bounded.
    """
    import inspect

    import diffusers

    if is_flow(scheduler):
        if name not in FLOW_SCHEDULERS:
            raise ValueError(f"This model was trained with flow matching: sample it with one of "
                             f"{list(FLOW_NAMES)}, not {name!r}.")
        return type(scheduler).from_config(scheduler.config,
                                           stochastic_sampling=FLOW_SCHEDULERS[name])
    cls = getattr(diffusers, SCHEDULERS[check_scheduler(name)])
    if "clip_sample" in inspect.signature(cls.__init__).parameters:
        return cls.from_config(scheduler.config, clip_sample=clip_sample)
    return cls.from_config(scheduler.config)

"""The sampler settings used unless told otherwise (no heavy imports: the CLI reads them too).

Measured on cpu-tiny (benchmarks/RESULTS.md): at 25 steps the stochastic Euler ancestral sampler
gives clearly more recognisable samples than deterministic DDIM, which keeps an undertrained
model's speckle. A trained model is saved with this sampler, so `from_pretrained` uses it.
"""

DEFAULT_SCHEDULER = "euler-a"  # a key of pddlib.pipeline.SCHEDULERS
DEFAULT_STEPS = 25  # denoising steps
SCHEDULER_NAMES = ("ddpm", "ddim", "dpm++", "euler", "euler-a")  # the keys of SCHEDULERS

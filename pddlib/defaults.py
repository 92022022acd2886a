"""The sampler settings used unless told otherwise (no heavy imports: the CLI reads them too).

Measured on cpu-tiny (benchmarks/RESULTS.md): at 25 steps the stochastic Euler ancestral sampler
gives clearly more recognisable samples than deterministic DDIM, which keeps an undertrained
model's speckle. A trained model is saved with this sampler, so `from_pretrained` uses it.
Guidance 4 is the conditional default: in the guidance sweeps of benchmarks/RESULTS.md, higher
scales added little class agreement and cost variety.
"""

DEFAULT_SCHEDULER = "euler-a"  # a name in pddlib.schedulers.SCHEDULERS
DEFAULT_STEPS = 25  # denoising steps
DEFAULT_GUIDANCE = 4.0  # classifier-free guidance scale of conditional sampling
DEFAULT_JUDGE = "pdshape"  # the judge behind FD-<judge> and class agreement (pddlib.metrics.judge)
JUDGE_NAMES = ("pdshape", "pdcls")  # the judges shipped in pddlib/metrics

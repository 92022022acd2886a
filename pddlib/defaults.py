"""The sampler settings used unless told otherwise (no heavy imports: the CLI reads them too).

Euler ancestral is the default sampler because it is stochastic: it adds fresh noise at every
step, which the next step partly removes, so an undertrained model ends on cleaner images than
with a deterministic sampler such as DDIM, which keeps its speckle (benchmarks/RESULTS.md
compares them). A trained model is saved with this sampler, so `from_pretrained` uses it.
Guidance 4 is the conditional default because higher scales added little class agreement and
cost variety in the guidance sweeps of benchmarks/RESULTS.md.
"""

DEFAULT_SCHEDULER = "euler-a"  # a name in pddlib.schedulers.SCHEDULERS
DEFAULT_STEPS = 25  # denoising steps
DEFAULT_GUIDANCE = 4.0  # classifier-free guidance scale of conditional sampling
DEFAULT_JUDGE = "pdshape"  # the judge behind FD-<judge> and class agreement (pddlib.metrics.judge)
JUDGE_NAMES = ("pdshape", "pdcls")  # the judges shipped in pddlib/metrics

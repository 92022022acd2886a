"""Which device a run uses and the mixed precision it trains in, decided from what the hardware is.

The precision rule is a pure function of (device type, CUDA compute capability):
  - bf16 only where the GPU computes it natively: compute capability 8.0 and up (A100, L4, H100,
    RTX 30xx and later);
  - fp16 with loss scaling (accelerate's GradScaler) on older GPUs: T4 (7.5), V100 (7.0),
    P100 (6.0);
  - fp32 ("no") on the CPU and on Apple's MPS, unless asked for something else.
`torch.cuda.is_bf16_supported()` is not the test: it answers True on a T4, where bf16 is emulated
and cuDNN has no bf16 convolutions (diffusers' CI hit it; their fix asks for native support only).
MPS keeps fp32 under "auto": Apple GPUs report no capability to check native bf16 against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PRECISIONS = ("no", "fp16", "bf16")  # what accelerate's `mixed_precision` accepts
NATIVE_BF16 = (8, 0)  # the first CUDA compute capability with bf16 in hardware (Ampere)


def choose_precision(requested: str, device_type: str,
                     capability: tuple[int, int] | None = None) -> str:
    """The mixed precision to train in: `requested`, or for "auto" the rule above."""
    if requested not in ("auto", *PRECISIONS):
        raise ValueError(f"mixed_precision must be 'auto' or one of {PRECISIONS}, "
                         f"got {requested!r}")
    if device_type != "cuda":
        return "no" if requested == "auto" else requested
    if capability is None:
        raise ValueError("a CUDA device needs its compute capability to choose a precision")
    native = tuple(capability) >= NATIVE_BF16
    if requested == "bf16" and not native:
        major, minor = capability
        raise ValueError(
            f"bf16 was asked for, but this GPU (compute capability {major}.{minor}) "
            "has no native bf16: it would be emulated, and cuDNN has no bf16 convolutions below "
            "8.0. Use mixed_precision='auto' (fp16 with loss scaling here) or 'no' (fp32).")
    if requested == "auto":
        return "bf16" if native else "fp16"
    return requested


@dataclass(frozen=True)
class Hardware:
    """The device a training run gets and what it reports about itself."""

    device_type: str  # "cuda", "mps" or "cpu": the device accelerate picks
    capability: tuple[int, int] | None = None  # CUDA compute capability, e.g. (7, 5) on a T4
    name: str = ""  # e.g. "Tesla T4"

    def describe(self) -> str:
        """'cuda (Tesla T4, compute capability 7.5)', or the device type alone."""
        if self.capability is None:
            return self.device_type
        major, minor = self.capability
        return f"{self.device_type} ({self.name}, compute capability {major}.{minor})"


def current_hardware() -> Hardware:
    """The device this process would train on (CUDA, then MPS, then the CPU) and its capability."""
    if torch.cuda.is_available():
        return Hardware("cuda", tuple(torch.cuda.get_device_capability()),
                        torch.cuda.get_device_name())
    if torch.backends.mps.is_available():
        return Hardware("mps")
    return Hardware("cpu")


def precision_message(hardware: Hardware, requested: str, chosen: str) -> str:
    """One line for the start of training: the device, the precision, and why."""
    what = {"no": "fp32", "fp16": "fp16 mixed precision with loss scaling",
            "bf16": "bf16 mixed precision"}[chosen]
    if requested != "auto":
        why = "as asked"
    elif hardware.device_type != "cuda":
        why = "the default off CUDA"
    elif chosen == "bf16":
        why = "native bf16 from compute capability 8.0"
    else:
        why = "no native bf16 below compute capability 8.0"
    return f"Training on {hardware.describe()} in {what} ({why})."


def default_device() -> torch.device:
    """Where sampling, evaluation and autoencoder training run: the CUDA GPU if any, else the CPU.

    MPS is left out: nothing of the course's sampling was ever run on it.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

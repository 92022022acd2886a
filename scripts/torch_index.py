"""Which package index `make` installs torch from: PyTorch's CPU index on Linux without a GPU.

    python scripts/torch_index.py     # prints the index URL, or nothing for pip's default

PyPI's Linux torch wheel is a CUDA build that pulls gigabytes of NVIDIA libraries a CPU-only
laptop never uses; PyTorch's CPU index has the same version without them. macOS and Windows
wheels on PyPI are CPU builds already, and a Linux machine with an NVIDIA driver wants the CUDA
build, so both keep pip's default. `PDD_TORCH_INDEX` overrides the choice: "default" for pip's
own sources, "cpu" for the CPU index, or any index URL. When the CPU index cannot be reached
(an offline classroom with a wheelhouse, a machine with a local mirror), pip's default is kept
and a note goes to stderr. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import urllib.request
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def has_nvidia() -> bool:
    """Whether this machine has an NVIDIA driver (its tool on PATH or its /proc entry)."""
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether an HTTP HEAD request to url answers within timeout seconds."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout)
    except (OSError, ValueError):
        return False
    return True


def choose(system: str, nvidia: bool, override: str | None, can_reach) -> tuple[str, str]:
    """(index URL or "" for pip's default, why): the pure decision, tested on its own."""
    if override:
        if override == "default":
            return "", "PDD_TORCH_INDEX=default"
        url = CPU_INDEX if override == "cpu" else override
        return url, f"PDD_TORCH_INDEX={override}"
    if system != "Linux":
        return "", f"{system}: PyPI's torch wheels are CPU builds already"
    if nvidia:
        return "", "an NVIDIA driver is present: PyPI's CUDA build"
    if not can_reach(CPU_INDEX + "/torch/"):
        return "", f"{CPU_INDEX} is not reachable: pip's default sources"
    return CPU_INDEX, "Linux without an NVIDIA GPU: the CPU build"


def main() -> int:
    url, why = choose(platform.system(), has_nvidia(), os.environ.get("PDD_TORCH_INDEX"),
                      reachable)
    print(f"torch index: {url or 'pip default'} ({why})", file=sys.stderr)
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The precision rule per device and compute capability, decided on the CPU for every GPU kind."""

from __future__ import annotations

import pytest

from pddlib.precision import (
    Hardware,
    choose_precision,
    current_hardware,
    default_device,
    precision_message,
)
from pddlib.training import resolve_precision

GPUS = {  # name: (compute capability, what "auto" trains in)
    "P100": ((6, 0), "fp16"),
    "V100": ((7, 0), "fp16"),
    "T4 (Colab's default)": ((7, 5), "fp16"),
    "A100": ((8, 0), "bf16"),
    "A10 / RTX 3090": ((8, 6), "bf16"),
    "L4": ((8, 9), "bf16"),
    "H100": ((9, 0), "bf16"),
}


@pytest.mark.parametrize("gpu", GPUS)
def test_auto_is_bf16_only_from_capability_8_and_fp16_below(gpu: str) -> None:
    capability, expected = GPUS[gpu]
    assert choose_precision("auto", "cuda", capability) == expected


@pytest.mark.parametrize("device_type", ["cpu", "mps"])
def test_auto_is_fp32_off_cuda_and_a_request_is_kept(device_type: str) -> None:
    assert choose_precision("auto", device_type) == "no"
    for asked in ("no", "fp16", "bf16"):
        assert choose_precision(asked, device_type) == asked


def test_bf16_asked_on_a_gpu_without_native_bf16_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"capability 7\.5.*no native bf16.*'auto' \(fp16"):
        choose_precision("bf16", "cuda", (7, 5))
    assert choose_precision("bf16", "cuda", (8, 0)) == "bf16"
    assert choose_precision("fp16", "cuda", (9, 0)) == "fp16"  # asked: kept
    assert choose_precision("no", "cuda", (7, 5)) == "no"


def test_unknown_values_and_a_cuda_device_without_capability_are_refused() -> None:
    with pytest.raises(ValueError, match=r"'auto' or one of \('no', 'fp16', 'bf16'\), got 'fp8'"):
        choose_precision("fp8", "cpu")
    with pytest.raises(ValueError, match="compute capability"):
        choose_precision("auto", "cuda", None)


def test_the_message_names_device_precision_and_reason() -> None:
    t4 = Hardware("cuda", (7, 5), "Tesla T4")
    assert precision_message(t4, "auto", "fp16") == (
        "Training on cuda (Tesla T4, compute capability 7.5) in fp16 mixed precision with loss "
        "scaling (no native bf16 below compute capability 8.0).")
    a100 = Hardware("cuda", (8, 0), "NVIDIA A100")
    assert "in bf16 mixed precision (native bf16" in precision_message(a100, "auto", "bf16")
    assert precision_message(Hardware("cpu"), "auto", "no") == (
        "Training on cpu in fp32 (the default off CUDA).")
    assert precision_message(Hardware("mps"), "fp16", "fp16").endswith("(as asked).")


def test_this_machine_decides_and_prints_where_training_starts(capsys) -> None:
    hardware = current_hardware()
    chosen = resolve_precision("auto")
    assert chosen == choose_precision("auto", hardware.device_type, hardware.capability)
    assert capsys.readouterr().out.startswith(f"Training on {hardware.device_type}")
    assert default_device().type in ("cuda", "cpu")

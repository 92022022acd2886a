"""scripts/gpu_check.py without a GPU: its self-test (arguments, report, precision, plan)."""

from __future__ import annotations

import pytest
import torch
from gpu_check import main


def test_the_self_test_passes(capsys) -> None:
    assert main(["--self-test"]) == 0
    assert "gpu_check self-test: 5 of 5 checks passed" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA, main([]) is the whole check")
def test_without_cuda_make_gpu_check_says_so_and_self_tests(capsys) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "no CUDA GPU here, so nothing runs on a GPU" in out and "5 of 5 checks passed" in out

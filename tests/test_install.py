"""How `make` chooses torch's package index (scripts/torch_index.py): the decision, offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from torch_index import CPU_INDEX, choose, reachable

ROOT = Path(__file__).resolve().parents[1]


def always(_url: str) -> bool:
    return True


def never(_url: str) -> bool:
    return False


def test_a_linux_laptop_without_a_gpu_gets_the_cpu_build() -> None:
    assert choose("Linux", False, None, always)[0] == CPU_INDEX


def test_gpus_macs_windows_and_unreachable_indexes_keep_pips_default() -> None:
    assert choose("Linux", True, None, always)[0] == ""  # the CUDA build is wanted there
    assert choose("Darwin", False, None, always)[0] == ""
    assert choose("Windows", False, None, always)[0] == ""
    url, why = choose("Linux", False, None, never)  # offline classroom, local mirror
    assert url == "" and "not reachable" in why


def test_the_override_wins() -> None:
    assert choose("Darwin", True, "cpu", never)[0] == CPU_INDEX
    assert choose("Linux", False, "default", always)[0] == ""
    assert choose("Linux", False, "https://mirror.example/torch", never)[0] == \
        "https://mirror.example/torch"


def test_the_probe_is_false_for_an_address_that_cannot_answer() -> None:
    assert reachable("http://127.0.0.1:9/", timeout=1) is False  # the discard port: refused
    assert reachable("not a url") is False


def test_the_script_prints_one_line_make_can_use() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "torch_index.py")],
                         capture_output=True, text=True, check=True,
                         env={"PDD_TORCH_INDEX": "cpu", "PATH": ""})
    assert out.stdout == CPU_INDEX + "\n" and "PDD_TORCH_INDEX=cpu" in out.stderr


def test_the_colab_check_runs_the_notebooks_own_setup_line_on_this_checkout() -> None:
    from colab_check import KEPT, setup_line

    args = setup_line(ROOT / "notebooks" / "03_train_a_unet.ipynb")
    assert "install" not in args and args[0] == "-q"
    assert f"pddlib @ {ROOT.as_uri()}" in args  # the checkout, not the repository URL
    pins = dict(a.split("==") for a in args if "==" in a)
    assert pins and not set(pins) & set(KEPT)  # it never pins what Colab owns


def test_the_colab_check_finds_colabs_python_or_says_what_to_install() -> None:
    from colab_check import COLAB, KEPT, colab_python

    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = colab_python(here)
    out = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sys.version_info[:2])
    with pytest.raises(SystemExit) as stop:
        colab_python("2.1")
    assert "python2.1" in str(stop.value) and "--python" in str(stop.value)
    assert set(KEPT) <= set(COLAB)  # Colab's own packages are pinned to Colab's versions

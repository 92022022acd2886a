"""The GPU check: everything that only a CUDA machine runs, with its figures; elsewhere a self-test.

    python scripts/gpu_check.py [--out runs/gpu-check] [--skip STEP ...] [--measure-steps 200]
    python scripts/gpu_check.py --self-test     # any machine: arguments, report, precision, runner
    make gpu-check                              # the check on a CUDA machine, else the self-test

On a CUDA machine it runs these steps in order, each step's output in <out>/<step>.log, and
exits 1 if any of them fails:
  unit      tests/test_device.py on the GPU itself (PDD_TEST_DEVICE=cuda: the device faults must
            fail with CUDA's own errors, the fixed paths match the CPU) and tests/test_precision.py;
  fast      every notebook under nbval in FAST mode, on the GPU;
  train     the training notebooks (03, 08, 09) for real, at their course settings, into
            <out>/runs (PDD_RUNS, emptied first, so every model trains here); then the course
            run's seconds per step and images per second, from its loss log;
  measure   each recipe's training steps (cpu-latent: the course; cpu-reference: the shipped
            reference's recipe; colab-t4; gpu-base) for --measure-steps steps: seconds per step,
            images per second, peak memory and the precision accelerate trained in; then sampling
            the course model (if `train` made it, else the shipped reference): images per second;
  commands  `pddlib sample` and `pddlib eval --json` on that model, replication and the copy guard.
<out>/gpu_check.json records the GPU's name and compute capability, the precision pddlib chooses,
the torch and CUDA versions and one row per step; the same table is printed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from pddlib.precision import Hardware, choose_precision, current_hardware

ROOT = Path(__file__).resolve().parents[1]
GPU = "cuda"  # where the in-process steps sample
STEPS = ("unit", "fast", "train", "measure", "commands")
UNIT_TESTS = ("tests/test_device.py", "tests/test_precision.py")
TRAINING_NOTEBOOKS = ("03_train_a_unet", "08_flow_matching", "09_latent_diffusion")
MEASURED_RECIPES = ("cpu-latent", "cpu-reference", "colab-t4", "gpu-base")
GPUS = {"Tesla P100": (6, 0), "Tesla V100": (7, 0), "Tesla T4": (7, 5), "A100": (8, 0),
        "L4": (8, 9), "H100": (9, 0)}  # the self-test's decisions, one per kind


@dataclass(frozen=True)
class Row:
    """One step's outcome and figures (None where a figure does not apply)."""

    step: str
    ok: bool
    seconds: float
    step_s: float | None = None  # seconds per training step
    images_per_s: float | None = None
    peak_mib: float | None = None  # peak GPU memory allocated by torch in this process
    note: str = ""


@dataclass(frozen=True)
class Report:
    """What the check found on one machine."""

    machine: dict  # device, name, capability, precision, torch, cuda
    rows: tuple[Row, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Every step passed."""
        return all(r.ok for r in self.rows)

    def to_json(self) -> dict:
        """Plain JSON types."""
        return {**self.machine, "ok": self.ok, "rows": [asdict(r) for r in self.rows]}

    def table(self) -> str:
        """The machine's line, then one line per step."""
        m = self.machine
        head = (f"{m['name'] or m['device']}, compute capability {m['capability'] or '-'}, "
                f"precision {m['precision']}, torch {m['torch']}, CUDA {m['cuda'] or '-'}")
        lines = [head, f"{'step':<34}{'ok':<6}{'seconds':>9}{'s/step':>9}{'img/s':>10}"
                       f"{'peak MiB':>10}  note"]
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        for r in self.rows:
            lines.append(f"{r.step:<34}{'yes' if r.ok else 'FAIL':<6}{r.seconds:>9.1f}"
                         f"{fmt(r.step_s, '.4f'):>9}{fmt(r.images_per_s, '.1f'):>10}"
                         f"{fmt(r.peak_mib, '.0f'):>10}  {r.note}")
        return "\n".join(lines)


def machine_of(hardware: Hardware) -> dict:
    """The report's machine fields, with the precision pddlib chooses there under 'auto'."""
    capability = hardware.capability
    return {"device": hardware.device_type, "name": hardware.name,
            "capability": None if capability is None else f"{capability[0]}.{capability[1]}",
            "precision": choose_precision("auto", hardware.device_type, capability),
            "torch": torch.__version__, "cuda": torch.version.cuda}


def write_report(report: Report, out: Path) -> Path:
    """<out>/gpu_check.json."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gpu_check.json"
    path.write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    return path


def run_step(step: str, cmd: list[str], out: Path, env: dict | None = None,
             timeout: float = 3600) -> Row:
    """Run one command from the repository root, its output to <out>/<step>.log; ok = exit 0."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / (re.sub(r"[^A-Za-z0-9_.]+", "-", step) + ".log")  # "train: 03_x" -> train-03_x
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=fh,
                                stderr=subprocess.STDOUT, timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - start
    if rc == 0:
        return Row(step, True, seconds)
    tail = log.read_text("utf-8", errors="replace").strip().splitlines()[-1:] or [""]
    return Row(step, False, seconds, note=f"exit {rc}: {tail[0][:150]} (see {log})")


def guarded(step: str, fn: Callable[[], list[Row]]) -> list[Row]:
    """fn's rows, or one failed row naming the error: one step's failure never stops the check."""
    start = time.perf_counter()
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 (any error is a finding, reported in the table)
        return [Row(step, False, time.perf_counter() - start, note=f"{type(e).__name__}: {e}")]


def pytest_cmd(*paths: str) -> list[str]:
    """pytest on these paths, quiet, without a cache folder."""
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]


def notebook_steps(runs: Path) -> list[tuple[str, list[str], dict]]:
    """(step, command, environment) of the fast pass over every notebook and the real trainings."""
    env = {"PDD_RUNS": str(runs), "MPLBACKEND": "Agg"}
    found = (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
    every = sorted(str(p.relative_to(ROOT)) for p in found)
    steps = [("fast: every notebook", pytest_cmd(*every), {**env, "PDD_FAST": "1"})]
    steps += [(f"train: {name}", pytest_cmd(f"notebooks/{name}.ipynb"), {**env, "PDD_FAST": "0"})
              for name in TRAINING_NOTEBOOKS]
    return steps


def peak_mib() -> float:
    """Peak GPU memory torch allocated since the last reset, in MiB."""
    return torch.cuda.max_memory_allocated() / 2**20


def last_session(run: Path) -> dict:
    """The run's last training session as provenance recorded it (device, mixed precision)."""
    from pddlib import runs

    return json.loads((run / runs.COMPUTE).read_text("utf-8").splitlines()[-1])


def course_run_row(course: Path) -> Row:
    """Notebook 03's real run, from its loss log: seconds per step and images per second."""
    from pddlib.recipes import TrainConfig
    from pddlib.runs import read_config, training_seconds

    config = TrainConfig.from_dict(read_config(course))
    seconds = training_seconds(course)
    return Row("train: the course run's steps", True, seconds, step_s=seconds / config.max_steps,
               images_per_s=config.max_steps * config.batch_size / seconds,
               note=f"{config.max_steps} steps of {config.batch_size}, "
                    f"{last_session(course)['mixed_precision']} (notebook 03)")


def measure_recipe(preset: str, steps: int, out: Path, data) -> Row:
    """Train `preset` for `steps` steps here: seconds per step, images/s, peak memory, precision."""
    from pddlib.recipes import recipe
    from pddlib.training import train

    config = recipe(preset, max_steps=steps, warmup_steps=min(steps, 50),
                    checkpoint_every=steps, sample_every=0)
    shutil.rmtree(out / preset, ignore_errors=True)  # a fresh run: every step is timed here
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = train(config, data, out / preset)
    precision = last_session(out / preset)["mixed_precision"]
    return Row(f"measure: train {preset}", True, time.perf_counter() - start,
               step_s=result.seconds / steps, images_per_s=result.images_per_second,
               peak_mib=peak_mib(), note=f"{steps} steps of {config.batch_size}, {precision}")


def measure_sampling(model: str | Path, n: int = 256, steps: int = 25) -> Row:
    """Sample n images (classes in turn, guidance 4) on the GPU: images/s and peak memory."""
    from pddlib.metrics import generate_samples
    from pddlib.pipeline import PDDiffusionPipeline

    pipe = PDDiffusionPipeline.from_run(model).to(GPU)
    generate_samples(pipe, 8, steps=2, progress=False)  # warm-up: first calls allocate
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    generate_samples(pipe, n, steps=steps, progress=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return Row("measure: sample", True, seconds, images_per_s=n / seconds, peak_mib=peak_mib(),
               note=f"{n} images, {steps} steps, {Path(str(model)).name}")


def replication_rows(model: str | Path, n: int = 64) -> list[Row]:
    """Replication of the model's samples and the copy guard over them (on the GPU)."""
    from pddlib.metrics import check_copies, generate_samples, measure_replication
    from pddlib.pipeline import PDDiffusionPipeline
    from pddlib.provenance import training_images

    start = time.perf_counter()
    report = measure_replication(model, n=n, record=False, progress=False)
    rows = [Row("commands: replication", True, time.perf_counter() - start,
                note=f"{n} samples; spaces {', '.join(report.spaces)}")]
    start = time.perf_counter()
    images, _ = generate_samples(PDDiffusionPipeline.from_run(model).to(GPU), n, progress=False)
    check = check_copies(images, training_images(model))
    rows.append(Row("commands: copy guard", True, time.perf_counter() - start,
                    note=f"{int(check.flagged.sum())} of {n} samples flagged"))
    return rows


def course_run(runs: Path) -> Path | None:
    """The course model notebook 03 trained into `runs` (its real settings), or None."""
    from pddlib.runs import has_pipeline
    from pddlib.trained import course_config, course_run_dir

    course = course_run_dir(course_config(True, False), runs)
    return course if has_pipeline(course) else None


def explored_model(runs: Path) -> str:
    """The course model notebook 03 trained into `runs`, else the reference's working copy."""
    from pddlib.reference import resolve_model

    return str(course_run(runs) or resolve_model("reference"))


def command_rows(model: str, out: Path, env: dict) -> list[Row]:
    """`pddlib sample`, `pddlib eval --json`, then replication and the copy guard."""
    pddlib = [sys.executable, "-m", "pddlib.cli"]
    rows = [run_step("commands: pddlib sample", [*pddlib, "sample", "--model", model, "--n", "16",
                                                  "--out", str(out / "sample.png")], out, env),
            run_step("commands: pddlib eval", [*pddlib, "eval", "--model", model, "--n", "256",
                                                "--json"], out, env)]
    return rows + guarded("commands: replication", lambda: replication_rows(model))


def run_check(args: argparse.Namespace) -> Report:
    """Every step not skipped, on this CUDA machine."""
    out, runs = args.out, args.out / "runs"
    env = {"PDD_RUNS": str(runs), "MPLBACKEND": "Agg"}
    os.environ.update(env)  # this process's own runs (measure, commands) go there too
    rows: list[Row] = []
    if "unit" not in args.skip:
        rows.append(run_step("unit: tests on the GPU", pytest_cmd(*UNIT_TESTS), out,
                             {"PDD_TEST_DEVICE": "cuda"}, args.timeout))
    if "train" not in args.skip:
        shutil.rmtree(runs, ignore_errors=True)  # every model trains here, none is reused
    for step, cmd, step_env in notebook_steps(runs):
        if step.split(":")[0] not in args.skip:
            rows.append(run_step(step, cmd, out, step_env, args.timeout))
    model, course = explored_model(runs), course_run(runs)
    if "train" not in args.skip and course is not None:
        rows += guarded("train: the course run's steps", lambda: [course_run_row(course)])
    if "measure" not in args.skip:
        from pddlib.data import load_images

        data = load_images("openclipart", split="train")
        for preset in MEASURED_RECIPES:
            rows += guarded(f"measure: train {preset}", lambda p=preset: [
                measure_recipe(p, args.measure_steps, out / "measure", data)])
        rows += guarded("measure: sample", lambda: [measure_sampling(model)])
    if "commands" not in args.skip:
        rows += command_rows(model, out, env)
    return Report(machine_of(current_hardware()), tuple(rows))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu-check")
    ap.add_argument("--skip", nargs="+", choices=STEPS, default=[], metavar="STEP",
                    help=f"steps to leave out: {', '.join(STEPS)}")
    ap.add_argument("--measure-steps", type=int, default=200,
                    help="training steps per recipe in `measure`")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed per command")
    ap.add_argument("--self-test", action="store_true",
                    help="check this script without a GPU (what CI runs)")
    args = ap.parse_args(argv)
    if args.measure_steps < 1:
        ap.error("--measure-steps must be at least 1")
    return args


def self_test_checks(tmp: Path) -> dict[str, Callable[[], None]]:
    """Named checks of everything that runs without a GPU."""
    def arguments() -> None:
        args = parse(["--skip", "train", "measure", "--measure-steps", "5", "--out", str(tmp)])
        assert args.skip == ["train", "measure"] and args.measure_steps == 5 and args.out == tmp
        assert parse([]).skip == [] and not parse([]).self_test
        for bad in (["--skip", "everything"], ["--measure-steps", "0"]):
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # argparse's message, expected
                    parse(bad)
            except SystemExit:
                continue
            raise AssertionError(f"{bad} was accepted")

    def precision() -> None:
        for name, capability in GPUS.items():
            machine = machine_of(Hardware("cuda", capability, name))
            assert machine["precision"] == ("bf16" if capability >= (8, 0) else "fp16"), name
            assert machine["capability"] == f"{capability[0]}.{capability[1]}"
        assert machine_of(Hardware("cpu"))["precision"] == "no"

    def report() -> None:
        rows = (Row("measure: train cpu-latent", True, 12.5, 0.0125, 5120.0, 812.0, "fp16"),
                Row("commands: pddlib eval", False, 3.0, note="exit 1: boom"))
        rep = Report(machine_of(Hardware("cuda", (7, 5), "Tesla T4")), rows)
        back = json.loads(write_report(rep, tmp).read_text("utf-8"))
        assert back["ok"] is False and back["precision"] == "fp16" and len(back["rows"]) == 2
        assert Report(rep.machine, rows[:1]).ok
        table = rep.table()
        assert "Tesla T4, compute capability 7.5, precision fp16" in table
        assert "0.0125" in table and "5120.0" in table and "FAIL" in table and "boom" in table

    def runner() -> None:
        ok = run_step("self-test ok", [sys.executable, "-c", "print('fine')"], tmp)
        bad = run_step("self-test bad", [sys.executable, "-c", "raise SystemExit('broken')"], tmp)
        assert ok.ok and ok.seconds > 0 and not bad.ok and "broken" in bad.note
        assert (tmp / "self-test-ok.log").read_text("utf-8").strip() == "fine"
        failed = guarded("self-test raise", lambda: [1 / 0])
        assert not failed[0].ok and "ZeroDivisionError" in failed[0].note

    def plan() -> None:
        assert all((ROOT / t).is_file() for t in UNIT_TESTS)
        steps = notebook_steps(tmp / "runs")
        assert [s for s, _, _ in steps][1:] == [f"train: {n}" for n in TRAINING_NOTEBOOKS]
        assert all((ROOT / cmd[-1]).is_file() for _, cmd, _ in steps)
        assert {f"notebooks/{n}.ipynb" for n in TRAINING_NOTEBOOKS} <= set(steps[0][1])
        assert {e["PDD_FAST"] for _, _, e in steps} == {"0", "1"}
        from pddlib.recipes import RECIPES

        assert set(MEASURED_RECIPES) <= set(RECIPES)

    return {"arguments": arguments, "precision": precision, "report": report,
            "runner": runner, "plan": plan}


def self_test() -> int:
    """Run the self-test checks; 0 when all pass."""
    with tempfile.TemporaryDirectory() as tmp:
        checks = self_test_checks(Path(tmp))
        failed = []
        for name, check in checks.items():
            try:
                check()
            except Exception as e:  # noqa: BLE001 (each failure is listed)
                failed.append(f"{name}: {type(e).__name__}: {e}")
    print(f"gpu_check self-test: {len(checks) - len(failed)} of {len(checks)} checks passed"
          + "".join(f"\n  FAIL {f}" for f in failed))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.self_test:
        return self_test()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here, so nothing runs on a GPU; running the self-test.")
        return self_test()
    report = run_check(args)
    path = write_report(report, args.out)
    print(report.table())
    print(f"{'all steps passed' if report.ok else 'FAILED'}; recorded in {path}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

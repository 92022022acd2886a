"""Replication of a trained model folder: sample it, score the samples, record the scores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from pddlib.defaults import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS
from pddlib.metrics.evaluate import generate_samples
from pddlib.metrics.replication import ReplicationReport, replication
from pddlib.provenance import record_metrics, training_images


def record_replication(model_dir: str | Path, report: ReplicationReport, *, n: int, steps: int,
                       guidance: float, seed: int, scheduler: str = DEFAULT_SCHEDULER) -> None:
    """Merge a report's summary, and how its samples were drawn, into the folder's metrics.json."""
    record_metrics(model_dir, {"replication": {
        **report.summary(), "samples": {"n": n, "steps": steps, "guidance": guidance,
                                        "scheduler": scheduler, "seed": seed}}})


def measure_replication(model_dir: str | Path, train=None, *, n: int = 200, steps: int = DEFAULT_STEPS,
                        guidance: float = DEFAULT_GUIDANCE, seed: int = 0,
                        spaces: Sequence[str] | None = None,
                        record: bool = True, progress: bool = True,
                        device: str | torch.device | None = None) -> ReplicationReport:
    """Sample a trained model folder n times and score replication against its training images.

    train: the training images; default: the images its provenance manifest lists, from the
    embedded set. record: merge the summary into the folder's metrics.json (the model card's).
    device: where it samples (default: the GPU if there is one, else the CPU).
    """
    from pddlib.pipeline import PDDiffusionPipeline
    from pddlib.precision import default_device

    if train is None:
        train = training_images(model_dir)
    pipe = PDDiffusionPipeline.from_run(model_dir).with_scheduler(DEFAULT_SCHEDULER)
    pipe = pipe.to(device or default_device())  # loaded here: no one else's copy is moved
    images, _ = generate_samples(pipe, n, steps=steps, guidance=guidance, seed=seed,
                                 progress=progress)
    report = replication(images, train, spaces=spaces, seed=seed, progress=progress)
    if record:
        record_replication(model_dir, report, n=n, steps=steps, guidance=guidance, seed=seed)
    return report

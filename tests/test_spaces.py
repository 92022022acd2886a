"""The feature-space registry: one new space (here a toy, defined in this file only) reaches FD,
KID, precision / recall, `pddlib eval`, the model card, replication and the copy guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pddlib import metrics, runs
from pddlib.metrics import spaces
from pddlib.metrics.featurespace import Extractor, FeatureSpace
from pddlib.metrics.frechet import fd_from_features


def mean_colour(batch_uint8: np.ndarray) -> np.ndarray:
    """The toy feature: each image's mean colour in [0, 1] (B, 3)."""
    return batch_uint8.reshape(len(batch_uint8), -1, 3).mean(axis=1) / 255


def load_toy(device) -> Extractor:
    return Extractor("toy", "toy-mean-colour", None, 64, mean_colour)


TOY = FeatureSpace("toy", load_toy, fd_name="FD-toy", distance="rms", threshold=0.99,
                   replication=True)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy space, registered for one test only (its features cached under tmp_path)."""
    monkeypatch.setenv("PDD_CACHE_DIR", str(tmp_path / "cache"))
    spaces.register(TOY)
    yield TOY
    spaces.unregister(TOY.name)


def images(n: int, seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_the_built_in_spaces_and_their_roles() -> None:
    assert spaces.quality_spaces() == ("pdshape", "pdcls", "inception")
    assert spaces.replication_spaces() == ("pixel", "pdcopy", "pdcls", "sscd")
    assert [spaces.get_space(s).fd_name for s in spaces.quality_spaces()] == [
        "FD-pdshape", "FD-pdcls", "FID"]
    assert spaces.get_space("pdcopy").threshold is None  # calibrated per training set
    with pytest.raises(ValueError, match="unknown features 'ssim': choose one of pixel, pdcopy"):
        spaces.get_space("ssim")
    with pytest.raises(ValueError, match="for FD, KID and precision / recall"):
        metrics.fd(images(4, 0), images(4, 1), "pixel")
    with pytest.raises(ValueError, match="distance must be one of"):
        FeatureSpace("bad", load_toy, distance="manhattan")


def test_a_taken_name_is_refused_and_unregistering_removes_the_space(toy) -> None:
    spaces.register(TOY)  # the same space again is fine
    with pytest.raises(ValueError, match="already registered"):
        spaces.register(FeatureSpace("toy", load_toy))
    spaces.unregister("toy")
    assert "toy" not in spaces.SPACES and "toy" not in spaces.quality_spaces()
    with pytest.raises(ValueError, match="unknown features 'toy'"):
        metrics.fd(images(4, 0), images(4, 1), "toy")


def test_the_toy_space_gives_fd_kid_and_precision_recall(toy) -> None:
    real, fake = images(40, 0), images(30, 1)
    assert "toy" in spaces.quality_spaces() and metrics.fd_name("toy") == "FD-toy"
    expected = fd_from_features(mean_colour(real), mean_colour(fake))
    assert metrics.fd(real, fake, "toy", progress=False) == pytest.approx(expected, rel=1e-12)
    report = metrics.quality_report(real, fake, "toy", kid_subset_size=20, kid_subsets=5,
                                    progress=False)
    assert report.fd == pytest.approx(expected, rel=1e-12) and report.fd_name == "FD-toy"
    assert str(report).startswith("FD-toy ") and "toy features" in str(report)
    assert np.isfinite([report.kid_mean, report.precision, report.recall]).all()


def test_the_toy_space_finds_copies_in_replication_and_the_guard(toy) -> None:
    train = images(12, 2)
    samples = np.stack([train[5], images(1, 3)[0], train[7][:, ::-1]])  # a copy, new, a mirror
    rep = metrics.replication(samples, train, spaces=("toy",), background=False)["toy"]
    nb = rep.neighbours
    assert nb.index[0, 0] == 5 and nb.distance[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert nb.index[2, 0] == 7 and nb.distance[2, 0] == pytest.approx(0.0, abs=1e-9)
    # rms on the toy vectors: L2 / sqrt(3) between mean colours.
    d = np.linalg.norm(mean_colour(train) - mean_colour(samples[1:2]), axis=1) / 3 ** 0.5
    assert nb.distance[1, 0] == pytest.approx(d.min(), rel=1e-5)
    check = metrics.check_copies(samples, train, space="toy")
    assert check.threshold == 0.99 and check.flagged[[0, 2]].all()


def test_a_space_that_cannot_run_here_is_skipped_with_its_reason(toy) -> None:
    absent = FeatureSpace("absent", load_toy, replication=True, missing=lambda: "no weights here")
    spaces.register(absent)
    try:
        with pytest.warns(UserWarning, match="ABSENT skipped: no weights here"):
            report = metrics.replication(images(2, 0), images(4, 1), spaces=("pixel", "absent"))
        assert report.skipped == {"absent": "no weights here"} and list(report.spaces) == ["pixel"]
    finally:
        spaces.unregister("absent")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny class-conditional model trained for two steps on eight images."""
    from pddlib.data import load_images
    from pddlib.recipes import tiny_config
    from pddlib.training import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    data = load_images("openclipart", split="train").select(range(0, 40, 5))
    train(tiny_config(max_steps=2, checkpoint_every=2, batch_size=4), data, out)
    return out


def test_the_toy_space_runs_through_pddlib_eval_into_the_card(toy, tiny_run, capsys) -> None:
    from pddlib import cli
    from pddlib.card import build_card

    result = metrics.evaluate_model(tiny_run, metrics.EvalConfig(n=16, steps=2, features="toy"),
                                    progress=False)
    assert result.report.fd_name == "FD-toy" and result.to_dict()["fd_name"] == "FD-toy"
    assert result.report.n_fake == 16 and result.class_agreement is not None
    assert cli.main(["eval", "--model", str(tiny_run), "--features", "toy", "--n", "16",
                     "--steps", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["fd_name"] == "FD-toy" and printed["fd"] == pytest.approx(result.report.fd)
    recorded = json.loads((tiny_run / runs.METRICS).read_text())
    assert recorded["FD-toy"]["value"] == pytest.approx(result.report.fd)
    assert f"| FD-toy | {result.report.fd:.3f} |" in build_card(tiny_run)


def test_an_unregistered_space_is_no_cli_choice(tiny_run, capsys) -> None:
    from pddlib import cli

    with pytest.raises(SystemExit):
        cli.main(["eval", "--model", str(tiny_run), "--features", "toy"])
    assert "invalid choice: 'toy'" in capsys.readouterr().err


def test_the_sscd_space_runs_through_the_registry_when_its_weights_are_cached(
        tmp_path, monkeypatch) -> None:
    """A stand-in TorchScript file where SSCD's belongs: the space loads it and finds a copy."""
    import torch

    from pddlib.metrics import sscd

    class FakeSSCD(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(3 * 4 * 4, 512)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("PDD_CACHE_DIR", str(tmp_path / "cache"))
    sscd.weights_path().parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.jit.script(FakeSSCD()).save(str(sscd.weights_path()))
    sscd.load_sscd.cache_clear()
    try:
        assert "sscd" in metrics.replication(images(1, 0), images(3, 1), background=False).spaces
        train = images(6, 2)
        samples = np.stack([train[4], images(1, 3)[0]])
        nb = metrics.replication(samples, train, spaces=("sscd",), background=False)["sscd"]
        assert nb.neighbours.index[0, 0] == 4 and nb.threshold == 0.5
        assert nb.neighbours.distance[0, 0] == pytest.approx(0.0, abs=1e-6)
        by_hand = sscd.sscd_features(samples, device="cpu") @ sscd.sscd_features(train).T
        assert nb.neighbours.similarity[1] >= by_hand[1].max() - 1e-5  # or a mirror, closer
    finally:
        sscd.load_sscd.cache_clear()
        from pddlib.metrics import features

        features._EXTRACTORS.clear()

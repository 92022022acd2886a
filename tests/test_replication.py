"""Replication scores: copies (also mirrored) are found, random samples are not, the background."""

from __future__ import annotations

import numpy as np
import pytest

from pddlib.metrics import check_copies, replication
from pddlib.metrics.replication import RATIO, Neighbours


@pytest.fixture(autouse=True)
def feature_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PDD_CACHE_DIR", str(tmp_path / "cache"))  # keep ~/.cache clean


def random_images(n: int, seed: int, size: int = 8) -> np.ndarray:
    """n random uint8 images (n, size, size, 3)."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return random_images(12, seed=0)


def test_an_exact_copy_is_found_at_distance_zero(train) -> None:
    samples = np.stack([train[3], random_images(1, seed=1)[0]])
    report = replication(samples, train, spaces=("pixel", "pdcls"), background=False)
    for space in ("pixel", "pdcls"):
        nb = report[space].neighbours
        assert nb.index[0, 0] == 3
        assert nb.distance[0, 0] == pytest.approx(0.0, abs=1e-6)
        assert nb.ratio[0] < RATIO
        assert nb.distance.shape == (2, 2)
    assert report["pixel"].ratio_fraction == 0.5
    assert report["pixel"].above_fraction == 0.5


def test_pixel_distance_is_rms_on_unit_values() -> None:
    black = np.zeros((1, 8, 8, 3), np.uint8)
    train = np.stack([np.full((8, 8, 3), 255, np.uint8), np.full((8, 8, 3), 51, np.uint8)])
    nb = replication(black, train, spaces=("pixel",), background=False)["pixel"].neighbours
    assert nb.index[0].tolist() == [1, 0]
    np.testing.assert_allclose(nb.distance[0], [0.2, 1.0], atol=1e-6)
    assert nb.ratio[0] == pytest.approx(0.2)


def test_a_mirrored_copy_is_found_through_flips(train) -> None:
    mirrored = train[5:6, :, ::-1]
    rep = replication(mirrored, train, spaces=("pixel",), background=False)["pixel"]
    assert rep.neighbours.index[0, 0] == 5 and rep.neighbours.flipped[0, 0]
    assert rep.neighbours.distance[0, 0] == pytest.approx(0.0, abs=1e-6)
    no_flips = replication(mirrored, train, spaces=("pixel",), flips=False, background=False)
    assert no_flips["pixel"].neighbours.distance[0, 0] > 0.2


def test_random_samples_are_not_flagged(train) -> None:
    samples = random_images(6, seed=2)
    report = replication(samples, train, spaces=("pixel", "pdcls"), background=False)
    assert report["pixel"].ratio_fraction == 0.0 and report["pixel"].above_fraction == 0.0
    assert check_copies(samples, train, space="pixel").ok


def test_duplicate_training_rows_are_compared_once(train) -> None:
    dup = np.concatenate([train, train[2:3], train[5:6, :, ::-1]])  # rows 12, 13 repeat 2 and 5
    report = replication(np.stack([train[2], random_images(1, seed=3)[0]]), dup,
                         spaces=("pixel",))
    rep = report["pixel"]
    assert report.duplicates == 2 and report.summary()["duplicate_training_rows"] == 2
    assert "2 training rows repeat" in str(report)
    assert rep.background.distance.shape == (12, 2)  # the 12 distinct images, none against itself
    assert not np.isin(rep.background.index, [12, 13]).any()
    # The copy of row 2: nearest is row 2 at distance 0, second is another drawing, not its twin.
    assert rep.neighbours.index[0, 0] == 2 and rep.neighbours.distance[0, 1] > 0
    sub = replication(random_images(3, seed=3), dup, spaces=("pixel",), background_max=5)
    assert len(sub["pixel"].background.distance) == 5


def test_ten_percent_duplicates_do_not_blind_the_calibrated_guard() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    dup = np.concatenate([base, base[:4]])  # 4 of 44 rows repeat: about 10 %
    copies = np.clip(base[10:14].astype(int) + rng.integers(-6, 7, (4, 8, 8, 3)), 0, 255)
    samples = np.concatenate([copies.astype(np.uint8), random_images(4, seed=9)])
    rep = replication(samples, dup, spaces=("pixel",), thresholds={"pixel": None})["pixel"]
    clean = replication(samples, base, spaces=("pixel",), thresholds={"pixel": None})["pixel"]
    assert rep.threshold == pytest.approx(clean.threshold) and rep.threshold < 0.99
    # The faint copies are flagged; new random images only at the calibrated background rate.
    assert (rep.neighbours.similarity[:4] > rep.threshold).all()
    assert rep.neighbours.index[:4, 0].tolist() == [10, 11, 12, 13]


def test_check_copies_flags_the_copy_only(train) -> None:
    samples = np.stack([random_images(1, seed=4)[0], train[7]])
    check = check_copies(samples, train, threshold=0.9)
    assert check.flagged.tolist() == [False, True] and check.index[1] == 7
    assert "1 of 2 samples" in str(check) and "training row 7" in str(check)


def test_sscd_is_skipped_with_a_message_when_not_cached(train, tmp_path, monkeypatch) -> None:
    from pddlib.metrics import sscd

    monkeypatch.setattr(sscd, "weights_path", lambda: tmp_path / "nothing-here.pt")
    with pytest.warns(UserWarning, match="SSCD skipped"):
        report = replication(train[:2], train, spaces=("pixel", "sscd"), background=False)
    assert list(report.spaces) == ["pixel"] and "never downloads" in report.skipped["sscd"]
    assert "sscd: skipped" in str(report)
    with pytest.raises(KeyError, match="torch cache"):
        report["sscd"]
    assert "sscd" not in replication(train[:2], train, background=False).spaces  # default


def test_ratio_of_an_exact_copy_among_duplicates_is_zero() -> None:
    nb = Neighbours("pixel", np.array([[0, 1]]), np.array([[0.0, 0.0]]), np.zeros((1, 2), bool))
    assert nb.ratio[0] == 0.0


def test_closest_pairs_grid(train) -> None:
    from pddlib.viz import replication_grid

    samples = np.stack([train[1], random_images(1, seed=5)[0], train[4]])
    report = replication(samples, train, spaces=("pixel",), background=False)["pixel"]
    fig = replication_grid(report, samples, train, n=2)
    axes = fig.get_axes()
    assert len(axes) == 4
    titles = [ax.get_title() for ax in axes]
    assert titles[:2] == ["sample 0", "sample 2"] and titles[2].startswith("train 1")
    control = replication_grid(report, samples, train, n=2,
                               query_name="held-out")  # a control's top row is not samples
    assert [ax.get_title() for ax in control.get_axes()][:2] == ["held-out 0", "held-out 2"]


def test_closest_pairs_decode_only_the_training_images_shown(train) -> None:
    samples = np.stack([train[1], random_images(1, seed=5)[0], train[4]])
    pairs = replication(samples, train, spaces=("pixel",), background=False)["pixel"].closest_pairs(
        samples, train, n=2)
    assert pairs.rows[[0, 2]].tolist() == [1, 4] and len(pairs.shown) == 2
    np.testing.assert_array_equal(pairs.shown[pairs.index[[0, 2]]], train[[1, 4]])


def test_the_metrics_never_draw() -> None:
    """Report types return data; pddlib.viz draws it (imports point from front ends down)."""
    import ast
    from pathlib import Path

    import pddlib.metrics

    for path in Path(pddlib.metrics.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                assert not any(n.startswith(("pddlib.viz", "matplotlib")) for n in names), path


def test_bad_input_gives_one_clear_message(train) -> None:
    with pytest.raises(ValueError, match="unknown spaces"):
        replication(train[:1], train, spaces=("ssim",))
    with pytest.raises(ValueError, match="at least two distinct training images"):
        replication(train[:1], train[:1])
    with pytest.raises(ValueError, match="at least two distinct training images"):
        replication(train[:1], np.stack([train[0], train[0, :, ::-1]]))  # one image and its mirror


def test_the_pixel_threshold_is_calibrated_on_the_training_sets_own_background(train) -> None:
    report = replication(random_images(4, seed=5), train, spaces=("pixel",), background_max=None)
    r = report["pixel"]
    assert r.threshold == pytest.approx(np.quantile(r.background.similarity, 0.9))
    assert r.background_above_fraction == pytest.approx(0.1, abs=1 / len(train))

"""Learn or copy: the disjoint-halves measures, rates with intervals, twins across a split."""

from __future__ import annotations

import numpy as np
import pytest

from pddlib import learn_or_copy as loc
from pddlib.data.dedup import duplicates_in
from pddlib.metrics.rates import compare_rates, rate, wilson_interval


@pytest.fixture(autouse=True)
def feature_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PDD_CACHE_DIR", str(tmp_path / "cache"))


def drawings(n: int, seed: int, size: int = 16) -> np.ndarray:
    """n distinct blocky drawings on white (uint8 (n, size, size, 3)): random 4x4 colour blocks."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    return blocks.repeat(size // 4, axis=1).repeat(size // 4, axis=2)


def test_wilson_interval_matches_published_values_and_is_honest_at_zero() -> None:
    # Brown, Cai and DasGupta (2001) / any statistics table: 0 of 10 -> (0, 0.2775)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(4, 48)  # issue 37's example: about 3-20 %
    assert low == pytest.approx(0.0329, abs=1e-3) and high == pytest.approx(0.1955, abs=1e-3)
    assert rate(4, 48).startswith("4/48 = 0.083 (95 % interval 0.033-0.196)")
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(5, 4)


def test_two_rates_differ_only_beyond_the_noise() -> None:
    assert compare_rates(30, 100, 10, 100) == "higher"
    assert compare_rates(10, 100, 30, 100) == "lower"
    assert compare_rates(12, 100, 10, 100) == "within the noise"
    assert compare_rates(0, 48, 0, 100) == "within the noise"
    assert compare_rates(5, 48, 0, 100) == "higher"  # a count of 0 still has noise


def test_a_held_out_twin_or_mirror_of_a_training_image_is_found_and_others_are_not() -> None:
    train = drawings(10, seed=0)
    held = np.stack([train[3], train[7][:, ::-1], drawings(1, seed=1)[0]])
    held[0, 0, 0] = 0  # one pixel changed: still a twin
    assert duplicates_in(held, train).tolist() == [3, 7, -1]
    assert duplicates_in(held, train, mirrors=False).tolist() == [3, -1, -1]


def test_models_that_copy_and_models_that_agree_are_told_apart() -> None:
    train_a, train_b = drawings(8, seed=0), drawings(8, seed=1)
    # Copiers: each model returns its own training images, from the same noise unrelated ones.
    copying, pairs = loc.measure(train_a, train_b[::-1], train_a, train_b)
    # Agreeing: both return the same new images, far from both training sets.
    new = drawings(8, seed=2)
    agreeing, _ = loc.measure(new, new[:, :, ::-1], train_a, train_b)  # a mirror is the same image
    for space in loc.SPACES:
        assert copying[space]["own"][0] == pytest.approx(0, abs=1e-6)
        assert copying[space]["other"][0] > 0.05
        assert copying[space]["between"][0] > 0.05
        assert agreeing[space]["between"][0] == pytest.approx(0, abs=1e-6)
        assert agreeing[space]["unpaired"][0] > 0.05
        assert agreeing[space]["own"][0] > 0.05
        median, low, high = agreeing[space]["own"]
        assert low <= median <= high
    np.testing.assert_array_equal(pairs.near_a, train_a)  # each sample's nearest own image


def test_a_recorded_run_round_trips_and_a_missing_one_says_how_to_make_it(tmp_path) -> None:
    a, b = drawings(10, seed=0), drawings(10, seed=1)
    numbers, pairs = loc.measure(a, b, a, b)
    result = {"command": "python benchmarks/learn_or_copy.py", "results": [{"N": 10, **numbers}]}
    loc.save(tmp_path, result, {10: pairs}, keep=4)
    back, back_pairs = loc.recorded(tmp_path)
    assert back == result
    np.testing.assert_array_equal(back_pairs[10].b, b[:4])
    table = loc.table(back["results"])
    assert list(table["space"]) == list(loc.SPACES) and "between" in table.columns
    with pytest.raises(FileNotFoundError, match="learn_or_copy.py --install"):
        loc.recorded(tmp_path / "none")


def test_the_shipped_recorded_run_covers_small_and_large_n() -> None:
    result, pairs = loc.recorded()
    sizes = [r["N"] for r in result["results"]]
    assert sizes[0] <= 16 and sizes[-1] >= 1000 and sizes == sorted(sizes)
    assert set(pairs) == set(sizes)
    assert result["command"].startswith("python benchmarks/learn_or_copy.py")
    for r in result["results"]:
        for space in loc.SPACES:
            for measure in loc.MEASURES:
                median, low, high = r[space][measure]
                assert low <= median <= high


def test_a_model_that_stored_its_images_denoises_them_better_than_new_ones(tmp_path) -> None:
    from pddlib.data import load_images
    from pddlib.data.transforms import as_uint8
    from pddlib.pipeline import PDDiffusionPipeline
    from pddlib.recipes import tiny_config
    from pddlib.training import train

    data = load_images("openclipart", split="train").select([0, 0, 0, 0])  # one image, stored
    train(tiny_config(max_steps=200, batch_size=4, lr=3e-3, hflip=False, ema_decay=0.0,
                      checkpoint_every=1000),
          data, tmp_path / "run")
    pipe = PDDiffusionPipeline.from_run(tmp_path / "run")
    names = data.features["label"].names
    seen = loc.denoising_error(pipe, as_uint8(data, size=pipe.image_size),
                               [names[y] for y in data["label"]])
    new = load_images("openclipart", split="heldout").select(range(0, 60, 15))
    unseen = loc.denoising_error(pipe, as_uint8(new, size=pipe.image_size),
                                 [names[y] for y in new["label"]])
    assert seen.shape == (4,) and np.isfinite(seen).all()
    assert seen.max() < 0.5 * unseen.min()
    again = loc.denoising_error(pipe, as_uint8(data, size=pipe.image_size),
                                [names[y] for y in data["label"]])
    np.testing.assert_array_equal(seen, again)  # seeded

"""Model presets: shapes, conditioning with a null class, class names in the saved config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel

from pddlib.models import (
    PRESETS,
    TINY,
    ModelConfig,
    build_unet,
    class_names_of,
    count_parameters,
    get_preset,
    image_shape,
    null_class,
    training_flops,
)


def test_presets_have_the_documented_sizes() -> None:
    assert PRESETS["cpu-tiny"].sample_size == 32
    assert PRESETS["colab-t4"].sample_size == 64
    assert PRESETS["gpu-base"].sample_size in (64, 128)
    assert get_preset("gpu-base", sample_size=64).sample_size == 64
    with pytest.raises(ValueError, match="Unknown model preset 'huge'.*cpu-tiny"):
        get_preset("huge")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_and_maps_shape_to_shape(name: str) -> None:
    cfg = PRESETS[name]
    unet = build_unet(cfg)
    assert unet.config.sample_size == cfg.sample_size
    assert unet.config.block_out_channels == cfg.block_out_channels
    attn = [type(b).__name__.startswith("Attn") for b in unet.down_blocks]
    assert attn == list(cfg.attention)
    if name == "cpu-tiny":  # only run the small one; the big ones are checked by shape only
        x = torch.zeros(2, 3, 32, 32)
        assert unet(x, 10).sample.shape == (2, 3, 32, 32)


def test_parameter_counts_grow_with_the_presets() -> None:
    counts = [count_parameters(build_unet(PRESETS[n])) for n in ("cpu-tiny", "colab-t4", "gpu-base")]
    assert counts == sorted(counts) and counts[0] < 5e6 and counts[2] > 5e7


def test_conditional_model_has_a_null_class_and_keeps_names(tmp_path: Path) -> None:
    unet = build_unet(TINY, ["cat", "dog"])
    assert unet.config.num_class_embeds == 3 and null_class(unet) == 2
    assert class_names_of(unet) == ["cat", "dog"]
    x = torch.zeros(3, 3, 16, 16)
    assert unet(x, 5, class_labels=torch.tensor([0, 1, 2])).sample.shape == x.shape
    unet.save_pretrained(tmp_path)
    loaded = UNet2DModel.from_pretrained(tmp_path)
    assert class_names_of(loaded) == ["cat", "dog"] and null_class(loaded) == 2
    assert torch.equal(loaded.conv_out.weight, unet.conv_out.weight)


def test_unconditional_model_has_no_classes() -> None:
    unet = build_unet(TINY)
    assert unet.config.num_class_embeds is None
    assert null_class(unet) is None and class_names_of(unet) == []


def test_bad_shapes_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="one flag per entry"):
        ModelConfig(block_out_channels=(32, 64), attention=(False,))
    with pytest.raises(ValueError, match="must divide"):
        ModelConfig(block_out_channels=(12, 24, 48), norm_num_groups=8)
    with pytest.raises(ValueError, match="divisible by 4"):
        ModelConfig(sample_size=30)


def test_image_shape_is_what_the_model_denoises() -> None:
    assert image_shape(build_unet(TINY)) == (3, 16, 16)


def test_the_unet_tour_follows_the_forward_pass_and_accounts_for_every_parameter() -> None:
    from pddlib.tour import unet_tour

    stages = unet_tour(TINY, n_classes=3)
    names = [s.name for s in stages]
    assert names == ["conv_in", "time_embedding", "class_embedding", "down_blocks.0",
                     "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1",
                     "conv_norm_out", "conv_out"]
    by = {s.name: s for s in stages}
    side = TINY.sample_size
    assert by["conv_in"].shape_in == (3, side, side)
    assert by["down_blocks.0"].shape_out[1:] == (side // 2, side // 2)  # halves the side
    assert by["down_blocks.1"].shape_out[1:] == (side // 2, side // 2)  # the last one does not
    assert by["up_blocks.0"].shape_out[1:] == (side, side)
    assert by["conv_out"].shape_out == (3, side, side)
    assert [s.name for s in stages if s.attention] == ["mid_block"]
    assert sum(s.params for s in stages) == count_parameters(build_unet(TINY, ["a", "b", "c"]))
    # Forward FLOPs are about a third of a training step's (forward + backward).
    forward = sum(s.gflops for s in stages) * 1e9
    assert 0.25 < forward / training_flops(TINY, n_classes=3) < 0.4

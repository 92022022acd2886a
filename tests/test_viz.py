"""pddlib.viz: figures build headless with the right panels; the slider falls back to static."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from PIL import Image

from pddlib import noise, viz
from pddlib.data.transforms import pil_grid

matplotlib.use("Agg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def batch(n: int = 3, size: int = 8) -> torch.Tensor:
    """A seeded batch (n, 3, size, size) in [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def visible_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.axison or ax.images or ax.lines]


def test_pil_grid_size_and_placement() -> None:
    ims = [Image.new("RGB", (8, 6), (i * 40, 0, 0)) for i in range(5)]
    grid = pil_grid(ims, nrow=3, pad=2)
    assert grid.size == (3 * 8 + 2 * 2, 2 * 6 + 2)
    assert grid.getpixel((10 + 1, 0)) == (40, 0, 0)  # second image starts after 8 px + 2 pad
    assert grid.getpixel((grid.width - 1, grid.height - 1)) == (255, 255, 255)  # empty slot


def test_image_grid_from_tensor_with_labels() -> None:
    fig = viz.image_grid(batch(5), nrow=3, labels=list("abcde"), title="five")
    assert isinstance(fig, viz.NotebookFigure)
    assert len(fig.axes) == 6  # 2 rows x 3
    assert [len(ax.images) for ax in fig.axes] == [1, 1, 1, 1, 1, 0]
    assert [ax.get_title() for ax in fig.axes[:5]] == list("abcde")
    assert fig.axes[0].images[0].get_array().shape == (8, 8, 3)


def test_image_grid_from_pil_list_default_square() -> None:
    fig = viz.image_grid([Image.new("RGB", (4, 4))] * 4)
    assert len(fig.axes) == 4 and all(len(ax.images) == 1 for ax in fig.axes)


def test_noising_strip_rows_are_images_columns_are_t() -> None:
    ab = noise.alphas_cumprod(noise.make_betas("linear"))
    ts = [0, 100, 500, 999]
    fig = viz.noising_strip(batch(2), ts, ab, torch.Generator().manual_seed(0), title="linear")
    assert len(fig.axes) == 2 * 4 and fig.get_suptitle() == "linear"
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles[0].startswith("t=0\nSNR=") and titles[3].startswith("t=999\n")
    assert fig.axes[4].get_title() == ""  # only the first row is titled


def test_noising_strip_reproducible() -> None:
    ab = noise.alphas_cumprod(noise.make_betas("linear"))
    pixels = [viz.noising_strip(batch(1), [500], ab, torch.Generator().manual_seed(3))
              .axes[0].images[0].get_array() for _ in range(2)]
    assert (pixels[0] == pixels[1]).all()


def test_plot_schedules_two_panels_one_line_per_schedule() -> None:
    schedules = {s: noise.alphas_cumprod(noise.make_betas(s, 50)) for s in noise.SCHEDULES}
    fig = viz.plot_schedules(schedules)
    left, right = fig.axes
    assert len(left.lines) == 4 and len(right.lines) == 4 + 1  # + the SNR = 1 guide
    assert left.lines[0].get_ydata()[0] == pytest.approx(1 - 1e-4)
    assert [t.get_text() for t in left.get_legend().get_texts()] == list(noise.SCHEDULES)


def test_figures_render_to_png() -> None:
    assert viz.image_grid(batch(2))._repr_png_().startswith(PNG_MAGIC)


def test_representative_values() -> None:
    assert viz.representative(range(1000), 4) == [0, 333, 666, 999]
    assert viz.representative([5, 6], 4) == [5, 6]


@pytest.mark.parametrize(("value", "expected"), [("1", False), ("0", True), ("true", False)])
def test_frontend_override(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("PDD_STATIC", value)
    assert viz.has_widget_frontend() is expected


def test_no_frontend_outside_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PDD_STATIC", raising=False)
    assert viz.has_widget_frontend() is False  # pytest is not a Jupyter kernel


def test_slider_or_static_headless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_STATIC", "1")
    seen = []

    def render(ax, t):
        seen.append(t)
        ax.set_title(f"t={t}")

    fig = viz.slider_or_static(render, range(1000), n_static=3)
    assert seen == [0, 500, 999] and len(fig.axes) == 3
    fig = viz.slider_or_static(render, [1, 2, 3], ncols=2)
    assert len(fig.axes) == 4 and not fig.axes[3].axison


def test_slider_when_a_frontend_is_attached(monkeypatch: pytest.MonkeyPatch) -> None:
    widgets = pytest.importorskip("ipywidgets")
    monkeypatch.setenv("PDD_STATIC", "0")
    seen = []
    box = viz.slider_or_static(lambda ax, t: seen.append(t), [10, 20, 30])
    assert isinstance(box, widgets.VBox)
    slider = box.children[0]
    assert slider.value == 20 and seen == [20]
    slider.value = 30
    assert seen == [20, 30]


def test_the_learn_or_copy_chart_has_a_panel_per_space_and_a_line_per_measure() -> None:
    point = {m: [0.2, 0.1, 0.3] for m in ("between", "unpaired", "own", "other")}
    results = [{"N": n, "pixel": point, "pdcopy": point} for n in (16, 128, 1024)]
    fig = viz.learn_or_copy_chart(results)
    axes = visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["pixel space", "pdcopy space"]
    assert [t.get_text() for t in axes[-1].get_legend().get_texts()] == \
        ["between", "unpaired", "own", "other"]
    for ax in axes:
        assert ax.get_xscale() == "log" and list(ax.get_xticks()) == [16, 128, 1024]
        assert list(ax.lines[0].get_xdata()) == [16, 128, 1024]

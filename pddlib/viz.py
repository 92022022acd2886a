"""Figures the notebooks share: image grids, noising strips, schedule plots, a t slider.

Every function returns a `matplotlib.figure.Figure` that pyplot does not track: it shows once
when it is a notebook cell's last value (or passed to `display`), never twice, never leaks,
and works under any backend (Agg included). Save one with `fig.savefig(path)`.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from pddlib import noise
from pddlib.data.transforms import as_pil_list, pil_grid
from pddlib.progress import has_widget_frontend  # here for viz's callers too


class NotebookFigure(Figure):
    """A Figure that renders itself as PNG in Jupyter, with no pyplot state involved."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def new_figure(nrows: int = 1, ncols: int = 1, *, panel: tuple[float, float] = (2.0, 2.0),
               **kwargs: Any) -> tuple[NotebookFigure, np.ndarray]:
    """A figure of nrows x ncols panels of `panel` inches each; axes as a 2-D array."""
    fig = NotebookFigure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    return fig, np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False, **kwargs))


def show_image(ax: Axes, image: Image.Image | torch.Tensor, title: str | None = None) -> None:
    """Draw one image (PIL, or a tensor (3, H, W) / (N, 3, H, W) as a row) on ax, no ticks."""
    if isinstance(image, torch.Tensor):
        batch = image[None] if image.ndim == 3 else image
        image = pil_grid(batch, nrow=len(batch))
    ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def image_grid(images: torch.Tensor | Sequence[Image.Image], nrow: int | None = None,
               labels: Sequence[str] | None = None, *, size: float = 1.5,
               title: str | None = None) -> NotebookFigure:
    """A figure of images, `nrow` per row (default: square-ish), with optional per-image labels."""
    ims = as_pil_list(images)
    nrow = nrow or math.ceil(math.sqrt(len(ims)))
    fig, axes = new_figure(math.ceil(len(ims) / nrow), nrow, panel=(size, size))
    for i, ax in enumerate(axes.flat):
        if i < len(ims):
            show_image(ax, ims[i], labels[i] if labels is not None else None)
        else:
            ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def noising_strip(x0: torch.Tensor, timesteps: Sequence[int], alphas_cumprod: torch.Tensor,
                  generator: torch.Generator | None = None, *, size: float = 1.3,
                  title: str | None = None) -> NotebookFigure:
    """x_t for each image of x0 (N, 3, H, W) in [-1, 1] (rows) at each t (columns).

    One noise draw per image is shared by all its columns, so you watch the same image fade
    into the same noise as t grows.
    """
    _, eps = noise.q_sample(x0, 0, alphas_cumprod, generator)  # only its noise is used
    snr = noise.snr(alphas_cumprod.double())
    fig, axes = new_figure(len(x0), len(timesteps), panel=(size, size))
    for j, t in enumerate(timesteps):
        x_t = noise.add_noise(x0, eps, int(t), alphas_cumprod)
        for i in range(len(x0)):
            show_image(axes[i, j], x_t[i], f"t={int(t)}\nSNR={snr[int(t)]:.3g}" if i == 0 else None)
    if title:
        fig.suptitle(title)
    return fig


def plot_schedules(schedules: dict[str, torch.Tensor]) -> NotebookFigure:
    """Alpha-bar (left) and log-SNR (right) against t for {name: alphas_cumprod (T,)}."""
    fig, axes = new_figure(1, 2, panel=(4.0, 3.0))
    left, right = axes[0]
    for name, ab in schedules.items():
        ab = ab.double().cpu()
        left.plot(ab.numpy(), label=name)
        right.plot(noise.log_snr(ab).numpy(), label=name)
    left.set(xlabel="timestep t", ylabel="alpha-bar (signal kept)",
             title="alpha-bar: share of the signal kept", ylim=(0, 1.02))
    right.set(xlabel="timestep t", ylabel="ln SNR (natural log)",
              title="log signal-to-noise ratio")
    right.axhline(0.0, color="grey", lw=0.8, ls=":")  # SNR = 1: as much noise as signal
    left.legend(fontsize=8)
    return fig


def representative(values: Sequence[Any], n: int) -> list[Any]:
    """Up to n values evenly spread over `values`, first and last included."""
    if len(values) <= n:
        return list(values)
    return [values[int(i)] for i in np.linspace(0, len(values) - 1, n).round()]


def slider_or_static(render_fn: Callable[[Axes, Any], None], values: Sequence[Any], *,
                     name: str = "t", n_static: int = 4, ncols: int | None = None,
                     panel: tuple[float, float] = (3.0, 3.0)) -> Any:
    """A slider over `values` redrawing `render_fn(ax, value)`, or a static figure headless.

    With a front end (see `has_widget_frontend`) returns an ipywidgets box; otherwise a
    figure with `n_static` representative values, `ncols` panels per row (default: one row).
    """
    if not has_widget_frontend():
        shown = representative(values, n_static)
        ncols = ncols or len(shown)
        fig, axes = new_figure(math.ceil(len(shown) / ncols), ncols, panel=panel)
        for ax, value in zip(axes.flat, shown, strict=False):  # spare panels stay empty
            render_fn(ax, value)
        for ax in list(axes.flat)[len(shown):]:
            ax.set_axis_off()
        return fig
    return _slider(render_fn, values, name, panel)


def _slider(render_fn: Callable[[Axes, Any], None], values: Sequence[Any], name: str,
            panel: tuple[float, float]) -> Any:
    """The interactive half of `slider_or_static`: a SelectionSlider above an Output."""
    import ipywidgets as widgets
    from IPython.display import display

    slider = widgets.SelectionSlider(options=list(values), value=values[len(values) // 2],
                                     description=name, continuous_update=False)
    out = widgets.Output()

    def redraw(_change: Any = None) -> None:
        fig, axes = new_figure(1, 1, panel=panel)
        render_fn(axes[0, 0], slider.value)
        with out:
            out.clear_output(wait=True)
            display(fig)

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, out])


def closest_pairs(samples: np.ndarray, train: np.ndarray, index: Sequence[int],
                  distance: Sequence[float], *, flipped: Sequence[bool] | None = None,
                  n: int = 8, size: float = 1.3, title: str | None = None,
                  train_labels: Sequence[int] | None = None,
                  query_name: str = "sample") -> NotebookFigure:
    """The n samples closest to a training image (top row) above their nearest training image.

    samples, train: uint8 (N, S, S, 3) / (M, S, S, 3); index, distance: each sample's nearest
    training row and its distance. A match found through the mirror image is shown mirrored.
    train_labels: the row numbers to print for each sample's match (default: index).
    query_name: what the top row shows ("sample", or e.g. "held-out" for a control).
    """
    order = np.argsort(np.asarray(distance), kind="stable")[:n]
    fig, axes = new_figure(2, max(1, len(order)), panel=(size, size))
    for col, i in enumerate(order):
        match = train[index[i]]
        mirrored = flipped is not None and bool(flipped[i])
        show_image(axes[0, col], Image.fromarray(samples[i]), f"{query_name} {i}")
        show_image(axes[1, col], Image.fromarray(np.ascontiguousarray(
            match[:, ::-1] if mirrored else match)),
            f"train {(index if train_labels is None else train_labels)[i]}"
            f"{' (mirror)' if mirrored else ''}\nd={distance[i]:.3f}")
    if title:
        fig.suptitle(title)
    return fig


def replication_grid(report, samples, train, n: int = 8, title: str | None = None,
                     query_name: str = "sample") -> NotebookFigure:
    """A replication SpaceReport's n closest pairs: samples on top, nearest training images below."""
    p = report.closest_pairs(samples, train, n)
    return closest_pairs(p.queries, p.shown, p.index, p.distance, flipped=p.flipped, n=n,
                         title=title or f"closest pairs ({report.space})", train_labels=p.rows,
                         query_name=query_name)


# ---------------------------------------------------------------- sampling figures (notebook 04)


def by_class(images: np.ndarray, labels: Sequence[int], names: Sequence[str],
             k: int = 8) -> dict[str, list[Image.Image]]:
    """Class name -> the first k of its uint8 (N, S, S, 3) images: rows for `image_rows`."""
    labels = np.asarray(labels)
    return {name: [Image.fromarray(images[i]) for i in np.flatnonzero(labels == c)[:k]]
            for c, name in enumerate(names)}


def image_rows(rows: dict[str, torch.Tensor | Sequence[Image.Image]],
               col_labels: dict[str, Sequence[str]] | Sequence[str] | None = None, *,
               size: float = 1.3, title: str | None = None) -> NotebookFigure:
    """One row of images per entry of `rows` (name -> images), the name written on the left.

    col_labels: one list of titles for every row, or a list per row name (rows may differ in
    length, e.g. DDPM's step counts beside DDIM's); a shared list titles the first row only.
    """
    ims = {name: as_pil_list(images) for name, images in rows.items()}
    ncols = max(len(v) for v in ims.values())
    fig, axes = new_figure(len(ims), ncols, panel=(size, size))
    for r, (name, row) in enumerate(ims.items()):
        shared = col_labels if r == 0 else None  # a shared list needs saying only once
        labels = col_labels.get(name) if isinstance(col_labels, dict) else shared
        for c in range(ncols):
            ax = axes[r, c]
            if c < len(row):
                show_image(ax, row[c], labels[c] if labels is not None else None)
            else:
                ax.set_axis_off()
        # set_axis_off hides the y label too: write the row name as text left of the first image.
        axes[r, 0].text(-0.08, 0.5, name, transform=axes[r, 0].transAxes, ha="right",
                        va="center", fontsize=10)
    if title:
        fig.suptitle(title)
    return fig


def learn_or_copy_chart(results: list[dict], spaces: Sequence[str] = ("pixel", "pdcopy")
                        ) -> NotebookFigure:
    """pddlib.learn_or_copy's four distances against N, one panel per space, 95 % intervals as bars."""
    fig, axes = new_figure(1, len(spaces), panel=(4.6, 3.2))
    n = [r["N"] for r in results]
    for ax, space in zip(axes.flat, spaces, strict=True):
        for measure, style in (("between", "o-"), ("unpaired", "x:"), ("own", "s--"),
                               ("other", "^--")):
            med, low, high = np.array([r[space][measure] for r in results]).T
            ax.errorbar(n, med, yerr=[med - low, high - med], fmt=style, capsize=2, label=measure)
        ax.set(xscale="log", xlabel="training images per model (N)", title=f"{space} space",
               ylabel="distance (median over the noises)")
        ax.set_xticks(n, [str(v) for v in n])  # the N measured, not powers of ten
        ax.minorticks_off()
    axes[0, -1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))  # off the data
    return fig


def split_grid(grid: Image.Image, n: int, nrow: int | None = None, pad: int = 2) -> list[Image.Image]:
    """The n images of a grid saved by `pil_grid` (the trainer's sample grids), in order."""
    nrow = nrow or math.ceil(math.sqrt(n))
    side = (grid.width + pad) // nrow - pad
    return [grid.crop(((i % nrow) * (side + pad), (i // nrow) * (side + pad),
                       (i % nrow) * (side + pad) + side, (i // nrow) * (side + pad) + side))
            for i in range(n)]


def line_charts(table: Any, x: str, ys: Sequence[str], by: str | None = None, *,
                titles: Sequence[str] | None = None, logx: bool = False,
                panel: tuple[float, float] = (4.0, 3.0),
                errors: dict[str, str] | None = None) -> NotebookFigure:
    """One panel per column in `ys` of a pandas table, against `x`, one line per `by` value.

    errors: column of `ys` -> the column holding its standard error, drawn as error bars.
    """
    fig, axes = new_figure(1, len(ys), panel=panel)
    groups = list(table.groupby(by, sort=False)) if by else [(None, table)]
    for j, y in enumerate(ys):
        ax = axes[0, j]
        for key, part in groups:
            part = part.sort_values(x)
            err = part[errors[y]] if errors and y in errors else None
            ax.errorbar(part[x], part[y], yerr=err, marker="o", capsize=3,
                        label=None if key is None else str(key))
        ax.set(xlabel=x, ylabel=y, title=titles[j] if titles else y)
        if logx:
            ax.set_xscale("log")
        if by:
            ax.legend(fontsize=8)
    return fig


def grouped_rows(rows: dict[str, dict[str, torch.Tensor | Sequence[Image.Image]]], *,
                 size: float = 0.9, title: str | None = None) -> NotebookFigure:
    """Rows of image groups (row name -> {group name -> images}), every group named and set apart.

    The groups of a row sit side by side, apart by a gap with a line in it; each group's name
    stands above its columns (and below too, for grids taller than six rows); the row names
    stand on the left. Every row holds the same groups (e.g. one per model or sampler, one row
    per class); a group with fewer images than its widest row leaves white space.
    """
    ims = {r: {g: as_pil_list(images) for g, images in row.items()} for r, row in rows.items()}
    groups = list(next(iter(ims.values())))
    widths = [max(len(row.get(g, [])) for row in ims.values()) for g in groups]
    side, pad, gap = next(iter(ims.values()))[groups[0]][0].width, 2, 10
    starts = np.cumsum([0] + [k * (side + pad) - pad + gap for k in widths[:-1]])
    mosaic = np.full((len(ims) * (side + pad) - pad,
                      int(starts[-1]) + widths[-1] * (side + pad) - pad, 3), 255, np.uint8)
    for r, row in enumerate(ims.values()):
        for g, x in zip(groups, starts, strict=True):
            for j, im in enumerate(row.get(g, [])):
                top, left = r * (side + pad), int(x) + j * (side + pad)
                mosaic[top:top + side, left:left + side] = np.asarray(im.resize((side, side)))
    fig, axes = new_figure(1, 1, panel=(mosaic.shape[1] / side * size,
                                        mosaic.shape[0] / side * size))
    ax = axes[0, 0]
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([x + (k * (side + pad) - pad) / 2 for x, k in zip(starts, widths, strict=True)],
                  groups, fontsize=10)
    ax.set_yticks([r * (side + pad) + side / 2 for r in range(len(ims))], list(ims), fontsize=10)
    ax.tick_params(length=0, top=True, labeltop=True, labelbottom=len(ims) > 6)
    for x in starts[1:]:  # a line in the middle of each gap between groups
        ax.axvline(x - gap / 2 - 0.5, color="0.35", lw=1)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def trajectory_strip(traj: Any, index: int = 0, *, size: float = 1.3,
                     title: str | None = None) -> NotebookFigure:
    """x_t (top row) and predicted x0 (bottom row) at each recorded step of a Trajectory."""
    fig, axes = new_figure(2, len(traj.steps), panel=(size, size))
    for j, (i, t) in enumerate(zip(traj.steps, traj.timesteps, strict=True)):
        show_image(axes[0, j], traj.x_t[j, index].clamp(-1, 1),
                   f"step {i + 1}/{traj.num_inference_steps}\nfrom t={t}")
        show_image(axes[1, j], traj.x0[j, index].clamp(-1, 1))
    axes[0, 0].text(-0.08, 0.5, "x_t", transform=axes[0, 0].transAxes, ha="right", va="center")
    axes[1, 0].text(-0.08, 0.5, "x0 guess", transform=axes[1, 0].transAxes, ha="right",
                    va="center")
    if title:
        fig.suptitle(title)
    return fig


def trajectory_gif(traj: Any, path: str | os.PathLike, index: int = 0, *, scale: int = 4,
                   ms_per_frame: int = 300) -> Image.Image:
    """Save an animated GIF of x_t beside predicted x0 over the recorded steps; return frame 0."""
    frames = []
    for j in range(len(traj.steps)):
        pair = torch.stack([traj.x_t[j, index], traj.x0[j, index]]).clamp(-1, 1)
        frame = pil_grid(pair, nrow=2)
        frames.append(frame.resize((frame.width * scale, frame.height * scale), Image.NEAREST))
    durations = [ms_per_frame] * (len(frames) - 1) + [4 * ms_per_frame]  # linger on the end
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return frames[0]


def controls_or_static(render_fn: Callable[..., None], controls: dict[str, Sequence[Any]],
                       examples: Sequence[dict[str, Any]], *,
                       panel: tuple[float, float] = (3.0, 3.0)) -> Any:
    """Widgets for several knobs re-rendering `render_fn(ax, **values)`, or a static figure.

    controls: knob name -> the values it can take (strings give a dropdown, numbers a slider).
    The widgets start at examples[0] (else each knob's first value). Headless (see
    `has_widget_frontend`) the figure shows one panel per entry of `examples` (each a full
    {knob: value} dict) instead.
    """
    if not has_widget_frontend():
        fig, axes = new_figure(1, len(examples), panel=panel)
        for ax, values in zip(axes.flat, examples, strict=False):  # spare panels stay empty
            render_fn(ax, **values)
        return fig
    import ipywidgets as widgets
    from IPython.display import display

    start = dict(examples[0]) if examples else {}
    knobs = {}
    for name, options in controls.items():
        options = list(options)
        value = start.get(name, options[0])
        if all(isinstance(o, str) for o in options):
            knobs[name] = widgets.Dropdown(options=options, value=value, description=name)
        else:
            knobs[name] = widgets.SelectionSlider(options=options, value=value,
                                                  description=name, continuous_update=False)
    out = widgets.Output()

    def redraw(_change: Any = None) -> None:
        fig, axes = new_figure(1, 1, panel=panel)
        render_fn(axes[0, 0], **{k: w.value for k, w in knobs.items()})
        with out:
            out.clear_output(wait=True)
            display(fig)

    for w in knobs.values():
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*knobs.values(), out])

"""Progress bars that read right both live and in a saved notebook: every pddlib bar is made here.

In a front end a person watches (`has_widget_frontend`) a bar is tqdm's ipywidgets bar. Anywhere
else (`pddlib course`, nbval, a terminal, a script) it is plain text tqdm on stderr: widget state
is not saved with a notebook, so an executed copy would show a widget bar stuck at 0 %, while a
text bar's '\\r' updates overwrite each other when the copy is rendered and the last one left is
the final count. Headless, it redraws at most every STATIC_MININTERVAL seconds (or tqdm's
TQDM_MININTERVAL), so a long loop adds a few hundred short lines to the saved notebook, not
thousands.

diffusers draws a bar of its own while a pipeline loads ("Loading pipeline components...");
`diffusers_bars_off` silences it around pddlib's loaders and restores diffusers' setting after.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.std import tqdm as text_tqdm

Bar = text_tqdm  # every bar's type (the widget bar subclasses it)
STATIC_MININTERVAL = 5.0  # seconds between redraws of a text bar nobody watches live
TERMINAL_MININTERVAL = 0.5  # ... and of one on a terminal


def has_widget_frontend() -> bool:
    """True when a person's Jupyter front end can show ipywidgets; False when headless.

    PDD_STATIC=1 forces False and PDD_STATIC=0 forces True. Otherwise: Colab is a front end;
    an IPython kernel is one when its current request allows stdin, because front ends a
    person uses (JupyterLab, Notebook, VS Code) can answer input() while nbclient, papermill
    and nbconvert cannot. nbval does allow stdin, so tests/conftest.py sets PDD_STATIC=1.
    """
    override = os.environ.get("PDD_STATIC", "").strip().lower()
    if override:
        return override in ("0", "false", "no")
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    if "google.colab" in sys.modules:
        return True
    kernel = getattr(get_ipython(), "kernel", None)
    return bool(getattr(kernel, "_allow_stdin", False))


def bar_class() -> type[Bar]:
    """tqdm's widget bar in a watched front end, else plain text tqdm (tqdm.std)."""
    if has_widget_frontend():
        from tqdm.notebook import tqdm as widget_tqdm

        return widget_tqdm
    return text_tqdm


def text_options(file: Any) -> dict[str, Any]:
    """A text bar's file and redraw interval: TQDM_MININTERVAL, else quick on a terminal only."""
    tty = getattr(file, "isatty", lambda: False)()
    default = TERMINAL_MININTERVAL if tty else STATIC_MININTERVAL
    return {"file": file, "mininterval": float(os.environ.get("TQDM_MININTERVAL") or default)}


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> Bar:
    """A tqdm bar (tqdm's arguments) of the kind `bar_class` picks; text bars write to stderr."""
    cls = bar_class()
    if cls is text_tqdm:
        kwargs = {**text_options(kwargs.pop("file", None) or sys.stderr), **kwargs}
    return cls(iterable, **kwargs)


@contextmanager
def diffusers_bars_off() -> Iterator[None]:
    """Inside: diffusers draws no bars of its own (pipeline loading); its setting is restored."""
    from diffusers.utils import logging

    was_on = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            logging.enable_progress_bar()

"""The blind judgement on screen: one image at a time, its class and real-or-generated asked.

A person's front end (see pddlib.viz.has_widget_frontend) gets an ipywidgets box: the image,
a button per class and one for "can't tell", then "real" and "generated"; once both are
picked the next image comes; "back" takes the last answer back. After the last image the
verdict (pddlib.blind.score) is shown and handed to `on_done`, e.g. to record it in the model
folder's metrics.json. Headless there is no one to click: a numbered grid of the images
instead, and nothing is scored or recorded.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from pddlib import blind
from pddlib.viz import has_widget_frontend, image_grid

CSS_CLASS = "pdd-blind"  # the box's class on the page, for the browser test


def png_bytes(image, scale: int) -> bytes:
    """A uint8 (S, S, 3) image enlarged `scale` times, pixels kept square (nearest), as PNG."""
    im = Image.fromarray(image)
    buf = io.BytesIO()
    im.resize((im.width * scale, im.height * scale), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


class BlindJudgement:
    """The widget's state and views; `box` is what the notebook shows, `verdict` the result."""

    def __init__(self, trials: Sequence[blind.Trial], class_names: Sequence[str],
                 on_done: Callable[[dict], None] | None = None, *, scale: int = 5) -> None:
        import ipywidgets as widgets

        self.trials, self.on_done, self.scale = list(trials), on_done, scale
        self.class_names = list(class_names)
        self.answers: list[blind.Answer] = []
        self.label: str | None = None
        self.source: str | None = None
        self.verdict: dict | None = None
        self.picture = widgets.Image(format="png")
        self.status = widgets.HTML()
        self.labels = {n: self._button(n, self.pick_label)
                       for n in [*class_names, blind.CANT_TELL]}
        self.sources = {s: self._button(s, self.pick_source) for s in blind.SOURCES}
        self.back_button = self._button("back", lambda _: self.back())
        self.out = widgets.Output()
        wrap = widgets.Layout(display="flex", flex_flow="row wrap", max_width="700px")
        self.question = widgets.HBox([self.picture, widgets.VBox([
            widgets.HTML("<b>Which class?</b>"), widgets.Box(list(self.labels.values()), layout=wrap),
            widgets.HTML("<b>Real clip art, or generated?</b>"),
            widgets.HBox([*self.sources.values(), self.back_button])])])
        self.box = widgets.VBox([self.status, self.question, self.out])
        self.box.add_class(CSS_CLASS)
        self.show()

    @staticmethod
    def _button(text: str, action: Callable[[str], None]) -> Any:
        """A button that calls action(its text) when clicked."""
        import ipywidgets as widgets

        button = widgets.Button(description=text, layout=widgets.Layout(width="110px"))
        button.on_click(lambda b: action(b.description))
        return button

    def show(self) -> None:
        """Draw the current image, the progress line and which answers are picked."""
        done, n = len(self.answers), len(self.trials)
        if done < n:
            self.picture.value = png_bytes(self.trials[done].image, self.scale)
            self.status.value = (f"Image <b>{done + 1} of {n}</b>: pick its class (or "
                                 f"{blind.CANT_TELL}) and whether it is real or generated.")
        for name, button in self.labels.items():
            button.button_style = "info" if name == self.label else ""
        for name, button in self.sources.items():
            button.button_style = "info" if name == self.source else ""

    def pick_label(self, name: str) -> None:
        """A class (or can't tell) was clicked."""
        self.label = name
        self.advance()

    def pick_source(self, name: str) -> None:
        """'real' or 'generated' was clicked."""
        self.source = name
        self.advance()

    def advance(self) -> None:
        """Once both answers are picked, store them and go to the next image (or finish)."""
        if self.label is not None and self.source is not None and self.verdict is None:
            self.answers.append(blind.Answer(self.label, self.source))
            self.label = self.source = None
        self.show()
        if len(self.answers) == len(self.trials) and self.verdict is None:
            self.finish()

    def back(self) -> None:
        """Take the last answer back (not after the verdict)."""
        if self.answers and self.verdict is None:
            self.answers.pop()
        self.label = self.source = None
        self.show()

    def finish(self) -> None:
        """Score the answers, show the verdict, hand it to on_done; the question goes away."""
        from IPython.display import Markdown, display

        self.verdict = blind.score(self.trials, self.answers, self.class_names)
        for button in [*self.labels.values(), *self.sources.values(), self.back_button]:
            button.disabled = True
        self.question.layout.display = "none"
        self.status.value = f"Done: all {len(self.trials)} images judged."
        with self.out:
            display(Markdown("\n".join(["**Your verdict**", "",
                                        *blind.summary_lines(self.verdict), "",
                                        *blind.class_table(self.verdict)])))
            if self.on_done is not None:
                self.on_done(self.verdict)


def blind_judgement(trials: Sequence[blind.Trial], class_names: Sequence[str],
                    on_done: Callable[[dict], None] | None = None, *, scale: int = 5) -> Any:
    """The blind-judgement widget, or headless a numbered grid of the trials (nothing recorded)."""
    if not has_widget_frontend():
        return image_grid([Image.fromarray(t.image) for t in trials], nrow=10, size=1.0,
                          labels=[f"#{i + 1}" for i in range(len(trials))],
                          title="the blind test's images (headless: no widget, nothing recorded)")
    return BlindJudgement(trials, class_names, on_done, scale=scale).box

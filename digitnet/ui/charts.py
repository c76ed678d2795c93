"""Small charts the browser redraws every frame: every model's bars, and the 28x28 input.

Both are ``gr.HTML`` components whose value is plain JSON, so the browser (every frame while
drawing) and the server (after each stroke, and for the ``predict`` API) fill them alike.
Their CSS is page-level (``PAGE_CSS``, passed to ``launch``): a component's own css_template
is rewritten into the page on every value change, which restyles the whole page each frame.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from digitnet.data import IMAGE_SIZE
from digitnet.number_answer import top_labels
from digitnet.numbers import Reading
from digitnet.ui.static_files import read_static

PAGE_CSS = ("bars.css", "input_view.css")


def probability_bars(**kwargs) -> gr.HTML:
    """Every model's ten probabilities side by side: value ``{"MLP": [p0..p9], ...}`` or None."""
    return gr.HTML(
        value=None,
        html_template=read_static("bars.html"),
        js_on_load=read_static("bars.js"),
        apply_default_css=False,
        elem_classes=["digitnet-bars"],
        **kwargs,
    )


NUMBER_CAPTION = "Each digit as the model sees it (28×28). Click one: the Why panel explains it."
TOP_LABELS = 2  # a number's digits each show their two likeliest labels


def input_view(caption: str = "", **kwargs) -> gr.HTML:
    """The 28x28 the model sees, white on black: value 28 rows of 28 numbers, or None; for a
    number, ``number_view_value``'s tiles, one per digit, which a click selects (its
    ``select`` event; ``selected_digit_js`` reads which)."""
    return gr.HTML(
        value=None,
        html_template=read_static("input_view.html"),
        js_on_load=read_static("input_view.js"),
        apply_default_css=False,
        elem_classes=["digitnet-input-view"],
        caption=caption,
        number_caption=NUMBER_CAPTION,
        **kwargs,
    )


def selected_digit_js(view_id: str, inputs: int) -> str:
    """An event's ``js`` that passes its first ``inputs`` inputs through and adds the digit
    chosen in the input view ``view_id`` (0, the first, when none was) as the next."""
    selector = f"#{view_id} .view-digits"
    digit = f"Number(document.querySelector({selector!r})?.dataset.selected ?? 0)"
    return f"(...values) => [...values.slice(0, {inputs}), {digit}]"


def bars_value(probs_by_model: dict[str, np.ndarray]) -> dict[str, list[float]] | None:
    """probability_bars' value; None when there is nothing to show."""
    if not probs_by_model:
        return None
    return {name: [round(float(p), 4) for p in probs] for name, probs in probs_by_model.items()}


def input_view_value(image: np.ndarray | None) -> list[list[float]] | None:
    """input_view's value for a (28, 28) input in [0, 1]; None when blank."""
    if image is None:
        return None
    rows = np.round(np.asarray(image, dtype=np.float64).reshape(IMAGE_SIZE, IMAGE_SIZE), 4)
    return rows.tolist()


def number_view_value(reading: Reading) -> dict:
    """input_view's value for a number: each digit's 28x28, label, two likeliest labels and
    whether it was split from touching ink (pad.js's ``numberOutputs`` builds the same)."""
    return {
        "digits": [
            {
                "label": digit.label,
                "top": [[label, round(p, 4)] for label, p in top],
                "unsure": digit.unsure,
                "image": input_view_value(digit.prediction.preprocessed.image),
            }
            for digit, top in zip(reading.digits, top_labels(reading, TOP_LABELS))
        ]
    }

"""Small charts the browser redraws every frame: every model's bars, and the 28x28 input.

Both are ``gr.HTML`` components whose value is plain JSON, so the browser (60 times a second)
and the server (after each stroke, and for the ``predict`` API) fill them alike.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from digitnet.data import IMAGE_SIZE
from digitnet.ui.static_files import read_static

from gradio.events import Dependency

class ProbabilityBars(gr.HTML):
    """Every model's ten probabilities side by side: value ``{"MLP": [p0..p9], ...}`` or None."""

    def __init__(self, **kwargs):
        super().__init__(
            value=None,
            html_template=read_static("bars.html"),
            css_template=read_static("bars.css"),
            js_on_load=read_static("bars.js"),
            apply_default_css=False,
            **kwargs,
        )

    def preprocess(self, payload):
        return payload

    def postprocess(self, value):
        return value

    def api_info(self) -> dict:
        return {
            "type": "object",
            "description": "each model's probabilities of the digits 0-9",
            "additionalProperties": {"type": "array", "items": {"type": "number"}},
        }

    def example_payload(self):
        return {"MLP": [0.1] * 10}

    def example_value(self):
        return {"MLP": [0.1] * 10}
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class InputView(gr.HTML):
    """The 28x28 the model sees, white on black: value 28 rows of 28 numbers, or None."""

    def __init__(self, caption: str = "", **kwargs):
        super().__init__(
            value=None,
            html_template=read_static("input_view.html"),
            css_template=read_static("input_view.css"),
            js_on_load=read_static("input_view.js"),
            apply_default_css=False,
            caption=caption,
            **kwargs,
        )

    def preprocess(self, payload):
        return payload

    def postprocess(self, value):
        return value

    def api_info(self) -> dict:
        row = {"type": "array", "items": {"type": "number"}}
        return {
            "type": "array",
            "items": row,
            "description": "the model's 28x28 input, 0 = background, 1 = ink",
        }

    def example_payload(self):
        return None

    def example_value(self):
        return None
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


def bars_value(probs_by_model: dict[str, np.ndarray]) -> dict[str, list[float]] | None:
    """ProbabilityBars' value; None when there is nothing to show."""
    if not probs_by_model:
        return None
    return {name: [round(float(p), 4) for p in probs] for name, probs in probs_by_model.items()}


def input_view_value(image: np.ndarray | None) -> list[list[float]] | None:
    """InputView's value for a (28, 28) input in [0, 1]; None when blank."""
    if image is None:
        return None
    rows = np.round(np.asarray(image, dtype=np.float64).reshape(IMAGE_SIZE, IMAGE_SIZE), 4)
    return rows.tolist()
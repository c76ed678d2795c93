"""The digit pad: a canvas on Gradio's ``gr.HTML`` that answers in the browser as you draw.

Its JS (``static/pad.js``), CSS and template are files beside this module; the pipeline it
runs (``static/pipeline.js``) mirrors digitnet's Python preprocessing and the exported models.

The pad's value, what the server and the ``predict`` API receive, is small JSON::

    {"strokes": [[[x, y], [x, y], ...], ...],   # pad units, 0-280, (0, 0) top left
     "example": "big-9.png",                      # or: an example picked (no strokes)
     "browser": {"answers": {"MLP": [p0, ..., p9], "CNN": [...]}}}   # what the browser said

Only ``strokes`` is needed; ``{"strokes": []}`` is a blank pad. ``browser`` is how the page
reports its own answers so the server can check them; programs leave it out. A stroke that
leaves the pad keeps its points outside (the pad sends up to one pad width beyond each edge);
the ink stops at the pad's edge. The pad never sends more strokes or points than
``parse_strokes`` accepts (``MAX_STROKES``, ``MAX_POINTS``, ``MAX_LENGTH``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np

from digitnet.errors import DigitnetError
from digitnet.predict import NOT_A_DIGIT, UNSURE_BELOW
from digitnet.strokes import (
    BRUSH_RADIUS,
    MAX_LENGTH,
    MAX_POINTS,
    MAX_STROKES,
    PAD_SIZE,
    parse_strokes,
    rasterize_strokes,
)
from digitnet.ui.static_files import STATIC_DIR, file_url, read_static

PROMPT = "Draw a digit on the pad ✏️"
PAD_KEYS = ("strokes", "example", "browser")


@dataclass(frozen=True)
class PadDrawing:
    """A pad value, checked: the strokes (or an example's name) and the browser's answers."""

    strokes: list[np.ndarray] = field(default_factory=list)
    example: str | None = None
    browser_answers: dict[str, np.ndarray | None] = field(default_factory=dict)
    browser_answered: bool = False  # the value carried the browser's answers at all


def parse_pad_value(value: object, example_names: set[str] | frozenset[str] = frozenset()):
    """The pad's JSON value (a dict, a JSON string, or None for a blank pad) -> PadDrawing.

    Anything else raises a one-line DigitnetError saying what to send instead.
    """
    if value is None or value == "":
        return PadDrawing()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except RecursionError:
            raise DigitnetError(
                'the pad value is nested too deeply; send an object like {"strokes": [[[x, y], '
                "...]]}"
            ) from None
        except json.JSONDecodeError:
            raise DigitnetError(
                'the pad value is not JSON; send an object like {"strokes": [[[x, y], ...]]}'
            ) from None
        except ValueError:  # an integer of over 4,300 digits, which Python will not read
            raise DigitnetError(
                "the pad value has a number too long to read; send pad coordinates, 0 to "
                f"{PAD_SIZE}"
            ) from None
    if not isinstance(value, dict):
        raise DigitnetError(
            f'the pad value must be an object like {{"strokes": [[[x, y], ...]]}}, '
            f"not {type(value).__name__}"
        )
    unknown = sorted(set(value) - set(PAD_KEYS))
    if unknown:
        hint = (
            " (to classify an image file, use the classify endpoint)"
            if ("composite" in unknown or "background" in unknown)
            else ""
        )
        raise DigitnetError(
            f"the pad value has unknown keys {', '.join(map(str, unknown))[:80]}; "
            f"expected {', '.join(PAD_KEYS)}{hint}"
        )
    strokes = parse_strokes(value.get("strokes", []))
    example = value.get("example")
    if example is not None:
        if not isinstance(example, str) or example not in example_names:
            names = ", ".join(sorted(example_names)) or "none here"
            given = repr(example[:40]) if isinstance(example, str) else type(example).__name__
            raise DigitnetError(f"no example named {given}; the examples are {names}")
        if strokes:
            raise DigitnetError("send either strokes or an example, not both")
    answers, answered = _parse_browser(value.get("browser"))
    return PadDrawing(strokes, example, answers, answered)


def _parse_browser(browser: object) -> tuple[dict[str, np.ndarray | None], bool]:
    """``{"answers": {model: ten probabilities, or None for a blank pad}}`` -> answers, True.

    None, or no "browser" at all (a program, or a page whose own models are off or not ready
    yet) -> no answers, False: the server answers alone and counts no check.
    """
    if browser is None:
        return {}, False
    answers = browser.get("answers") if isinstance(browser, dict) else None
    if not isinstance(answers, dict):
        raise DigitnetError('"browser" must be {"answers": {MODEL: [10 probabilities] or null}}')
    parsed: dict[str, np.ndarray | None] = {}
    for name, probs in list(answers.items())[:16]:
        if probs is None:
            parsed[str(name)] = None
            continue
        if not isinstance(probs, list) or len(probs) != 10 or not all(map(_is_probability, probs)):
            raise DigitnetError(
                f'"browser" answers for {str(name)[:40]} must be 10 probabilities (numbers from '
                f"0 to 1) or null"
            )
        parsed[str(name)] = np.asarray(probs, dtype=np.float64)
    return parsed, True


def _is_probability(value: object) -> bool:
    # Compared as Python numbers: a huge int (JSON allows any) is not made a float.
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def drawing_ink(drawing: PadDrawing) -> np.ndarray:
    """The drawing's ink (PAD_SIZE x PAD_SIZE, 1 = ink), exactly as the browser makes it."""
    return rasterize_strokes(drawing.strokes, PAD_SIZE, BRUSH_RADIUS)


def pad_models(models: dict[str, Path]) -> list[dict[str, str]]:
    """The pad's ``models`` prop: each model's name and its web file's URL.

    Updating the prop (``gr.HTML(models=[...])``) adds the new ones to that page's pad.
    """
    return [{"name": name, "url": file_url(path)} for name, path in models.items()]


def digit_pad(
    *,
    models: dict[str, Path],
    examples: dict[str, Path],
    default_choice: str | None,
    elem_id: str = "pad",
    clear_id: str = "clear",
    undo_id: str = "undo",
    **kwargs,
) -> gr.HTML:
    """The pad. ``models`` maps model names to their web files, ``examples`` names to images.

    Events: ``input`` every frame the browser has a new answer (read it with the JS
    ``digitnetPads[elem_id].liveOutputs(choice)``), ``change`` when a drawing is done. Its
    value is the JSON above (``gr.HTML`` passes it through; ``parse_pad_value`` checks it).
    """
    # A plain gr.HTML, not a subclass: Gradio writes a .pyi stub beside every component
    # subclass's module when it is imported, which fails in a read-only install.
    return gr.HTML(
        value=None,
        html_template=read_static("pad.html"),
        css_template=read_static("pad.css"),
        js_on_load=read_static("pad.js"),
        apply_default_css=False,
        elem_id=elem_id,
        pad_id=elem_id,
        clear_id=clear_id,
        undo_id=undo_id,
        pad_size=PAD_SIZE,
        brush_radius=BRUSH_RADIUS,
        # What parse_strokes accepts: the pad stops there, so the server never refuses it.
        max_strokes=MAX_STROKES,
        max_points=MAX_POINTS,
        max_length=MAX_LENGTH,
        pipeline_url=file_url(STATIC_DIR / "pipeline.js"),
        models=pad_models(models),
        examples={name: file_url(path) for name, path in examples.items()},
        default_choice=default_choice,
        prompt=PROMPT,
        unsure_below=UNSURE_BELOW,
        not_a_digit=NOT_A_DIGIT,
        **kwargs,
    )

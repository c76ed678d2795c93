"""The drawing pad's value, read on the server: strokes (or an example) -> the model's input.

The pad (``digitnet/ui/pad.py``) sends small JSON, and so may any program calling the
``predict`` API::

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitnet.errors import DigitnetError
from digitnet.numbers import strokes_to_input
from digitnet.preprocess import Preprocessed, canvas_to_mnist, load_image_file
from digitnet.strokes import BRUSH_RADIUS, PAD_SIZE, parse_strokes, rasterize_strokes

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


def preprocess_pad_value(
    value: object, examples: Mapping[str, Path]
) -> tuple[PadDrawing, Preprocessed]:
    """A pad value (strokes, or an example's name) -> the drawing and its MNIST-style input.

    Anything that is not a pad value is a one-line DigitnetError saying what to send.
    """
    drawing = parse_pad_value(value, frozenset(examples))
    if drawing.example:
        return drawing, canvas_to_mnist(load_image_file(examples[drawing.example]))
    # Vector strokes: the model's input is drawn with a brush scaled to the digit, so a small
    # digit is not a blob (digitnet.numbers; the pad does the same).
    return drawing, strokes_to_input(drawing.strokes)

"""What the pad shows for a number: whether a drawing is answered as one, and in what words.

The Python twin of ``numberOutputs`` and ``readsAsNumber`` in ``digitnet/ui/static/pad.js``:
the server's check (``ui.draw_tab``), the Right / No buttons (``ui.feedback``) and the Why
panel find the same number the page shows, and say it the same way.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from digitnet.errors import DigitnetError
from digitnet.numbers import Reading, read_parts, split_digits
from digitnet.predict import MOST_SURE, UNSURE_BELOW


def reads_as_number(reading: Reading) -> bool:
    """Whether the pad answers a reading as a number (pad.js's ``readsAsNumber``): two parts
    or more that the model takes for digits, and most of the parts. A tangle whose pieces
    the model mostly refuses ("?1??2", "?0") is one drawing that is not a digit."""
    refused = sum(digit.label == "?" for digit in reading.digits)
    return len(reading.digits) - refused >= 2 and 2 * refused <= len(reading.digits)


def number_on_pad(model: nn.Module, strokes: list[np.ndarray] | list) -> Reading | None:
    """The number the pad shows for these strokes, or None where it answers the drawing as
    one (one digit, parts the model mostly refuses, more marks than a number holds)."""
    try:
        parts = split_digits(strokes)
    except DigitnetError:
        return None
    if len(parts) < 2:
        return None  # one digit: read whole, exactly as a single digit always was
    reading = read_parts(model, parts)
    return reading if reads_as_number(reading) else None


def top_labels(reading: Reading, count: int = 2) -> list[list[tuple[str, float]]]:
    """Each digit's ``count`` likeliest labels and their probabilities, likeliest first."""
    tops = []
    for digit in reading.digits:
        order = np.argsort(digit.prediction.probs, kind="stable")[::-1][:count]
        tops.append([(str(k), float(digit.prediction.probs[k])) for k in order])
    return tops


def number_sentence(reading: Reading) -> str:
    """The number in words (Markdown), as the pad shows it: "It's **42** (99.9% sure)", then
    each digit with its top probability; "It's **49**? (unsure: two digits may touch)" where
    the split may be wrong."""
    lead = "Not sure: maybe" if reading.confidence < UNSURE_BELOW else "It's"
    if reading.touching:
        head = f"{lead} **{reading.text}**? (unsure: two digits may touch)"
    else:
        sure = min(100 * reading.confidence, MOST_SURE)
        head = f"{lead} **{reading.text}** ({sure:.1f}% sure)"
    each = " · ".join(f"{d.label} ({100 * d.confidence:.0f}%)" for d in reading.digits)
    return f"{head}  \n{each}"

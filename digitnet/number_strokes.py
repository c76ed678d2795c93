"""Numbers as a person writes them on the pad, drawn as strokes, to measure reading them.

``random_number`` puts digits of ``digitnet.strokes.DIGIT_TEMPLATES`` side by side, each in
its own size, slant and place on the line, with what people do: touching neighbours, a 5 in
two strokes, a digit drawn last in the middle, two digits drawn without lifting the pen.
``tests/test_numbers.py`` and ``scripts/numbers_benchmark.py`` read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitnet.numbers import strokes_touch
from digitnet.strokes import (
    BRUSH_RADIUS,
    PAD_SIZE,
    PenStyle,
    _arc,
    digit_strokes,
    place_template,
)

# A 5 drawn as many people do: the body first, then the bar.
FIVE_IN_TWO_STROKES = [
    [(-0.4, -0.95), (-0.5, -0.1)] + _arc(-0.02, 0.4, 0.52, 0.55, -150, 150, 12)[1:],
    [(-0.4, -0.95), (0.5, -0.95)],
]
NUMBER_MARGIN = BRUSH_RADIUS + 4.0  # pad units between the ink and the pad's edge


@dataclass(frozen=True)
class GeneratedNumber:
    """A number drawn as pad strokes, and what a reader should find."""

    text: str
    strokes: list[list[tuple[float, float]]]  # in the order drawn
    touching: bool  # two of its digits' centre lines touch (or they are joined)


def _template_strokes(digit: int, style: PenStyle, two_strokes: bool):
    """``digit_strokes``, with the two-stroke 5 when asked."""
    if digit != 5 or not two_strokes:
        return digit_strokes(digit, style)
    return place_template(FIVE_IN_TWO_STROKES, style)


def _span(strokes) -> tuple[float, float]:
    xs = [x for stroke in strokes for x, _ in stroke]
    return min(xs), max(xs)


def _shifted(strokes, dx: float):
    return [[(round(x + dx, 1), y) for x, y in stroke] for stroke in strokes]


def random_number(
    rng: np.random.Generator,
    digits: int | None = None,
    *,
    widths: tuple[float, float] = (50.0, 140.0),
    touching: float = 0.15,
    two_strokes: float = 0.5,
    last_in_middle: float = 0.15,
    joined: float = 0.0,
) -> GeneratedNumber:
    """A number of ``digits`` digits (2-4 when None) drawn side by side on the pad.

    Each digit is ``widths`` pad units wide (its cell: width ratio x height; narrower when
    that many do not fit), with varied size (+-10%), slant, baseline (+-8% of the height)
    and gaps (narrow to wide). With probability ``touching`` two neighbours' centre lines
    touch; ``two_strokes``, a 5 is drawn in two strokes (a 4 always is); ``last_in_middle``,
    a middle digit is drawn last; ``joined``, two neighbours are drawn without lifting the
    pen (the last stroke of one and the first of the next are one stroke).
    """
    count = int(digits if digits is not None else rng.integers(2, 5))
    values = [int(rng.integers(1 if count > 1 else 0, 10))] + [
        int(v) for v in rng.integers(0, 10, size=count - 1)
    ]
    available = PAD_SIZE - 2 * NUMBER_MARGIN
    high = min(widths[1], available / (count * 0.85))
    base = float(rng.uniform(min(widths[0], high), high))
    slant = float(rng.uniform(-0.2, 0.2))
    touch_at = int(rng.integers(0, count - 1)) if count > 1 and rng.random() < touching else -1
    for _ in range(100):
        drawn, gaps = [], []
        for value in values:
            ratio = float(rng.uniform(0.55, 0.75))
            width = base * float(rng.uniform(0.9, 1.1))
            height = min(width / ratio, 0.8 * available)
            style = PenStyle(
                height, (0.0, 0.0), slant + float(rng.uniform(-0.05, 0.05)), width / height
            )
            drawn.append(_template_strokes(value, style, rng.random() < two_strokes))
            gaps.append(float(rng.uniform(0.06, 0.45)) * base)
        spans = [_span(strokes) for strokes in drawn]
        total = sum(hi - lo for lo, hi in spans) + sum(gaps[:-1])
        if total <= available:
            break
        base *= 0.95
    heights = [
        max(y for s in strokes for _, y in s) - min(y for s in strokes for _, y in s)
        for strokes in drawn
    ]
    tallest = max(heights)
    left = NUMBER_MARGIN + float(rng.uniform(0, available - total))
    middle_y = float(
        rng.uniform(NUMBER_MARGIN + tallest * 0.55, PAD_SIZE - NUMBER_MARGIN - tallest * 0.55)
    )
    placed = []
    for k, strokes in enumerate(drawn):
        lo, _ = spans[k]
        dy = middle_y + float(rng.uniform(-0.08, 0.08)) * heights[k]
        half = heights[k] / 2
        dy = min(max(dy, NUMBER_MARGIN + half), PAD_SIZE - NUMBER_MARGIN - half)
        moved = [[(round(x - lo + left, 1), round(y + dy, 1)) for x, y in s] for s in strokes]
        if touch_at >= 0 and k == touch_at + 1:
            moved = _touch(placed[-1], moved)
        placed.append(moved)
        left = _span(moved)[1] + gaps[k]
    if count > 1 and rng.random() < joined:
        at = int(rng.integers(0, count - 1))
        placed[at] = placed[at][:-1] + [placed[at][-1] + placed[at + 1][0]]
        placed[at + 1] = placed[at + 1][1:]
    order = list(range(count))
    if count >= 3 and rng.random() < last_in_middle:
        order.remove(moved_index := int(rng.integers(1, count - 1)))
        order.append(moved_index)
    strokes = [stroke for k in order for stroke in placed[k]]
    touching = touch_at >= 0 or any(not digit for digit in placed)
    return GeneratedNumber("".join(map(str, values)), strokes, touching)


def _touch(previous, strokes):
    """``strokes`` moved left until they touch ``previous`` (their centre lines within 1)."""
    before = [np.array(s, dtype=np.float64) for s in previous]
    for step in range(400):
        shifted = _shifted(strokes, -0.5 * step)
        if any(
            strokes_touch(a, np.array(b, dtype=np.float64), 1.0) for a in before for b in shifted
        ):
            return shifted
    return strokes

"""Pen strokes on the app's digit pad, turned into ink the way the browser does it.

The pad records each stroke as points in *pad units*: a PAD_SIZE x PAD_SIZE square with
(0, 0) at its top left, whatever size the canvas has on screen. Ink is rasterised from those
points with a round brush of BRUSH_RADIUS pad units and a one-unit anti-aliased edge, by
the same arithmetic here and in the browser (``digitnet/ui/static/pipeline.js``), so both
sides start the MNIST preprocessing from identical ink.

``digit_strokes`` gives stroke templates of the ten digits, drawn as a person would with a
mouse, to measure the pad end to end (tests and ``scripts/latency_benchmark.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from digitnet.errors import DigitnetError

PAD_SIZE = 280  # pad units per side; the ink map has one pixel per unit
# Strokes 20 units wide on 280 become ~1.5-2 px in MNIST's 20x20 box for a digit that fills
# the pad, as MNIST's pen strokes are.
BRUSH_RADIUS = 10.0
MAX_STROKES = 200  # a digit takes 1-4 strokes; more is not a digit
MAX_POINTS = 20_000  # over all strokes: ~3 minutes of drawing at 120 points/s
COORDINATE_LIMIT = 10 * PAD_SIZE  # a point further out is not from the pad


def parse_strokes(raw: object) -> list[np.ndarray]:
    """A JSON list of strokes, each a list of ``[x, y]`` points -> (N, 2) float64 arrays.

    Raises a one-line DigitnetError saying what is wrong with anything else.
    """
    if not isinstance(raw, list):
        raise DigitnetError(
            f'"strokes" must be a list of strokes, each a list of [x, y] points; '
            f"got {type(raw).__name__}"
        )
    if len(raw) > MAX_STROKES:
        raise DigitnetError(
            f"{len(raw)} strokes is too many for one digit; send at most {MAX_STROKES}"
        )
    strokes, total = [], 0
    for index, stroke in enumerate(raw):
        if not isinstance(stroke, list) or not stroke:
            raise DigitnetError(f"stroke {index} must be a non-empty list of [x, y] points")
        total += len(stroke)
        if total > MAX_POINTS:
            raise DigitnetError(f"more than {MAX_POINTS} points in all; send a shorter drawing")
        for point in stroke:
            if (
                not isinstance(point, list | tuple)
                or len(point) != 2
                or not all(_is_number(value) for value in point)
            ):
                raise DigitnetError(
                    f"stroke {index} has a point that is not [x, y] with two numbers: "
                    f"{str(point)[:40]}"
                )
        points = np.asarray(stroke, dtype=np.float64)
        if np.abs(points).max() > COORDINATE_LIMIT:
            raise DigitnetError(
                f"stroke {index} has a point far outside the {PAD_SIZE}x{PAD_SIZE} pad; "
                f"send pad coordinates"
            )
        strokes.append(points)
    return strokes


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def rasterize_strokes(
    strokes: list[np.ndarray], size: int = PAD_SIZE, radius: float = BRUSH_RADIUS
) -> np.ndarray:
    """Ink (size, size) float32 in [0, 1], 1 = full ink, from strokes in pad units.

    A pixel's ink is ``clip(radius + 0.5 - d, 0, 1)``, d being the distance from the
    pixel's centre to the nearest stroke segment (a lone point is a dot), so edges are
    anti-aliased over one pixel. The browser computes exactly this, operation by operation
    in float64, so the two ink maps are identical.
    """
    ink = np.zeros((size, size), dtype=np.float32)
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        if len(points) == 1:
            _draw_segment(ink, points[0], points[0], radius)
        for start, end in zip(points[:-1], points[1:]):
            _draw_segment(ink, start, end, radius)
    return ink


def _draw_segment(ink: np.ndarray, start: np.ndarray, end: np.ndarray, radius: float) -> None:
    size = ink.shape[0]
    ax, ay = float(start[0]), float(start[1])
    bx, by = float(end[0]), float(end[1])
    reach = radius + 1.0
    left = max(0, math.floor(min(ax, bx) - reach))
    right = min(size - 1, math.ceil(max(ax, bx) + reach))
    top = max(0, math.floor(min(ay, by) - reach))
    bottom = min(size - 1, math.ceil(max(ay, by) + reach))
    if left > right or top > bottom:
        return
    # Pixel centres; the same operations, in the same order, as pipeline.js's drawSegment.
    px = np.arange(left, right + 1, dtype=np.float64)[None, :] + 0.5
    py = np.arange(top, bottom + 1, dtype=np.float64)[:, None] + 0.5
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 > 0:
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0)
    else:
        t = np.zeros((1, 1))
    gx = px - (ax + t * dx)
    gy = py - (ay + t * dy)
    distance = np.sqrt(gx * gx + gy * gy)
    coverage = np.clip(radius + 0.5 - distance, 0.0, 1.0).astype(np.float32)
    region = ink[top : bottom + 1, left : right + 1]
    np.maximum(region, coverage, out=region)


# ---------------------------------------------------------------------------
# Digits as a person draws them with a mouse, to measure the pad end to end.


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int = 12):
    """Points along an ellipse from angle ``start`` to ``stop`` (degrees, 0 = right, 90 = down)."""
    return [
        (
            cx + rx * math.cos(math.radians(start + (stop - start) * i / n)),
            cy + ry * math.sin(math.radians(start + (stop - start) * i / n)),
        )
        for i in range(n + 1)
    ]


# Strokes in a unit box: x and y from -1 to 1, y down; a digit is taller than it is wide.
DIGIT_TEMPLATES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0, 0, 0.55, 0.95, -90, 280, 20)],
    1: [[(-0.25, -0.7), (0.05, -0.95), (0.05, 0.95)]],
    2: [_arc(0, -0.45, 0.5, 0.5, 200, 380, 10) + [(-0.55, 0.95), (0.6, 0.95)]],
    3: [_arc(0, -0.5, 0.45, 0.45, 200, 450, 10) + _arc(0, 0.45, 0.5, 0.5, -90, 160, 10)[1:]],
    4: [[(0.15, -0.95), (-0.55, 0.35), (0.6, 0.35)], [(0.3, -0.35), (0.3, 0.95)]],
    5: [
        [(0.5, -0.95), (-0.4, -0.95), (-0.5, -0.1)]
        + _arc(-0.02, 0.4, 0.52, 0.55, -150, 150, 12)[1:]
    ],
    6: [[(0.4, -0.95)] + _arc(0.05, 0.45, 0.5, 0.5, 190, 560, 16)],
    7: [[(-0.55, -0.9), (0.55, -0.9), (-0.1, 0.95)]],
    8: [
        _arc(0, -0.5, 0.4, 0.45, 90, 450, 14) + _arc(0, 0.45, 0.5, 0.5, -90, 270, 16)[1:],
    ],
    9: [_arc(0, -0.45, 0.5, 0.5, 0, 360, 14) + [(0.5, -0.45), (0.4, 0.95)]],
}


@dataclass(frozen=True)
class PenStyle:
    """Where and how a digit is drawn on the pad."""

    height: float  # pad units, top to bottom of the digit
    centre: tuple[float, float]  # pad units
    slant: float  # x shift per unit of y (positive leans right at the top)
    width_ratio: float = 0.6  # digit width / height


def random_pen_style(rng: np.random.Generator, size: int = PAD_SIZE) -> PenStyle:
    """A size from small to filling the pad, anywhere it fits, upright or slanted."""
    height = float(rng.uniform(0.35, 0.85) * size)
    half_width = 0.6 * height / 2 + 0.2 * height / 2 + BRUSH_RADIUS
    half_height = height / 2 + BRUSH_RADIUS
    centre = (
        float(rng.uniform(half_width, size - half_width)),
        float(rng.uniform(half_height, size - half_height)),
    )
    return PenStyle(height, centre, float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0.5, 0.75)))


def digit_strokes(digit: int, style: PenStyle) -> list[list[tuple[float, float]]]:
    """The template of ``digit`` drawn in ``style``: strokes of (x, y) in pad units."""
    half_height = style.height / 2
    half_width = style.width_ratio * half_height
    cx, cy = style.centre
    return [
        [
            (
                round(cx + x * half_width - style.slant * y * half_height, 1),
                round(cy + y * half_height, 1),
            )
            for x, y in stroke
        ]
        for stroke in DIGIT_TEMPLATES[digit]
    ]

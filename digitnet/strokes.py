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
import reprlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from digitnet.errors import DigitnetError

PAD_SIZE = 280  # pad units per side; the ink map has one pixel per unit
# Strokes 20 units wide on 280 become ~1.5-2 px in MNIST's 20x20 box for a digit that fills
# the pad, as MNIST's pen strokes are.
BRUSH_RADIUS = 10.0
MAX_STROKES = 200  # a digit takes 1-4 strokes; more is not a digit
# The work of rasterising is ~600 pixel values a point and ~30 a pad unit of length
# (rasterizing_work), so these two bound it: ~3 million values at most, 0.14 s on a busy core.
# A digit drawn slowly takes < 1,000 points (pad.js keeps one every 0.75 units or more) and
# 300-1,000 units of length; 10,000 units colour the whole pad in twice over. A drawing
# store row (64 KB) holds ~5,000 points anyway.
MAX_POINTS = 5_000  # over all strokes
MAX_LENGTH = 10_000  # pad units, over all strokes' segments
COORDINATE_LIMIT = 10 * PAD_SIZE  # a point further out is not from the pad
# Rasterising works on many segments at once: few numpy calls for a drawing, yet arrays
# small enough for the CPU's cache (a block's ~6 temporaries of 128 KB each).
SEGMENTS_PER_BATCH = 256  # segments whose bands (one per segment and row) are found at once
PIXELS_PER_BLOCK = 16_384  # pixels whose ink is computed at once


def parse_strokes(raw: object) -> list[np.ndarray]:
    """A JSON list of strokes, each a list of ``[x, y]`` points -> (N, 2) float64 arrays.

    Raises a one-line DigitnetError saying what is wrong with anything else, or with a
    drawing over the limits (strokes, points, length, coordinates).
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
    strokes, total, length = [], 0, 0.0
    for index, stroke in enumerate(raw):
        if not isinstance(stroke, list) or not stroke:
            raise DigitnetError(f"stroke {index} must be a non-empty list of [x, y] points")
        total += len(stroke)
        if total > MAX_POINTS:
            raise DigitnetError(
                f"more than {MAX_POINTS:,} points in all; send one digit, at most {MAX_POINTS:,}"
            )
        for point in stroke:
            if (
                not isinstance(point, list | tuple)
                or len(point) != 2
                or not all(_is_number(value) for value in point)
            ):
                raise DigitnetError(
                    f"stroke {index} has a point that is not [x, y] with two numbers: "
                    f"{_short(point)}"
                )
            # Python's own comparison: a huge int (JSON allows any) is not made a float.
            if abs(point[0]) > COORDINATE_LIMIT or abs(point[1]) > COORDINATE_LIMIT:
                raise DigitnetError(
                    f"stroke {index} has a point far outside the {PAD_SIZE}x{PAD_SIZE} pad; "
                    f"send pad coordinates"
                )
        points = np.asarray(stroke, dtype=np.float64)
        length += float(np.hypot(*np.diff(points, axis=0).T).sum())
        if length > MAX_LENGTH:
            raise DigitnetError(
                f"the strokes are over {MAX_LENGTH:,} pad units long in all; send one digit "
                f"(~300-1,000 units)"
            )
        strokes.append(points)
    return strokes


def _is_number(value: object) -> bool:
    """A JSON number: an int of any size, or a finite float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _short(value: object) -> str:
    """Anything, however large or deeply nested, in a few characters for a message."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxstring, short.maxother = 2, 3, 20, 20
    return short.repr(value)


def rasterize_strokes(
    strokes: list[np.ndarray], size: int = PAD_SIZE, radius: float = BRUSH_RADIUS
) -> np.ndarray:
    """Ink (size, size) float32 in [0, 1], 1 = full ink, from strokes in pad units.

    A pixel's ink is ``clip(radius + 0.5 - d, 0, 1)``, d being the distance from the
    pixel's centre to the nearest stroke segment (a lone point is a dot), so edges are
    anti-aliased over one pixel. The browser computes exactly this, operation by operation
    in float64, so the two ink maps are identical.

    The work is about (length on the pad + 2 * radius) x 2 * radius pixels per segment
    (see ``rasterizing_work``), however far the segment reaches off the pad.
    """
    ink = np.zeros(size * size, dtype=np.float32)
    for bands in _band_blocks(strokes, size, radius):
        pixels, coverage = _band_ink(bands, size, radius)
        # Ink is the maximum over segments: their order does not matter, repeats are harmless.
        np.maximum.at(ink, pixels, coverage)
    return ink.reshape(size, size)


def rasterizing_work(
    strokes: list[np.ndarray], size: int = PAD_SIZE, radius: float = BRUSH_RADIUS
) -> int:
    """How many pixel values ``rasterize_strokes`` computes for these strokes."""
    return sum(
        len(bands.row) * int(bands.width.max()) for bands in _band_blocks(strokes, size, radius)
    )


class _Bands(NamedTuple):
    """Bands of pixels, one per segment and pad row it may ink: the segment, and where."""

    ax: np.ndarray
    ay: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    length2: np.ndarray
    row: np.ndarray
    first: np.ndarray  # the band's first column
    width: np.ndarray  # its number of columns


def _band_blocks(strokes: list[np.ndarray], size: int, radius: float) -> Iterator[_Bands]:
    """The bands of all the strokes' segments, in blocks to compute together.

    A block's bands are padded to its widest, so a block holds bands whose widths round up
    to the same power of two (at most twice the pixels needed), and ~PIXELS_PER_BLOCK
    pixels, few enough for the CPU's cache.
    """
    segments = _segments(strokes)
    for first in range(0, segments.shape[1], SEGMENTS_PER_BATCH):
        bands = _bands(segments[:, first : first + SEGMENTS_PER_BATCH], size, radius)
        width_class = np.ceil(np.log2(np.maximum(bands.width, 1))).astype(np.int64)
        width_class[bands.width < 1] = -1  # rows the segment misses on the pad
        for group in np.unique(width_class[width_class >= 0]):
            at = np.flatnonzero(width_class == group)
            step = max(1, PIXELS_PER_BLOCK >> group)
            for start in range(0, len(at), step):
                yield _Bands._make(values[at[start : start + step]] for values in bands)


def _segments(strokes: list[np.ndarray]) -> np.ndarray:
    """Every stroke's segments as (4, S) float64 rows ax, ay, bx, by; a lone point is a dot."""
    parts = [np.empty((0, 4))]
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        if len(points) == 1:
            parts.append(np.concatenate([points, points], axis=1))
        else:
            parts.append(np.concatenate([points[:-1], points[1:]], axis=1))
    return np.ascontiguousarray(np.concatenate(parts).T)


def _bands(segments: np.ndarray, size: int, radius: float) -> _Bands:
    """Where ``segments`` (4, S) may ink the pad: a band of pixels per segment and row.

    pipeline.js's drawSegment scans the segment's bounding box, grown by ``radius + 1`` and
    clipped to the pad. Here each row of that box is cut to the pixels whose centres are
    within ``radius + 0.5`` of the segment (the only pixels it inks), and one more each side
    for rounding: the rest of the box gets no ink from that segment.
    """
    ax, ay, bx, by = segments
    reach = radius + 1.0
    left = np.maximum(0, np.floor(np.minimum(ax, bx) - reach)).astype(np.int64)
    right = np.minimum(size - 1, np.ceil(np.maximum(ax, bx) + reach)).astype(np.int64)
    top = np.maximum(0, np.floor(np.minimum(ay, by) - reach)).astype(np.int64)
    bottom = np.minimum(size - 1, np.ceil(np.maximum(ay, by) + reach)).astype(np.int64)
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy

    # Each segment's rows, with its values repeated along them.
    row_counts = np.where(left <= right, np.maximum(bottom - top + 1, 0), 0)
    starts = np.cumsum(row_counts) - row_counts
    row = np.arange(int(row_counts.sum())) - np.repeat(starts - top, row_counts)
    ax, ay, dx, dy, length2, left, right = (
        np.repeat(values, row_counts) for values in (ax, ay, dx, dy, length2, left, right)
    )
    # The part of the segment within `inked` of the row's centre line, grown by `inked`
    # sideways, holds every pixel centre of the row within `inked` of the segment.
    inked = radius + 0.5
    centre = row + 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        t_above = (centre - inked - ay) / dy
        t_below = (centre + inked - ay) / dy
    level = dy == 0
    t_low = np.where(level, 0.0, np.clip(np.minimum(t_above, t_below), 0.0, 1.0))
    t_high = np.where(level, 1.0, np.clip(np.maximum(t_above, t_below), 0.0, 1.0))
    x_low, x_high = ax + t_low * dx, ax + t_high * dx
    first = np.floor(np.minimum(x_low, x_high) - inked - 0.5).astype(np.int64) - 1
    last = np.ceil(np.maximum(x_low, x_high) + inked - 0.5).astype(np.int64) + 1
    first = np.maximum(first, left)
    width = np.minimum(last, right) - first + 1
    return _Bands(ax, ay, dx, dy, length2, row, first, width)


def _band_ink(bands: _Bands, size: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The bands' flat pixel indices and float32 coverage, each band padded to the widest."""
    width = int(bands.width.max())
    # A padded band is moved left to stay on the pad; its extra pixels get their true ink.
    first = np.minimum(bands.first, size - width)[:, None]
    columns = np.arange(width)
    pixels = (bands.row[:, None] * size + first) + columns  # (bands, width)
    ax, ay, dx, dy, length2 = (values[:, None] for values in bands[:5])
    px = (first + 0.5) + columns
    py = bands.row[:, None] + 0.5
    # The same operations, in the same order, as pipeline.js's drawSegment.
    t = np.zeros(px.shape)
    np.divide((px - ax) * dx + (py - ay) * dy, length2, out=t, where=length2 > 0)
    np.clip(t, 0.0, 1.0, out=t)
    gx = px - (ax + t * dx)
    gy = py - (ay + t * dy)
    distance = np.sqrt(gx * gx + gy * gy)
    coverage = np.clip(radius + 0.5 - distance, 0.0, 1.0).astype(np.float32)
    return pixels.ravel(), coverage.ravel()


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
    return place_template(DIGIT_TEMPLATES[digit], style)


def place_template(
    template: list[list[tuple[float, float]]], style: PenStyle
) -> list[list[tuple[float, float]]]:
    """Strokes in a unit box (x, y from -1 to 1, y down) drawn in ``style``, in pad units."""
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
        for stroke in template
    ]


# ---------------------------------------------------------------------------
# A brush scaled to the digit: the model's input drawn as MNIST's pens drew.

# The screen's brush is BRUSH_RADIUS whatever the digit's size, so a small digit's strokes
# become a blob once it is scaled into MNIST's 20x20 box. The strokes are vectors, so the
# model's input is drawn with a radius of BRUSH_PER_EXTENT x the digit's extent (its longer
# side: fit_in_box scales that side to 20 px) up to BRUSH_RADIUS: digits from 30% of the pad
# (84 units) up keep today's brush and input, bit for bit. Measured with the shipped MLP on
# templates at 6-12% of the pad's height: 15% read right with the screen's brush, 94% with
# this one (0.07 would read 100%, but would change digits up to half the pad).
BRUSH_PER_EXTENT = BRUSH_RADIUS / (0.3 * PAD_SIZE)
MIN_BRUSH_RADIUS = 1.0  # pad units: a dot still inks a few pixels


def ink_extent(strokes: list[np.ndarray], size: int = PAD_SIZE) -> float:
    """The longer side of the strokes' box on the pad (each stroke's box cut to the pad)."""
    x0 = y0 = math.inf
    x1 = y1 = -math.inf
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        sx0, sy0 = max(float(points[:, 0].min()), 0.0), max(float(points[:, 1].min()), 0.0)
        sx1 = min(float(points[:, 0].max()), float(size))
        sy1 = min(float(points[:, 1].max()), float(size))
        if sx0 <= sx1 and sy0 <= sy1:
            x0, y0, x1, y1 = min(x0, sx0), min(y0, sy0), max(x1, sx1), max(y1, sy1)
    return max(x1 - x0, y1 - y0) if x0 <= x1 else 0.0


def digit_brush_radius(strokes: list[np.ndarray], size: int = PAD_SIZE) -> float:
    """The brush to draw the model's input of one digit with: scaled to its extent."""
    return min(BRUSH_RADIUS, max(MIN_BRUSH_RADIUS, BRUSH_PER_EXTENT * ink_extent(strokes, size)))


def pen_style_between(
    rng: np.random.Generator, low: float, high: float, size: int = PAD_SIZE
) -> PenStyle:
    """Like ``random_pen_style``, with a height from ``low`` to ``high`` of the pad's side."""
    height = float(rng.uniform(low, high) * size)
    half_width = 0.6 * height / 2 + 0.2 * height / 2 + BRUSH_RADIUS
    half_height = height / 2 + BRUSH_RADIUS
    centre = (
        float(rng.uniform(half_width, size - half_width)),
        float(rng.uniform(half_height, size - half_height)),
    )
    return PenStyle(height, centre, float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0.5, 0.75)))

"""Numbers of several digits: the pad's strokes (or an image) split into digits, each read.

A drawing is split the way a person reads a number, by its strokes:

1. strokes whose centre lines touch (within ``JOIN_DISTANCE``) are one piece of ink;
2. pieces whose spans across the pad overlap substantially, one over the other, are one
   digit (a 4 or a 5 drawn in two strokes, a 7's bar);
3. a speck (far smaller than the tallest digit) belongs to the digit nearest it;
4. the digits are ordered left to right by their middles, whatever order they were drawn in;
5. touching digits (ink whose strokes touch) are split between their strokes where two
   sides part cleanly, each a digit's height, strokes that cross staying together (a 4's
   stem and bar); ink too wide for one digit with no such parting (one stroke through two
   digits) is cut at a column where it is thin, between two digit-tall sides. Either way
   the digits are flagged ``unsure``, as is ink left whole though as wide as two digits.

A dot is a speck of the digit nearest it, so a decimal point is not read.

Each digit's model input is its strokes alone, drawn with a brush scaled to its size
(``digitnet.strokes.digit_brush_radius``), through ``canvas_to_mnist``. The split and the
inputs are computed by the same arithmetic in ``digitnet/ui/static/pipeline.js``
(``splitDigits``, ``partToMnist``), so the browser finds the same digits in the same places
with the same 28x28 inputs (``tests/test_numbers_browser.py``). A drawing of one digit is
one part with all its strokes, read exactly as ``strokes_to_input`` reads it.

``digitnet.number_strokes.random_number`` draws numbers as a person writes them on the pad,
to measure all this (``tests/test_numbers.py``, ``scripts/numbers_benchmark.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from digitnet.calibration import calibration_of
from digitnet.errors import DigitnetError
from digitnet.ink_cuts import CUT_INK, PART_HEIGHT, clip_stroke, cut_column
from digitnet.predict import Prediction, predict_probs
from digitnet.preprocess import Preprocessed, canvas_to_mnist
from digitnet.strokes import (
    BRUSH_RADIUS,
    PAD_SIZE,
    digit_brush_radius,
    parse_strokes,
    rasterize_strokes,
)

MAX_DIGITS = 12  # a number longer than this is refused, as an over-long drawing is
MAX_MARKS = 4 * MAX_DIGITS  # separate pieces of ink before merging: more is no number
# Two strokes whose centre lines come this close (pad units) are one piece of ink. The screen's
# brush is 20 units wide, so digits a person sees apart are >= ~20 apart; a stroke that
# starts on another (a 5's bar, a 4's crossing) is within a unit or two.
JOIN_DISTANCE = 3.0
OVERLAP_SHARE = 0.5  # spans overlapping by half the narrower one's width are one digit...
NARROW_FLOOR = 0.3  # (a width counted as at least this share of the height)
NEAR_ROWS = 0.5  # ...when no further apart vertically than half the taller one's height
SPECK_SHARE = 0.2  # a mark smaller than this share of the tallest one's height is a speck
# Touching digits: a piece of ink wider than PARTITION_WIDTH x its height (narrower is one
# digit, or a pair of 1s) is split between its strokes where two sides part cleanly
# (``_partition``), each side at least PART_HEIGHT of it tall (a 4's stem, a 5's bar or a
# 9's loop never splits off). Ink wider than CUT_WIDTH x its height, brush included, with no
# such parting (one stroke through two digits) is cut at a column where it is thin
# (``cut_column``: one crossing, under THIN_SHARE of its height), no nearer its ends than
# CUT_MARGIN x its height. Split digits are flagged ``unsure``, and so is a piece left whole
# though wider than UNSURE_WIDTH x its height. Single digits are this wide too: 3.5% of
# MNIST's test digits over 1.2x, 1.4% over 1.4x (mostly 5s, 2s and 0s); of all 10,000 drawn
# as a person would (``drawings.render_drawings``), ``number_images.split_image`` cuts 2
# (scripts/numbers_benchmark.py --mnist 10000; any column of least ink over 1.2x cut 325).
PARTITION_WIDTH = 0.3
UNSURE_WIDTH = 1.2
CUT_WIDTH = 1.4
CUT_MARGIN = 0.3
MAX_CUT_DEPTH = 3  # column cuts in a row: at most 8 digits from one piece
MIN_CUT_HEIGHT = 5.0  # pad units: a flatter piece (a dash) is never cut

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


# ---------------------------------------------------------------------------
# Geometry shared by strokes and image components.


@dataclass(frozen=True)
class Mark:
    """Ink that is (so far) one digit: its members (stroke indices, or image components)."""

    box: Box  # the members' extent: stroke points, or image pixels
    members: tuple[int, ...]  # sorted

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _merged(a: Mark, b: Mark) -> Mark:
    return Mark(_union(a.box, b.box), tuple(sorted(a.members + b.members)))


def _overlap_share(a: Box, b: Box) -> float:
    """How much two spans across the pad overlap, as a share of the narrower one's width
    (at least NARROW_FLOOR of its height: a slanted 1 is no narrower than that)."""
    overlap = min(a[2], b[2]) - max(a[0], b[0])
    narrower = max(min(a[2] - a[0], b[2] - b[0]), NARROW_FLOOR * min(a[3] - a[1], b[3] - b[1]))
    if narrower > 0:
        return overlap / narrower
    return math.inf if overlap >= 0 else -math.inf


def _overlapping(a: Mark, b: Mark) -> bool:
    """One digit: spans across that overlap substantially, rows not far apart."""
    gap = max(a.box[1], b.box[1]) - min(a.box[3], b.box[3])
    return _overlap_share(a.box, b.box) >= OVERLAP_SHARE and gap <= NEAR_ROWS * max(
        a.height, b.height
    )


def merge_overlapping(marks: list[Mark]) -> list[Mark]:
    """Merge the first overlapping pair, in the marks' order, until none is left."""
    marks = list(marks)
    merged = True
    while merged:
        merged = False
        for i in range(len(marks)):
            for j in range(i + 1, len(marks)):
                if _overlapping(marks[i], marks[j]):
                    marks[i] = _merged(marks[i], marks[j])
                    del marks[j]
                    merged = True
                    break
            if merged:
                break
    return marks


def merge_specks(marks: list[Mark], drop_far: float | None = None) -> list[Mark]:
    """Each speck joins the nearest mark that is no speck (or, farther than ``drop_far`` x the
    tallest height from any, is dropped: dust on a photo)."""
    tallest = max((mark.height for mark in marks), default=0.0)
    specks = [max(m.width, m.height) < SPECK_SHARE * tallest for m in marks]
    kept = [mark for mark, speck in zip(marks, specks) if not speck]
    for mark, speck in zip(marks, specks):
        if not speck:
            continue
        gaps = [
            max(0.0, max(mark.box[0], other.box[0]) - min(mark.box[2], other.box[2]))
            for other in kept
        ]
        nearest = min(range(len(kept)), key=lambda k: (gaps[k], k))
        if drop_far is not None and gaps[nearest] > drop_far * tallest:
            continue
        kept[nearest] = _merged(kept[nearest], mark)
    return kept


def left_to_right(marks: list[Mark]) -> list[Mark]:
    """Ordered by the middle of their span (the first member breaks a tie)."""
    return sorted(marks, key=lambda m: ((m.box[0] + m.box[2]) / 2, m.members[0]))


def too_many_digits(count: int) -> DigitnetError:
    return DigitnetError(
        f"{count} digits is too many for one number; draw at most {MAX_DIGITS} digits"
    )


# ---------------------------------------------------------------------------
# Strokes -> digits.


@dataclass(frozen=True)
class DigitPart:
    """One digit of a drawing: its strokes (or pieces of them where touching digits were cut)."""

    strokes: list[np.ndarray]  # (N, 2) float64 points in pad units
    box: Box  # its ink as on the screen: the points' box grown by BRUSH_RADIUS, on the pad
    stroke_indices: tuple[int, ...]  # the drawing's strokes it holds (all or part of)
    unsure: bool = False  # split from touching ink, or too wide for one digit: may be wrong


def _stroke_box(stroke: np.ndarray) -> Box:
    return (
        float(stroke[:, 0].min()),
        float(stroke[:, 1].min()),
        float(stroke[:, 0].max()),
        float(stroke[:, 1].max()),
    )


def _strokes_box(strokes: Sequence[np.ndarray]) -> Box:
    boxes = [_stroke_box(stroke) for stroke in strokes]
    box = boxes[0]
    for other in boxes[1:]:
        box = _union(box, other)
    return box


def _segments(stroke: np.ndarray) -> np.ndarray:
    """(S, 4) rows ax, ay, bx, by; a lone point is a segment of no length."""
    if len(stroke) == 1:
        return np.concatenate([stroke, stroke], axis=1)
    return np.concatenate([stroke[:-1], stroke[1:]], axis=1)


def _points_near_segments(points: np.ndarray, segments: np.ndarray, limit: float) -> bool:
    """Whether any point is within ``limit`` of any segment (as pipeline.js computes it)."""
    ax, ay, bx, by = (segments[:, k][None, :] for k in range(4))
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    for start in range(0, len(points), 256):
        px = points[start : start + 256, 0:1]
        py = points[start : start + 256, 1:2]
        t = np.zeros((len(px), segments.shape[0]))
        np.divide((px - ax) * dx + (py - ay) * dy, length2, out=t, where=length2 > 0)
        np.clip(t, 0.0, 1.0, out=t)
        gx = px - (ax + t * dx)
        gy = py - (ay + t * dy)
        if ((gx * gx + gy * gy) <= limit * limit).any():
            return True
    return False


def _segments_cross(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether a segment of one crosses a segment of the other (strictly, as pipeline.js)."""
    ax, ay, bx, by = (first[:, k][:, None] for k in range(4))
    cx, cy, dx, dy = (second[:, k][None, :] for k in range(4))
    o1 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    o2 = (bx - ax) * (dy - ay) - (by - ay) * (dx - ax)
    o3 = (dx - cx) * (ay - cy) - (dy - cy) * (ax - cx)
    o4 = (dx - cx) * (by - cy) - (dy - cy) * (bx - cx)
    return bool(((o1 * o2 < 0) & (o3 * o4 < 0)).any())


def strokes_touch(first: np.ndarray, second: np.ndarray, limit: float = JOIN_DISTANCE) -> bool:
    """Whether two strokes' centre lines come within ``limit`` pad units of each other."""
    a, b = _stroke_box(first), _stroke_box(second)
    if a[0] - limit > b[2] or b[0] - limit > a[2] or a[1] - limit > b[3] or b[1] - limit > a[3]:
        return False
    first_segments, second_segments = _segments(first), _segments(second)
    return (
        _points_near_segments(first, second_segments, limit)
        or _points_near_segments(second, first_segments, limit)
        or _segments_cross(first_segments, second_segments)
    )


def _on_the_pad(stroke: np.ndarray) -> bool:
    """Whether the stroke can ink the pad at all (its box grown by the screen's brush)."""
    reach = BRUSH_RADIUS + 1.0
    x0, y0, x1, y1 = _stroke_box(stroke)
    return x1 >= -reach and y1 >= -reach and x0 <= PAD_SIZE + reach and y0 <= PAD_SIZE + reach


def _pieces_of_ink(strokes: list[np.ndarray], indices: list[int]) -> list[Mark]:
    """Strokes whose centre lines touch, transitively: sorted by their first stroke."""
    parent = {index: index for index in indices}

    def root(index: int) -> int:
        while parent[index] != index:
            index = parent[index]
        return index

    for position, i in enumerate(indices):
        for j in indices[position + 1 :]:
            if root(i) != root(j) and strokes_touch(strokes[i], strokes[j]):
                parent[max(root(i), root(j))] = min(root(i), root(j))
    members: dict[int, list[int]] = {}
    for index in indices:
        members.setdefault(root(index), []).append(index)
    return [
        Mark(_strokes_box([strokes[i] for i in group]), tuple(group))
        for group in sorted(members.values())
    ]


def _ink_box(points_box: Box) -> Box:
    x0, y0, x1, y1 = points_box
    return (
        max(0.0, x0 - BRUSH_RADIUS),
        max(0.0, y0 - BRUSH_RADIUS),
        min(float(PAD_SIZE), x1 + BRUSH_RADIUS),
        min(float(PAD_SIZE), y1 + BRUSH_RADIUS),
    )


@dataclass(frozen=True)
class _Piece:
    """A stroke, or the part of one on one side of a cut: its points and its stroke's index."""

    points: np.ndarray
    index: int


def _crossing_groups(pieces: list[_Piece]) -> list[list[_Piece]]:
    """Strokes whose centre lines cross, transitively, are one digit's (a 4's stem through
    its bar; strokes of two digits touch, they do not cross): grouped, by first stroke."""
    segments = [_segments(piece.points) for piece in pieces]
    group = list(range(len(pieces)))
    for i in range(len(pieces)):
        for j in range(i + 1, len(pieces)):
            if group[i] != group[j] and _segments_cross(segments[i], segments[j]):
                old, new = max(group[i], group[j]), min(group[i], group[j])
                group = [new if g == old else g for g in group]
    return [[pieces[k] for k in range(len(pieces)) if group[k] == g] for g in sorted(set(group))]


def _partition(pieces: list[_Piece], height: float) -> tuple[list[_Piece], list[_Piece]] | None:
    """Split between strokes where two touching digits part cleanly, if they do.

    Strokes that cross stay together (``_crossing_groups``); the groups, ordered by their
    middles, are split where each side is a digit's height, every group of the left side
    starts left of the right side and every group of the right side ends right of the left
    side (a digit's stroke is never inside the other digit), and, of such splits, where the
    sides' spans overlap least (``_overlap_share``)."""
    groups = _crossing_groups(pieces)
    if len(groups) < 2:
        return None
    boxes = [_union_all([_stroke_box(piece.points) for piece in group]) for group in groups]
    order = sorted(range(len(groups)), key=lambda k: ((boxes[k][0] + boxes[k][2]) / 2, k))
    best, best_share = None, math.inf
    for split in range(1, len(order)):
        left_boxes = [boxes[k] for k in order[:split]]
        right_boxes = [boxes[k] for k in order[split:]]
        left, right = _union_all(left_boxes), _union_all(right_boxes)
        if not (
            all(box[0] < right[0] for box in left_boxes)
            and all(box[2] > left[2] for box in right_boxes)
            and left[3] - left[1] >= PART_HEIGHT * height
            and right[3] - right[1] >= PART_HEIGHT * height
        ):
            continue
        share = _overlap_share(left, right)
        if share < best_share:
            best, best_share = split, share
    if best is None:
        return None
    return tuple(
        [piece for k in side for piece in groups[k]] for side in (order[:best], order[best:])
    )


def _union_all(boxes: list[Box]) -> Box:
    box = boxes[0]
    for other in boxes[1:]:
        box = _union(box, other)
    return box


def _cut_strokes(pieces: list[_Piece], box: Box) -> int | None:
    """``cut_column`` for strokes: drawn with their digit's brush on the pad, away from the
    ends of their box (pad units) by CUT_MARGIN x its height, and never through strokes that
    cross (a wide open 4's bar, crossed by its stem, is one digit's)."""
    x0, _, x1, _ = box
    height = box[3] - box[1]
    first = max(0, math.ceil(x0 + CUT_MARGIN * height))
    last = min(PAD_SIZE - 1, math.floor(x1 - CUT_MARGIN * height))
    crossing = [
        _union_all([_stroke_box(piece.points) for piece in group])
        for group in _crossing_groups(pieces)
        if len(group) > 1
    ]
    columns = [
        column
        for column in range(first, last + 1)
        if not any(span[0] < column + 0.5 < span[2] for span in crossing)
    ]
    if not columns:
        return None
    strokes = [piece.points for piece in pieces]
    ink = rasterize_strokes(strokes, PAD_SIZE, digit_brush_radius(strokes))
    return cut_column(ink > CUT_INK, columns, (x0 + x1) / 2)


def _split_touching(pieces: list[_Piece], depth: int = 0) -> list[tuple[list[_Piece], bool]]:
    """A piece of ink -> the digits in it, left to right, each with whether it is unsure: split
    from touching ink, or left whole though wider than one digit usually is."""
    box = _union_all([_stroke_box(piece.points) for piece in pieces])
    width, height = box[2] - box[0], box[3] - box[1]
    if height < MIN_CUT_HEIGHT or width <= PARTITION_WIDTH * height:
        return [(pieces, False)]
    brush = 2 * digit_brush_radius([piece.points for piece in pieces])  # as the ink shows it
    too_wide = width + brush > UNSURE_WIDTH * (height + brush)
    sides = _partition(pieces, height)
    if sides is None and width + brush > CUT_WIDTH * (height + brush) and depth < MAX_CUT_DEPTH:
        column = _cut_strokes(pieces, box)
        if column is not None:
            cut = column + 0.5
            sides = tuple(
                [
                    _Piece(part, piece.index)
                    for piece in pieces
                    for part in clip_stroke(piece.points, cut, left)
                ]
                for left in (True, False)
            )
            depth += 1
    if sides is None:
        return [(pieces, too_wide)]
    found = _split_touching(sides[0], depth) + _split_touching(sides[1], depth)
    return [(side, True) for side, _ in found]


def split_digits(strokes: list[np.ndarray] | list) -> list[DigitPart]:
    """A drawing's strokes (pad units) -> its digits, left to right.

    Raw JSON strokes are checked by ``parse_strokes`` first. More than MAX_DIGITS digits (or
    MAX_MARKS separate marks) is a one-line DigitnetError. A blank drawing has no digits.
    """
    strokes = _as_strokes(strokes)
    indices = [index for index, stroke in enumerate(strokes) if _on_the_pad(stroke)]
    marks = _pieces_of_ink(strokes, indices)
    if len(marks) > MAX_MARKS:
        raise DigitnetError(
            f"{len(marks)} separate marks is too many for one number; "
            f"draw at most {MAX_DIGITS} digits"
        )
    marks = left_to_right(merge_specks(merge_overlapping(marks)))
    if len(marks) > MAX_DIGITS:
        raise too_many_digits(len(marks))
    parts = []
    for mark in marks:
        pieces = [_Piece(strokes[index], index) for index in mark.members]
        for side, unsure in _split_touching(pieces):
            points = [piece.points for piece in side]
            parts.append(
                DigitPart(
                    points,
                    _ink_box(_strokes_box(points)),
                    tuple(sorted({piece.index for piece in side})),
                    unsure,
                )
            )
    if len(parts) > MAX_DIGITS:
        raise too_many_digits(len(parts))
    return parts


def _as_strokes(strokes) -> list[np.ndarray]:
    if all(isinstance(stroke, np.ndarray) for stroke in strokes):
        return [np.asarray(stroke, dtype=np.float64).reshape(-1, 2) for stroke in strokes]
    return parse_strokes(strokes)


def strokes_to_input(strokes: list[np.ndarray] | list) -> Preprocessed:
    """One digit's strokes -> the model's input, drawn with a brush scaled to the digit.

    What the server's single-digit path (``canvas_to_mnist(rasterize_strokes(strokes))``)
    becomes: identical for digits of 30% of the pad and more, a thinner brush below.
    """
    strokes = _as_strokes(strokes)
    return canvas_to_mnist(rasterize_strokes(strokes, PAD_SIZE, digit_brush_radius(strokes)))


def part_input(part: DigitPart) -> Preprocessed:
    """One digit of a number -> the model's input: its strokes alone, with its own brush."""
    return strokes_to_input(part.strokes)


# ---------------------------------------------------------------------------
# Reading.


@dataclass(frozen=True)
class DigitReading:
    """One digit of a number as read: its label ("?" when the model says it is no digit)."""

    label: str
    prediction: Prediction  # probabilities and the 28x28 input
    box: Box  # pad units (image pixels for an image)
    unsure: bool = False  # its ink touched another digit's, or is too wide for one digit
    strokes: list[np.ndarray] | None = None  # its strokes in pad units (None for an image)

    @property
    def confidence(self) -> float:
        return self.prediction.confidence


@dataclass(frozen=True)
class Reading:
    """A number as read: the text, and its confidence (the product of the digits')."""

    digits: list[DigitReading]

    @property
    def text(self) -> str:
        return "".join(digit.label for digit in self.digits)

    @property
    def confidence(self) -> float:
        return math.prod(digit.confidence for digit in self.digits) if self.digits else 0.0

    @property
    def touching(self) -> bool:
        """Whether some digit was split from touching ink (or is too wide for one): the
        reading may have the count of digits wrong."""
        return any(digit.unsure for digit in self.digits)

    def as_dict(self) -> dict:
        """``{"text", "confidence", "digits": [{"label", "confidence", "box", "unsure"}, ...]}``;
        ``unsure``: the digit was split from touching ink, or is too wide for one digit."""
        return {
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "digits": [
                {
                    "label": digit.label,
                    "confidence": round(digit.confidence, 4),
                    "box": [round(value, 1) for value in digit.box],
                    "unsure": digit.unsure,
                }
                for digit in self.digits
            ],
        }


def read_inputs(
    model: nn.Module,
    inputs: list[Preprocessed],
    boxes: list[Box],
    unsure: list[bool],
    strokes: list[list[np.ndarray]] | None = None,
) -> Reading:
    """Digits already through ``canvas_to_mnist`` (and their strokes, if drawn) -> the
    reading; blank ones are left out."""
    kept = [k for k, preprocessed in enumerate(inputs) if not preprocessed.is_blank]
    if not kept:
        return Reading([])
    probs = predict_probs(model, np.stack([inputs[k].image for k in kept]))
    reject_below = calibration_of(model).reject_below
    digits = []
    for k, p in zip(kept, probs):
        prediction = Prediction(p, inputs[k], reject_below)
        label = str(prediction.label) if prediction.is_digit else "?"
        drawn = None if strokes is None else strokes[k]
        digits.append(DigitReading(label, prediction, boxes[k], unsure[k], drawn))
    return Reading(digits)


def read_strokes(model: nn.Module, strokes: list[np.ndarray] | list) -> Reading:
    """The pad's strokes -> the number drawn (``Reading.as_dict()`` is the API's answer)."""
    return read_parts(model, split_digits(strokes))


def read_parts(model: nn.Module, parts: list[DigitPart]) -> Reading:
    """The digits ``split_digits`` found -> the number they make."""
    return read_inputs(
        model,
        [part_input(part) for part in parts],
        [part.box for part in parts],
        [part.unsure for part in parts],
        [part.strokes for part in parts],
    )

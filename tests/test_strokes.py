"""Pad strokes (digitnet.strokes): checking them, rasterising them, and the digit templates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_one_line
from hypothesis import given
from hypothesis import strategies as st

from digitnet.checkpoint import load_checkpoint
from digitnet.errors import DigitnetError
from digitnet.predict import predict_probs
from digitnet.preprocess import canvas_to_mnist
from digitnet.strokes import (
    BRUSH_RADIUS,
    COORDINATE_LIMIT,
    MAX_LENGTH,
    MAX_POINTS,
    MAX_STROKES,
    PAD_SIZE,
    PenStyle,
    digit_strokes,
    parse_strokes,
    random_pen_style,
    rasterize_strokes,
    rasterizing_work,
)


def whole_pad_ink(strokes, size: int = PAD_SIZE, radius: float = BRUSH_RADIUS) -> np.ndarray:
    """The ink by its definition: each segment's coverage of every pixel, the maximum kept."""
    ink = np.zeros((size, size), dtype=np.float32)
    px = np.arange(size, dtype=np.float64)[None, :] + 0.5
    py = np.arange(size, dtype=np.float64)[:, None] + 0.5
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        ends = zip(points[:-1], points[1:]) if len(points) > 1 else [(points[0], points[0])]
        for (ax, ay), (bx, by) in ends:
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0, 1) if length2 else 0.0
            gx = px - (ax + t * dx)
            gy = py - (ay + t * dy)
            distance = np.sqrt(gx * gx + gy * gy)
            coverage = np.clip(radius + 0.5 - distance, 0.0, 1.0).astype(np.float32)
            np.maximum(ink, coverage, out=ink)
    return ink


def segment_count_and_length(strokes) -> tuple[int, float]:
    segments = sum(max(1, len(stroke) - 1) for stroke in strokes)
    length = sum(float(np.hypot(*np.diff(stroke, axis=0).T).sum()) for stroke in strokes)
    return segments, length


def test_a_dot_is_a_disc_of_the_brush_with_a_soft_edge():
    ink = rasterize_strokes([np.array([[100.0, 60.0]])])
    assert ink.shape == (PAD_SIZE, PAD_SIZE) and ink.dtype == np.float32
    rows, cols = np.indices(ink.shape)
    distance = np.hypot(cols + 0.5 - 100.0, rows + 0.5 - 60.0)
    assert (ink[distance <= BRUSH_RADIUS - 0.5] == 1.0).all()
    assert (ink[distance >= BRUSH_RADIUS + 0.5] == 0.0).all()
    edge = (distance > BRUSH_RADIUS - 0.5) & (distance < BRUSH_RADIUS + 0.5)
    assert ((ink[edge] > 0) & (ink[edge] < 1)).any()  # anti-aliased over one pixel
    area = float(ink.sum())
    assert area == pytest.approx(math.pi * BRUSH_RADIUS**2, rel=0.02)


def test_a_segment_is_a_capsule_and_strokes_overlap_without_adding_up():
    line = rasterize_strokes([np.array([[50.0, 140.0], [230.0, 140.0]])])
    assert line.max() == 1.0
    assert (line[140, 50:230] == 1.0).all() and line[140, 20] == 0.0
    length, width = 180.0, 2 * BRUSH_RADIUS
    assert float(line.sum()) == pytest.approx(length * width + math.pi * BRUSH_RADIUS**2, rel=0.02)
    twice = rasterize_strokes([np.array([[50.0, 140.0], [230.0, 140.0]])] * 2)
    assert np.array_equal(twice, line)  # ink is a maximum, not a sum


def test_ink_outside_the_pad_is_cut_off():
    ink = rasterize_strokes([np.array([[-30.0, -30.0], [5.0, 5.0]]), np.array([[500.0, 500.0]])])
    assert ink[0, 0] == 1.0 and ink[-1, -1] == 0.0


@given(
    st.lists(
        st.lists(
            st.tuples(st.floats(-20, 300, allow_nan=False), st.floats(-20, 300, allow_nan=False)),
            min_size=1,
            max_size=6,
        ),
        max_size=3,
    )
)
def test_any_strokes_give_ink_in_range_under_every_point(strokes):
    ink = rasterize_strokes([np.array(stroke) for stroke in strokes])
    assert ink.shape == (PAD_SIZE, PAD_SIZE)
    assert ink.min() >= 0.0 and ink.max() <= 1.0
    for x, y in (point for stroke in strokes for point in stroke):
        if 0 <= x < PAD_SIZE and 0 <= y < PAD_SIZE:
            assert ink[int(y), int(x)] == 1.0  # the pen's own pixel is full ink
    if not strokes:
        assert ink.max() == 0.0


# Points anywhere from well off the pad to inside it, and strokes that run level or plumb,
# where a band's edge is hardest to get right.
COORDINATES = st.one_of(st.floats(-400, 700), st.integers(-20, 300).map(float))


@st.composite
def wild_strokes(draw):
    strokes = []
    for _ in range(draw(st.integers(1, 4))):
        points = draw(st.lists(st.tuples(COORDINATES, COORDINATES), min_size=1, max_size=5))
        if draw(st.booleans()):  # level or plumb: one coordinate shared by every point
            axis, shared = draw(st.integers(0, 1)), draw(COORDINATES)
            points = [(shared, y) if axis == 0 else (x, shared) for x, y in points]
        strokes.append(np.array(points, dtype=np.float64))
    return strokes


@given(wild_strokes())
def test_ink_is_the_same_as_scanning_the_whole_pad_for_every_segment(strokes):
    """Only pixels near a segment are computed; the others would have got no ink anyway."""
    assert rasterize_strokes(strokes).tobytes() == whole_pad_ink(strokes).tobytes()


def test_ink_is_the_same_as_scanning_the_whole_pad_for_drawn_digits():
    rng = np.random.default_rng(1)
    for index in range(20):
        strokes = [np.array(s) for s in digit_strokes(index % 10, random_pen_style(rng))]
        if index % 2:  # partly off the pad
            strokes = [s + rng.uniform(-150, 150, size=2) for s in strokes]
        assert rasterize_strokes(strokes).tobytes() == whole_pad_ink(strokes).tobytes()


# The work of rasterising: at most this many pixel values per segment (a brush-sized square)
# and per pad unit of its length (a brush-wide band): ~30-40 ns each.
WORK_PER_SEGMENT = 800
WORK_PER_UNIT = 64


@given(wild_strokes())
def test_the_work_grows_with_the_ink_not_with_the_segments_boxes(strokes):
    segments, length = segment_count_and_length(strokes)
    assert rasterizing_work(strokes) <= WORK_PER_SEGMENT * segments + WORK_PER_UNIT * length


def test_strokes_parse_from_json_values():
    strokes = parse_strokes([[[1, 2], [3.5, 4]], [[10, 10]]])
    assert [s.shape for s in strokes] == [(2, 2), (1, 2)]
    assert strokes[0].dtype == np.float64
    assert parse_strokes([]) == []


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("strokes", "must be a list of strokes"),
        ({"x": 1}, "must be a list of strokes"),
        ([[]], "stroke 0 must be a non-empty list"),
        ([5], "stroke 0 must be a non-empty list"),
        ([[[1, 2]], [[1, 2, 3]]], "stroke 1 has a point"),
        ([[[1, "2"]]], "two numbers"),
        ([[[1, True]]], "two numbers"),
        ([[[1, float("nan")]]], "two numbers"),
        ([[[1, float("inf")]]], "two numbers"),
        ([[[1, None]]], "two numbers"),
        ([[[1, 1e9]]], "far outside"),
        ([[[1, 10**400]]], "far outside"),  # JSON's ints have no limit; not a float overflow
        ([[[1, -(10**400)]]], "far outside"),
        ([[[1, COORDINATE_LIMIT + 1]]], "far outside"),
        ([[[1, 2]]] * (MAX_STROKES + 1), "too many"),
        ([[[1, 2]] * (MAX_POINTS + 1)], "points in all"),
        ([[[1, 2]]] * 100 + [[[1, 2]] * (MAX_POINTS - 99)], "points in all"),
        ([[[0, 0], [280, 280]] * 13, [[0, 0], [280, 280]] * 13], "pad units long"),
    ],
)
def test_bad_strokes_are_one_line_errors(raw, needle):
    with pytest.raises(DigitnetError) as caught:
        parse_strokes(raw)
    assert_one_line(str(caught.value), needle)


def test_a_deeply_nested_point_is_a_short_one_line_error():
    deep = [1.0]
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(DigitnetError) as caught:
        parse_strokes([[deep]])
    assert_one_line(str(caught.value), "two numbers")
    assert len(str(caught.value)) < 120


def test_the_limits_allow_any_digit_a_person_draws():
    """The densest a person draws, a point every 0.75 units, is well inside the limits."""
    rng = np.random.default_rng(2)
    for digit in range(10):
        style = PenStyle(0.85 * PAD_SIZE, (140.0, 140.0), slant=0.25, width_ratio=0.75)
        strokes = [np.array(s) for s in digit_strokes(digit, style)]
        dense = [densify(s + rng.normal(0, 0.3, s.shape), step=0.75) for s in strokes]
        points, length = sum(map(len, dense)), segment_count_and_length(dense)[1]
        assert points < MAX_POINTS / 4 and length < MAX_LENGTH / 8, (digit, points, length)
        assert len(parse_strokes([s.tolist() for s in dense])) == len(dense)


def densify(stroke: np.ndarray, step: float) -> np.ndarray:
    """The stroke with a point every ``step`` units or less, as a mouse sends them."""
    pieces = [stroke[:1]]
    for a, b in zip(stroke[:-1], stroke[1:]):
        n = max(1, int(np.ceil(np.hypot(*(b - a)) / step)))
        pieces.append(a + (b - a) * (np.arange(1, n + 1)[:, None] / n))
    return np.concatenate(pieces)


def test_the_costliest_strokes_the_limits_allow_are_cheap_to_rasterise():
    """The work is counted (pixel values computed), not timed."""
    # The old limits' worst case, 20,000 points corner to corner, took ~100 s; now refused.
    corner_to_corner = [[[0, 0], [280, 280]] * 50] * (20_000 // 100)
    with pytest.raises(DigitnetError) as caught:
        parse_strokes(corner_to_corner)
    assert_one_line(str(caught.value))
    # Now: the most length allowed, drawn corner to corner (the widest band a unit), and
    # every other point a short segment of its own (a brush-sized square each), on the pad.
    diagonals = [[0, 0], [280, 280]] * 12 + [[0, 0]]
    dots = [[[140 + i / 10, 60]] for i in range(MAX_STROKES - 2)]
    count = MAX_POINTS - len(diagonals) - len(dots)
    wiggle = [[140 + (i % 2) / 10, 140] for i in range(count)]  # 0.1 units a segment
    worst = [diagonals, wiggle, *dots]
    strokes = parse_strokes(worst)
    assert sum(map(len, strokes)) == MAX_POINTS
    work = rasterizing_work(strokes)
    assert work <= WORK_PER_SEGMENT * MAX_POINTS + WORK_PER_UNIT * MAX_LENGTH  # 4.6 million
    assert work >= 500 * MAX_POINTS  # near the bound: a brush-sized square a point
    # The old rasteriser computed the whole pad for each of those 20,000 segments.
    old_work = sum(len(stroke) - 1 for stroke in corner_to_corner) * PAD_SIZE**2
    assert work < old_work / 300


def test_digit_templates_are_read_right_in_any_size_place_and_slant():
    """The strokes the browser tests and the latency benchmark draw, read by Python first."""
    rng = np.random.default_rng(0)
    inputs, labels = [], []
    for index in range(200):
        digit = index % 10
        style = random_pen_style(rng)
        strokes = digit_strokes(digit, style)
        points = np.concatenate([np.array(s) for s in strokes])
        assert points.min() >= 0 and points.max() <= PAD_SIZE  # the whole digit is on the pad
        inputs.append(canvas_to_mnist(rasterize_strokes([np.array(s) for s in strokes])).image)
        labels.append(digit)
    for name in ("mlp", "cnn"):
        model, _ = load_checkpoint(name)
        right = predict_probs(model, np.stack(inputs)).argmax(axis=1) == np.array(labels)
        assert right.mean() >= 0.97, (name, right.mean())

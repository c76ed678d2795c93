"""Cutting ink too wide for one digit: where to cut a raster (``cut_column``) and a stroke's
part on one side of a cut (``clip_stroke``). Pure array functions shared by numbers drawn
as strokes (``digitnet.numbers``) and numbers in images (``digitnet.number_images``);
pipeline.js's ``cutColumn`` is the browser's twin of ``cut_column``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PART_HEIGHT = 0.6  # each side of a split at least this share of the piece's height
THIN_SHARE = 0.3  # a column crossed by ink under this share of the piece's height is thin
# Ink counted in a column when choosing where to cut (exact integers on both sides).
CUT_INK = 0.5


def clip_stroke(stroke: np.ndarray, cut: float, left: bool) -> list[np.ndarray]:
    """The parts of a stroke on one side of the line x = cut (points on it count as both)."""
    pieces: list[np.ndarray] = []
    current: list[tuple[float, float]] = []
    previous = None
    for x, y in stroke.tolist():
        inside = x <= cut if left else x >= cut
        if previous is not None:
            px, py, was_inside = previous
            if was_inside != inside:
                t = (cut - px) / (x - px)
                crossing = (cut, py + t * (y - py))
                if was_inside:
                    current.append(crossing)
                    pieces.append(np.array(current, dtype=np.float64))
                    current = []
                else:
                    current = [crossing]
        if inside:
            current.append((x, y))
        previous = (x, y, inside)
    if current:
        pieces.append(np.array(current, dtype=np.float64))
    return pieces


def cut_column(inked: np.ndarray, columns: Sequence[int], middle: float) -> int | None:
    """Where to cut ink too wide for one digit: one of ``columns`` (of the boolean raster
    ``inked``, one piece's ink) that the ink crosses once at most, under THIN_SHARE of the
    piece's inked rows (the thin join of two digits, not a wide 0's two arcs nor a stem),
    with ink on each side of it (columns up to it, columns after it) at least PART_HEIGHT
    of them tall (a 2's long tail or a 5's bar is no digit); of those, the least ink,
    nearest ``middle`` on a tie. None where no column is such. pipeline.js's ``cutColumn``
    counts the same."""
    rows = np.flatnonzero(inked.any(axis=1))
    if len(rows) == 0:
        return None
    tall = PART_HEIGHT * (rows[-1] - rows[0] + 1)
    size = inked.shape[0]
    has_ink = inked.any(axis=0)
    tops = np.where(has_ink, inked.argmax(axis=0), size)
    bottoms = np.where(has_ink, size - 1 - inked[::-1].argmax(axis=0), -1)
    left_height = np.maximum.accumulate(bottoms) - np.minimum.accumulate(tops) + 1
    right_height = (np.maximum.accumulate(bottoms[::-1]) - np.minimum.accumulate(tops[::-1]) + 1)[
        ::-1
    ]
    runs = inked[0].astype(np.int64) + (inked[1:] & ~inked[:-1]).sum(axis=0)
    counts = inked.sum(axis=0)
    thin = THIN_SHARE * (rows[-1] - rows[0] + 1)
    candidates = [
        column
        for column in columns
        if column <= inked.shape[1] - 2
        and runs[column] <= 1
        and counts[column] <= thin
        and left_height[column] >= tall
        and right_height[column + 1] >= tall
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda column: (int(counts[column]), abs(column + 0.5 - middle), column),
    )

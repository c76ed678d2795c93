"""Images of numbers: connected ink stands in for strokes (``digitnet.numbers`` splits strokes).

An image's ink is labelled into connected pieces, merged and ordered as the pad's marks are
(``numbers.merge_overlapping``, ``merge_specks``, ``left_to_right``); a piece too wide
for one digit is cut where the fewest ink pixels stand, and each digit goes through
``canvas_to_mnist`` and the model (``numbers.read_inputs``). Used by the ``read_image`` API
endpoint and ``python -m digitnet predict --numbers``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from torch import nn

from digitnet.errors import DigitnetError, ImageError
from digitnet.numbers import (
    CUT_MARGIN,
    CUT_WIDTH,
    MAX_CUT_DEPTH,
    MAX_DIGITS,
    MAX_MARKS,
    Box,
    Mark,
    Reading,
    left_to_right,
    merge_overlapping,
    merge_specks,
    read_inputs,
    too_many_digits,
)
from digitnet.predict import write_csv
from digitnet.preprocess import canvas_to_mnist, image_to_ink, load_image_file

IMAGE_INK = 0.25  # an image's ink above this is a digit's (its anti-aliased rim is left out)
DUST = 0.5  # a speck farther than this x the tallest digit from every digit is dust


def read_image(model: nn.Module, image: str | Path | Image.Image | np.ndarray) -> Reading:
    """An image of a number (a file, or a picture) -> the number, as ``read_strokes`` does.

    Connected ink stands in for strokes; boxes are in the image's pixels. A blank image has
    empty text; an unreadable file is an ImageError.
    """
    if isinstance(image, str | Path):
        image = load_image_file(image)
    ink, blank = image_to_ink(image)
    if blank:
        return Reading([])
    labels, count = ndimage.label(ink > IMAGE_INK, structure=np.ones((3, 3)))
    if count > MAX_MARKS * 4:
        raise ImageError(f"{count} separate marks is too many for a number of digits")
    marks = [
        Mark((float(cols.start), float(rows.start), float(cols.stop), float(rows.stop)), (k + 1,))
        for k, (rows, cols) in enumerate(ndimage.find_objects(labels))
    ]
    marks = left_to_right(merge_specks(merge_overlapping(marks), drop_far=DUST))
    inputs, boxes, unsure = [], [], []
    for mark in marks:
        digit_ink = np.where(np.isin(labels, mark.members), ink, 0.0).astype(np.float32)
        parts = _cut_image_digit(digit_ink, mark.box)
        for box, part in parts:
            inputs.append(canvas_to_mnist(part))
            boxes.append(box)
            unsure.append(len(parts) > 1)
    if len(inputs) > MAX_DIGITS:
        raise too_many_digits(len(inputs))
    return read_inputs(model, inputs, boxes, unsure)


def _cut_image_digit(ink: np.ndarray, box: Box, depth: int = 0) -> list[tuple[Box, np.ndarray]]:
    """Ink of one mark -> one or more digits: too wide for its height, cut where least ink."""
    x0, y0, x1, y1 = (int(value) for value in box)
    width, height = x1 - x0, y1 - y0
    if width <= CUT_WIDTH * height or depth >= MAX_CUT_DEPTH:
        return [(box, ink)]
    first, last = math.ceil(x0 + CUT_MARGIN * height), math.floor(x1 - CUT_MARGIN * height)
    if first > last:
        return [(box, ink)]
    counts = ink[y0:y1, first : last + 1].sum(axis=0)
    middle = (x0 + x1) / 2
    cut = min(range(first, last + 1), key=lambda c: (counts[c - first], abs(c + 0.5 - middle)))
    parts = []
    for lo, hi in ((x0, cut), (cut, x1)):
        side = np.zeros_like(ink)
        side[:, lo:hi] = ink[:, lo:hi]
        rows = np.flatnonzero(side.any(axis=1))
        cols = np.flatnonzero(side.any(axis=0))
        if len(rows) == 0:
            continue
        side_box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
        parts += _cut_image_digit(side, side_box, depth + 1)
    return parts


def read_image_files(
    model: nn.Module, paths: list[Path], *, skip_bad: bool = False
) -> tuple[list[tuple[str, str, float]], list[str]]:
    """(file, text, confidence) for each image of a number, and the skipped files' problems.

    Without ``skip_bad`` the first unreadable image raises, naming the file.
    """
    rows, problems = [], []
    for path in paths:
        try:
            reading = read_image(model, path)
        except DigitnetError as error:
            if not skip_bad:
                raise
            problems.append(str(error))
            continue
        rows.append((str(path), reading.text, round(reading.confidence, 4)))
    return rows, problems


def write_number_predictions(rows: list[tuple[str, str, float]], out_path: str | Path) -> Path:
    """CSV ``file,text,confidence``, written atomically."""
    return write_csv(out_path, ["file", "text", "confidence"], rows)

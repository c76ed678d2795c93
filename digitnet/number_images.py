"""Images of numbers: connected ink stands in for strokes (``digitnet.numbers`` splits strokes).

An image's ink is labelled into connected pieces, merged and ordered as the pad's marks are
(``numbers.merge_overlapping``, ``merge_specks``, ``left_to_right``); a piece too wide
for one digit is cut where the fewest ink pixels stand, and each digit goes through
``canvas_to_mnist`` and the model (``numbers.read_inputs``). Used by the ``read_image`` API
endpoint and ``python -m digitnet predict --numbers``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from torch import nn

from digitnet.errors import DigitnetError, ImageError
from digitnet.ink_cuts import CUT_INK, cut_column
from digitnet.numbers import (
    CUT_MARGIN,
    CUT_WIDTH,
    MAX_CUT_DEPTH,
    MAX_DIGITS,
    MAX_MARKS,
    UNSURE_WIDTH,
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


@dataclass(frozen=True)
class ImageDigit:
    """One digit found in an image: its ink alone, where it is, and whether it was cut."""

    ink: np.ndarray  # float32, the image's size, only this digit's ink
    box: Box  # the image's pixels
    unsure: bool  # cut from ink too wide for one digit, or too wide and left whole
    cut: bool = False  # cut from ink too wide for one digit


def split_image(image: Image.Image | np.ndarray) -> list[ImageDigit]:
    """An image of a number -> its digits, left to right (none for a blank image).

    Connected ink stands in for strokes: pieces are merged and ordered as the pad's marks
    are, and a piece too wide for one digit is cut as the pad's strokes are
    (``numbers.cut_column``). More marks than a number holds is a one-line ImageError.
    """
    ink, blank = image_to_ink(image)
    if blank:
        return []
    labels, count = ndimage.label(ink > IMAGE_INK, structure=np.ones((3, 3)))
    if count > MAX_MARKS * 4:
        raise ImageError(f"{count} separate marks is too many for a number of digits")
    marks = [
        Mark((float(cols.start), float(rows.start), float(cols.stop), float(rows.stop)), (k + 1,))
        for k, (rows, cols) in enumerate(ndimage.find_objects(labels))
    ]
    marks = left_to_right(merge_specks(merge_overlapping(marks), drop_far=DUST))
    digits = []
    for mark in marks:
        digit_ink = np.where(np.isin(labels, mark.members), ink, 0.0).astype(np.float32)
        parts = _cut_image_digit(digit_ink, mark.box)
        cut = len(parts) > 1
        digits += [ImageDigit(part, box, unsure or cut, cut) for box, part, unsure in parts]
    if len(digits) > MAX_DIGITS:
        raise too_many_digits(len(digits))
    return digits


def read_image(model: nn.Module, image: str | Path | Image.Image | np.ndarray) -> Reading:
    """An image of a number (a file, or a picture) -> the number, as ``read_strokes`` does.

    Boxes are in the image's pixels. A blank image has empty text; an unreadable file is an
    ImageError.
    """
    if isinstance(image, str | Path):
        image = load_image_file(image)
    digits = split_image(image)
    return read_inputs(
        model,
        [canvas_to_mnist(digit.ink) for digit in digits],
        [digit.box for digit in digits],
        [digit.unsure for digit in digits],
    )


def _cut_image_digit(
    ink: np.ndarray, box: Box, depth: int = 0
) -> list[tuple[Box, np.ndarray, bool]]:
    """Ink of one mark -> one or more digits (box, ink, too wide and left whole): too wide
    for its height, cut where ``cut_column`` finds the join."""
    x0, y0, x1, y1 = (int(value) for value in box)
    width, height = x1 - x0, y1 - y0
    too_wide = width > UNSURE_WIDTH * height
    if width <= CUT_WIDTH * height or depth >= MAX_CUT_DEPTH:
        return [(box, ink, too_wide)]
    first, last = math.ceil(x0 + CUT_MARGIN * height), math.floor(x1 - CUT_MARGIN * height)
    cut = cut_column(ink > CUT_INK, range(first, last + 1), (x0 + x1) / 2)
    if cut is None:
        return [(box, ink, True)]
    parts = []
    for lo, hi in ((x0, cut + 1), (cut + 1, x1)):
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

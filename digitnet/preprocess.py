"""Turning any drawing into the 28x28 input the model expects, the way MNIST was made.

MNIST digits were cropped to their ink, scaled to fit a 20x20 box keeping the
aspect ratio (with anti-aliasing), and placed in a 28x28 frame so that their
centre of mass sits at the centre. A model trained on MNIST only works on a
drawing that went through the same steps: shrinking a whole 400x400 canvas to
28x28 gives it a digit of the wrong size in the wrong place.

All functions here but ``load_image_file`` (which reads a file) are pure: image in,
arrays out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from digitnet.data import IMAGE_SIZE
from digitnet.errors import ImageError

BOX_SIZE = 20  # MNIST's digits fit a 20x20 box inside the 28x28 frame
# Where MNIST puts the centre of mass, in (row, column) pixel indices: measured on
# the 8,000 digits of mnist-10k/train.csv as 13.996 and 14.006 (std 0.29, the
# spread of whole-pixel shifts), i.e. MNIST shifted by whole pixels to index 14.
CENTRE_OF_MASS = 14.0

MIN_CONTRAST = 0.12  # ink must differ from the background by 12% of full scale
NOISE_FLOOR = 0.08  # after normalising, fainter ink is background (JPEG noise, paper)
MIN_INK_PIXELS = 4  # fewer clearly inked pixels than this is a blank canvas
MAX_WORKING_SIDE = 1024  # larger drawings are shrunk first: the 20x20 box needs no more

# Image files: refuse decompression bombs before decoding a single pixel.
MAX_IMAGE_PIXELS = 40_000_000
MAX_FILE_BYTES = 50 * 1024 * 1024
# The formats an image file may be: Pillow would otherwise also open EPS (which runs
# Ghostscript where it is installed) and dozens of formats nobody draws a digit in.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")


@dataclass(frozen=True)
class Preprocessed:
    """The model's input and each step that led to it (for the app to show).

    ``image`` is (28, 28) float32 in [0, 1], 1 = ink, zeros when ``is_blank``.
    """

    image: np.ndarray
    is_blank: bool
    ink: np.ndarray  # the whole drawing as an ink map, (H, W) float32 in [0, 1]
    cropped: np.ndarray  # the ink's bounding box; (0, 0) when blank
    boxed: np.ndarray  # scaled to fit BOX_SIZE x BOX_SIZE; (0, 0) when blank


def to_float_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image or array -> float32 (H, W, C) in [0, 1], C in {1, 3, 4}, alpha last.

    Images larger than MAX_WORKING_SIDE are shrunk first (PIL) or strided (arrays), so a
    huge input costs no more memory than a big canvas.
    """
    if isinstance(image, Image.Image):
        factor = math.ceil(max(image.size) / MAX_WORKING_SIDE)
        if image.mode.startswith(("I", "F")):
            # 16/32-bit and float images keep their range; the array code below scales them.
            array = np.asarray(image)
        else:
            if image.mode in ("1", "L"):
                image = image.convert("L")
            elif image.mode in ("LA", "La", "PA", "RGBA", "RGBa", "P"):
                image = image.convert("RGBA")
            elif image.mode != "RGB":
                image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV
            array = np.asarray(image.reduce(factor) if factor > 1 else image)
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4) or 0 in array.shape:
        raise ImageError(
            f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}"
        )
    step = math.ceil(max(array.shape[:2]) / MAX_WORKING_SIDE)
    if step > 1:
        array = array[::step, ::step]  # a huge array: every step-th pixel is plenty
    if array.shape[2] == 2:  # grey + alpha
        array = np.concatenate([array[:, :, :1]] * 3 + [array[:, :, 1:]], axis=2)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        scale = 65535.0 if array.max(initial=0) > 255 else 255.0
        return (array.astype(np.float32) / scale).clip(0.0, 1.0)
    array = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if array.max(initial=0.0) > 1.0:  # a float image in 0-255
        array = array / 255.0
    return array.clip(0.0, 1.0)


def _grey(colour: np.ndarray) -> np.ndarray:
    """(H, W, 1 or 3) -> (H, W) luminance."""
    if colour.shape[2] == 3:
        return colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return colour[:, :, 0]


def image_to_ink(image: Image.Image | np.ndarray) -> tuple[np.ndarray, bool]:
    """Find the ink: (H, W) float32 in [0, 1] with 1 = full ink, and whether it is blank.

    Works for ink in the alpha channel over a transparent background, dark ink on
    a light background and light ink on a dark one (any colours, any grey), so
    it does not depend on the page's theme.
    """
    pixels = to_float_array(image)
    grey = _grey(pixels[:, :, :3])  # one channel for grey images, three for colour
    ink = None
    if pixels.shape[2] == 4 and pixels[:, :, 3].min() < 0.99:
        alpha = pixels[:, :, 3]
        opaque = grey[alpha > 0.5]
        if opaque.size == 0 or np.percentile(opaque, 99) - np.percentile(opaque, 1) < 0.25:
            # Transparent background, one ink colour: the drawing is the alpha channel.
            ink = alpha.copy()
        else:
            # A picture of several colours with transparent parts: flatten it onto white.
            grey = grey * alpha + (1.0 - alpha)
    if ink is None:
        background = _border_median(grey)
        # Ink is whatever differs from the background, in the direction away from it.
        ink = (background - grey) if background >= 0.5 else (grey - background)
        ink = np.maximum(ink, 0.0)
    contrast = float(ink.max(initial=0.0))
    if contrast < MIN_CONTRAST:
        return np.zeros_like(ink, dtype=np.float32), True
    ink = ink / contrast  # faint pencil counts as much as full black
    ink[ink < NOISE_FLOOR] = 0.0
    blank = int(np.count_nonzero(ink > 0.5)) < MIN_INK_PIXELS
    return ink.astype(np.float32), blank


def _border_median(grey: np.ndarray) -> float:
    """The background level: the median of a thin frame around the image."""
    height, width = grey.shape
    band = max(1, min(height, width) // 50)
    border = np.concatenate(
        [grey[:band].ravel(), grey[-band:].ravel(), grey[:, :band].ravel(), grey[:, -band:].ravel()]
    )
    return float(np.median(border))


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding every non-zero pixel."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if len(rows) == 0:
        return ink[:0, :0]
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fit_in_box(cropped: np.ndarray, box: int = BOX_SIZE) -> np.ndarray:
    """Scale so the longer side is ``box`` pixels, keeping the aspect ratio, anti-aliased.

    The result is rescaled so its darkest ink is 1, as in MNIST, where thin
    strokes still reach full intensity.
    """
    height, width = cropped.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL wants (W, H)
    # Pillow's Lanczos widens its kernel when shrinking, so this anti-aliases.
    resized = np.asarray(
        Image.fromarray(cropped.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    )
    resized = resized.clip(0.0, None)
    peak = float(resized.max(initial=0.0))
    return (resized / peak if peak > 0 else resized).clip(0.0, 1.0).astype(np.float32)


def snap(value: float) -> float:
    """``value`` to the nearest millionth, computed as pipeline.js computes it."""
    return math.floor(value * 1e6 + 0.5) / 1e6


def centre_by_mass(boxed: np.ndarray) -> np.ndarray:
    """Place ``boxed`` in a 28x28 frame with its centre of mass at index 14.

    Shifts are whole pixels, as MNIST's were, and never push ink out of the frame.
    """
    height, width = boxed.shape
    total = float(boxed.sum(dtype=np.float64))  # float32 would be ~1e-6 off: see below
    rows, cols = np.indices(boxed.shape)
    mass_row = float((rows * boxed).sum()) / total if total > 0 else (height - 1) / 2
    mass_col = float((cols * boxed).sum()) / total if total > 0 else (width - 1) / 2
    # A centre of mass on a half pixel (a symmetric drawing) is a tie that summation order
    # would break: NumPy's pairwise sums and the browser's in-order ones (both float64)
    # differ in the last bits, and round() then shifts one pixel apart. Snapped to a
    # millionth, both see the same half and round it the same way (as pipeline.js does).
    mass_row, mass_col = snap(mass_row), snap(mass_col)
    top = int(np.clip(round(CENTRE_OF_MASS - mass_row), 0, IMAGE_SIZE - height))
    left = int(np.clip(round(CENTRE_OF_MASS - mass_col), 0, IMAGE_SIZE - width))
    frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    frame[top : top + height, left : left + width] = boxed
    return frame


def canvas_to_mnist(image: Image.Image | np.ndarray) -> Preprocessed:
    """Any drawing -> the 28x28 model input, MNIST-style, with every step kept."""
    ink, blank = image_to_ink(image)
    empty = np.zeros((0, 0), dtype=np.float32)
    if blank:
        return Preprocessed(np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32), True, ink, empty, empty)
    cropped = crop_to_ink(ink)
    boxed = fit_in_box(cropped)
    return Preprocessed(centre_by_mass(boxed), False, ink, cropped, boxed)


def load_image_file(path: str | Path) -> Image.Image:
    """Open an image file safely: refuses non-images, truncated files and decompression bombs."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file; check the path")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"{path.name}: the file is empty; expected a PNG, JPEG or other image")
    if size > MAX_FILE_BYTES:
        raise ImageError(
            f"{path.name}: {size / 2**20:.0f} MB is too large; "
            f"use an image under {MAX_FILE_BYTES // 2**20} MB"
        )
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as opened:
            width, height = opened.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageError(
                    f"{path.name}: {width}x{height} pixels is too large to decode "
                    f"safely; use an image under {MAX_IMAGE_PIXELS // 10**6} megapixels"
                )
            opened.draft("L", (MAX_WORKING_SIDE, MAX_WORKING_SIDE))  # JPEG: decode smaller
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(
            f"{path.name}: too many pixels to decode safely (a decompression "
            f"bomb?); use a smaller image"
        ) from None
    except (Image.UnidentifiedImageError, ValueError):
        raise ImageError(
            f"{path.name}: not an image of a kind read here; use a PNG, JPEG, WebP, BMP or GIF file"
        ) from None
    except (OSError, SyntaxError, EOFError) as error:
        raise ImageError(
            f"{path.name}: the image data is broken or truncated ({error}); save the image again"
        ) from None
    if max(image.size) > MAX_WORKING_SIDE:
        image.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), Image.Resampling.BOX)
    return image


def digits_to_inputs(images: np.ndarray) -> np.ndarray:
    """MNIST uint8 images (N, 28, 28), 255 = ink -> float32 in [0, 1], as in training."""
    return images.astype(np.float32) / 255.0

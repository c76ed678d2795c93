"""digitnet.preprocess: any drawing -> the MNIST-style 28x28 input, and safe image loading."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import assert_one_line
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from digitnet.drawings import DrawingStyle, render_drawing
from digitnet.errors import ImageError
from digitnet.preprocess import (
    BOX_SIZE,
    MAX_WORKING_SIDE,
    canvas_to_mnist,
    centre_by_mass,
    crop_to_ink,
    digits_to_inputs,
    fit_in_box,
    image_to_ink,
    load_image_file,
)

MODES = ("L", "RGB", "RGBA", "LA", "P", "1", "I", "float", "float255", "bool", "uint8-rgb")


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(image.shape)
    total = image.sum()
    return float((rows * image).sum() / total), float((cols * image).sum() / total)


def as_mode(grey: np.ndarray, mode: str):
    """A grey uint8 picture (255 = white paper) in the given PIL mode or array kind."""
    if mode == "float":
        return grey.astype(np.float32) / 255.0
    if mode == "float255":
        return grey.astype(np.float64)
    if mode == "bool":
        return grey > 127
    if mode == "uint8-rgb":
        return np.stack([grey] * 3, axis=-1)
    image = Image.fromarray(grey, mode="L")
    if mode == "I":
        return image.convert("I")
    return image.convert(mode)


def check_output(result) -> None:
    image = result.image
    assert image.shape == (28, 28)
    assert image.dtype == np.float32
    assert np.isfinite(image).all()
    assert image.min() >= 0.0 and image.max() <= 1.0
    if result.is_blank:
        assert not image.any()
    else:
        assert image.max() == pytest.approx(1.0)
        assert max(result.boxed.shape) == BOX_SIZE


# ---------------------------------------------------------------------------
# Property tests


@given(
    height=st.integers(1, 700),
    width=st.integers(1, 700),
    mode=st.sampled_from(MODES),
    seed=st.integers(0, 2**32 - 1),
    content=st.sampled_from(["noise", "rectangle", "uniform"]),
)
def test_any_size_and_mode_gives_28x28_in_range(height, width, mode, seed, content):
    rng = np.random.default_rng(seed)
    if content == "noise":
        grey = rng.integers(0, 256, size=(height, width), dtype=np.uint8)
    else:
        grey = np.full((height, width), int(rng.integers(0, 256)), dtype=np.uint8)
        if content == "rectangle":
            top, left = rng.integers(0, height), rng.integers(0, width)
            grey[top : top + 1 + height // 3, left : left + 1 + width // 4] = rng.integers(0, 256)

    check_output(canvas_to_mnist(as_mode(grey, mode)))


@given(
    height=st.integers(1, 400),
    width=st.integers(1, 400),
    level=st.floats(0.0, 1.0),
    amplitude=st.floats(0.0, 0.08),
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["L", "RGB", "float"]),
)
def test_uniform_and_low_contrast_noise_are_blank(height, width, level, amplitude, seed, mode):
    rng = np.random.default_rng(seed)
    values = level + rng.uniform(-amplitude, amplitude, size=(height, width))
    grey = np.round(255 * values.clip(0, 1)).astype(np.uint8)

    result = canvas_to_mnist(as_mode(grey, mode))

    assert result.is_blank
    assert result.image.shape == (28, 28) and not result.image.any()


@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    colour=st.integers(0, 255),
    alpha=st.integers(0, 250),
)
def test_transparent_canvas_of_any_colour_is_blank(height, width, colour, alpha):
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = alpha // 30  # at most 8/255 of opacity: invisible
    result = canvas_to_mnist(Image.fromarray(rgba, mode="RGBA"))
    assert result.is_blank and not result.image.any()


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (280, 280), 255),
        Image.new("L", (280, 280), 0),
        Image.new("RGB", (100, 300), (128, 128, 128)),
        Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
        Image.new("RGBA", (280, 280), (255, 255, 255, 0)),
        Image.new("LA", (50, 50), (0, 0)),
        Image.new("1", (64, 64), 1),
        np.zeros((28, 28), dtype=np.uint8),
        np.ones((10, 10), dtype=bool),
        np.full((5, 5), np.nan),
    ],
    ids=lambda image: getattr(image, "mode", None) or str(getattr(image, "dtype", "")),
)
def test_blank_images_are_reported_blank_with_zeros(image):
    result = canvas_to_mnist(image)
    assert result.is_blank
    assert result.image.shape == (28, 28) and not result.image.any()
    assert result.cropped.shape == (0, 0) and result.boxed.shape == (0, 0)


def test_a_few_specks_are_blank_but_a_short_stroke_is_not():
    canvas = np.full((300, 300), 255, dtype=np.uint8)
    canvas[10, 10] = canvas[200, 50] = canvas[150, 290] = 0  # three specks of dust
    assert canvas_to_mnist(canvas).is_blank

    stroke = np.full((300, 300), 255, dtype=np.uint8)
    stroke[100:103, 100:140] = 0  # a real (if short) stroke
    result = canvas_to_mnist(stroke)
    assert not result.is_blank
    assert result.boxed.shape == (2, 20)


# ---------------------------------------------------------------------------
# Worked examples of each step


def test_image_to_ink_black_on_white_white_on_black_and_alpha_agree():
    mask = np.zeros((60, 40), dtype=bool)
    mask[10:50, 15:22] = True
    black_on_white = np.where(mask, 0, 255).astype(np.uint8)
    white_on_black = np.where(mask, 255, 0).astype(np.uint8)
    rgba = np.zeros((60, 40, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(mask, 255, 0)

    for image in (black_on_white, white_on_black, Image.fromarray(rgba, mode="RGBA")):
        ink, blank = image_to_ink(image)
        assert not blank
        assert ink.dtype == np.float32 and ink.shape == (60, 40)
        np.testing.assert_array_equal(ink, mask.astype(np.float32))


def test_image_to_ink_scales_faint_pencil_to_full_ink():
    grey = np.full((50, 50), 200, dtype=np.uint8)  # light grey paper
    grey[20:30, 20:30] = 150  # faint pencil, 50/255 darker
    ink, blank = image_to_ink(grey)
    assert not blank
    assert ink.max() == pytest.approx(1.0)
    assert ink[25, 25] == pytest.approx(1.0) and ink[0, 0] == 0.0


def test_crop_to_ink():
    ink = np.zeros((30, 30), dtype=np.float32)
    ink[5:9, 12:20] = 0.5
    assert crop_to_ink(ink).shape == (4, 8)
    assert crop_to_ink(np.zeros((5, 5), np.float32)).shape == (0, 0)


@pytest.mark.parametrize(
    ("shape", "expected"), [((50, 10), (20, 4)), ((10, 50), (4, 20)), ((7, 7), (20, 20))]
)
def test_fit_in_box_makes_the_longer_side_20(shape, expected):
    cropped = np.zeros(shape, dtype=np.float32)
    cropped[:, :] = 0.6
    boxed = fit_in_box(cropped)
    assert boxed.shape == expected
    assert boxed.dtype == np.float32
    assert boxed.max() == pytest.approx(1.0) and boxed.min() >= 0.0


@given(height=st.integers(1, 600), width=st.integers(1, 600))
def test_fit_in_box_longer_side_is_always_20(height, width):
    boxed = fit_in_box(np.ones((height, width), dtype=np.float32))
    assert max(boxed.shape) == BOX_SIZE
    assert min(boxed.shape) >= 1
    assert boxed.min() >= 0.0 and boxed.max() <= 1.0


def test_centre_by_mass_places_mass_at_14():
    boxed = np.zeros((20, 12), dtype=np.float32)
    boxed[2:18, 1:4] = 1.0
    boxed[15:18, 1:12] = 1.0  # an L: mass low and to the left
    frame = centre_by_mass(boxed)
    assert frame.shape == (28, 28)
    assert frame.sum() == pytest.approx(boxed.sum())
    row, col = centre_of_mass(frame)
    assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5

    dot = centre_by_mass(np.ones((1, 1), dtype=np.float32))
    assert dot[14, 14] == 1.0 and dot.sum() == 1.0


def test_centre_by_mass_never_pushes_ink_out_of_the_frame():
    boxed = np.zeros((20, 20), dtype=np.float32)
    boxed[0, 0] = 1.0  # all the mass in a corner: a full shift would lose the box edges
    boxed[19, 19] = 0.01
    frame = centre_by_mass(boxed)
    assert frame.sum() == pytest.approx(boxed.sum())


def test_centred_digit_has_centre_of_mass_within_half_a_pixel(mnist):
    for digit in mnist.images[:200]:
        row, col = centre_of_mass(canvas_to_mnist(digit).image)
        assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5


def test_canvas_to_mnist_keeps_its_steps():
    canvas = np.full((400, 300), 255, dtype=np.uint8)
    canvas[100:300, 140:180] = 0
    result = canvas_to_mnist(Image.fromarray(canvas))
    assert not result.is_blank
    assert result.ink.shape == (400, 300)
    assert result.cropped.shape == (200, 40)
    assert result.boxed.shape == (20, 4)


# ---------------------------------------------------------------------------
# Real digits and canvas-like drawings


def test_real_mnist_digits_come_back_nearly_unchanged(mnist):
    images = mnist.images[:300]
    expected = digits_to_inputs(images)
    diffs = [
        np.abs(canvas_to_mnist(image).image - want).mean() for image, want in zip(images, expected)
    ]
    assert np.mean(diffs) < 0.01
    assert max(diffs) < 0.1


def _drawn(digit, **changes) -> np.ndarray:
    style = dict(canvas=(500, 500), digit_height=200, brush=1, background="white")
    style.update(changes)
    style.setdefault("position", (0.5, 0.5))
    return canvas_to_mnist(render_drawing(digit, DrawingStyle(**style))).image


def test_same_digit_at_any_position_gives_the_same_28x28(mnist):
    for digit in mnist.images[:5]:
        reference = _drawn(digit)
        for position in ((0.0, 0.0), (1.0, 1.0), (0.2, 0.8), (0.9, 0.3)):
            np.testing.assert_allclose(_drawn(digit, position=position), reference, atol=1e-6)


def test_same_digit_at_any_size_and_place_gives_nearly_the_same_28x28(mnist):
    for digit in mnist.images[:8]:
        reference = _drawn(digit)
        for height, position, canvas in [
            (90, (0.0, 1.0), (500, 500)),
            (150, (0.7, 0.2), (500, 500)),
            (350, (0.3, 0.6), (500, 500)),
            (250, (0.5, 0.5), (600, 300)),
        ]:
            moved = _drawn(digit, digit_height=height, position=position, canvas=canvas)
            assert np.abs(moved - reference).mean() < 0.02
            assert np.corrcoef(moved.ravel(), reference.ravel())[0, 1] > 0.99


def test_white_dark_and_transparent_backgrounds_agree(mnist):
    for digit in mnist.images[:8]:
        white = _drawn(digit, brush=5, background="white")
        for background in ("dark", "transparent"):
            other = _drawn(digit, brush=5, background=background)
            assert np.abs(other - white).mean() < 0.01


def test_drawings_look_like_the_mnist_digits_they_came_from(mnist):
    correlations = [
        np.corrcoef(_drawn(digit, brush=3).ravel(), digit.ravel().astype(np.float32))[0, 1]
        for digit in mnist.images[:50]
    ]
    assert np.mean(correlations) > 0.9


# ---------------------------------------------------------------------------
# Image files


def _save_png(path, image: Image.Image):
    image.save(path, format="PNG")
    return path


def _patch_png_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite a PNG's IHDR width and height (and its CRC): a header that lies."""
    assert data[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + data[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return data[:16] + ihdr + crc + data[33:]


def _load_error(path, *needles: str) -> str:
    with pytest.raises(ImageError) as caught:
        load_image_file(path)
    message = str(caught.value)
    assert_one_line(message, path.name, *needles)
    return message


def test_load_image_file_reads_a_png(tmp_path):
    canvas = np.full((120, 80), 255, dtype=np.uint8)
    canvas[30:90, 35:45] = 0
    path = _save_png(tmp_path / "one.png", Image.fromarray(canvas))
    image = load_image_file(path)
    assert image.size == (80, 120)
    np.testing.assert_array_equal(np.asarray(image), canvas)


def test_missing_image_file(tmp_path):
    _load_error(tmp_path / "nothing.png", "no such")


def test_empty_image_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _load_error(path, "empty")


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 20)
    _load_error(path, "not an image")


def test_only_png_jpeg_webp_bmp_and_gif_are_opened(tmp_path, monkeypatch):
    """An EPS file (which Pillow would hand to Ghostscript) is one line, never opened."""
    from PIL import EpsImagePlugin

    opened = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(1))
    path = tmp_path / "digit.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n" + b"0 0 moveto\n" * 40)
    _load_error(path, "not an image", "PNG, JPEG, WebP, BMP or GIF")
    assert opened == []
    for kind in ("PNG", "JPEG", "WEBP", "BMP", "GIF"):
        image = tmp_path / f"seven.{kind.lower()}"
        Image.new("L", (40, 40), 255).save(image, format=kind)
        assert load_image_file(image).size == (40, 40)


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(200, 200), dtype=np.uint8)  # does not compress away
    path = _save_png(tmp_path / "cut.png", Image.fromarray(noise))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _load_error(path, "truncated")


@pytest.mark.parametrize("size", [(60_000, 60_000), (8_000, 6_000)])
def test_decompression_bomb_is_refused_before_decoding(tmp_path, size):
    data = _save_png(tmp_path / "small.png", Image.new("L", (1, 1), 255)).read_bytes()
    path = tmp_path / "bomb.png"
    path.write_bytes(_patch_png_size(data, *size))
    assert path.stat().st_size < 200
    _load_error(path, "too")


def test_real_png_over_the_pixel_limit_is_refused(tmp_path):
    path = _save_png(tmp_path / "bilevel.png", Image.new("1", (7_000, 6_000), 1))
    assert path.stat().st_size < 100_000
    _load_error(path, "too")


def test_huge_but_allowed_image_is_shrunk_and_classified(tmp_path, mnist):
    digit = mnist.images[0]
    style = DrawingStyle((3000, 2000), 1200, 1, "white", (0.3, 0.6))
    path = _save_png(tmp_path / "poster.png", render_drawing(digit, style))

    image = load_image_file(path)
    assert max(image.size) == MAX_WORKING_SIDE
    result = canvas_to_mnist(image)

    check_output(result)
    assert not result.is_blank
    small = canvas_to_mnist(
        render_drawing(digit, DrawingStyle((300, 200), 120, 1, "white", (0.3, 0.6)))
    )
    assert np.abs(result.image - small.image).mean() < 0.03


def test_huge_array_is_shrunk_before_the_box_step():
    canvas = np.full((1500, 2500), 255, dtype=np.uint8)
    canvas[300:1200, 1000:1200] = 0
    result = canvas_to_mnist(canvas)
    # Strided by a whole step (3 here), so at most MAX_WORKING_SIDE and not much less.
    assert MAX_WORKING_SIDE // 2 < max(result.ink.shape) <= MAX_WORKING_SIDE
    assert not result.is_blank and result.boxed.shape[0] == BOX_SIZE


def test_sixteen_bit_grey_ink_is_found():
    """A 16-bit PNG (white 65535, pencil-grey ink 12000) is not mistaken for blank."""
    array = np.full((200, 200), 65535, dtype=np.uint16)
    array[40:160, 90:110] = 12000
    result = canvas_to_mnist(Image.fromarray(array))
    assert not result.is_blank
    assert result.boxed.shape[0] == BOX_SIZE


def test_float_image_in_zero_to_one_is_found():
    array = np.ones((100, 100), dtype=np.float32)
    array[20:80, 45:55] = 0.0
    result = canvas_to_mnist(Image.fromarray(array))
    assert not result.is_blank


def test_opaque_card_with_transparent_margin_reads_the_dark_ink():
    """A white card with a black digit and a transparent margin: ink is the black, not the card."""
    rgba = np.zeros((120, 120, 4), dtype=np.uint8)
    rgba[10:110, 10:110] = (255, 255, 255, 255)  # the opaque white card
    rgba[30:90, 55:65] = (0, 0, 0, 255)  # a black "1" on it
    result = canvas_to_mnist(rgba)
    assert not result.is_blank
    height, width = result.cropped.shape
    assert height > 2 * width  # the tall stroke, not the square card


def test_huge_array_costs_little_memory():
    import tracemalloc

    canvas = np.full((6000, 6000), 255, dtype=np.uint8)
    canvas[1000:5000, 2800:3200] = 0
    tracemalloc.start()
    result = canvas_to_mnist(canvas)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert not result.is_blank
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MiB"

"""Drawings that are not digits: letters, symbols, shapes, scribbles and noise.

A model trained on digits alone answers every drawing with a digit. Training also on these
(digitnet.train's ``nondigit_fraction``: outlier exposure, taught to give no answer) and
measuring the rejection on a held-out set of them is how "that isn't a digit" becomes a
number. Each drawing is made as a person would on the pad or a canvas: hard-edged strokes of
any width, any size and place, then the app's own preprocessing.

Two families of sources keep the measurement honest: ``split="train"`` draws letters and
symbols from some fonts and one set of shapes, ``split="heldout"`` from other fonts and
symbols, so the held-out rejection is measured on drawings the model never saw the like of.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitnet.drawings import STYLES, ink_on_canvas, widen_strokes
from digitnet.preprocess import IMAGE_SIZE, canvas_to_mnist
from digitnet.strokes import PAD_SIZE, rasterize_strokes

KINDS = ("letter", "symbol", "shape", "scribble", "noise")
KIND_WEIGHTS = (0.34, 0.16, 0.2, 0.2, 0.1)  # letters are what people try first
SPLITS = ("train", "heldout")

# Letters a digit can pass for are left out: O o D Q (0), I l i j | (1), Z z (2), S s (5),
# b G (6), B (8), g q (9). The model should read those as the digit, not refuse them.
LETTERS = "ACEFHJKLMNPRTUVWXYacdefhkmnprtuvwxy"
HELDOUT_LETTERS = "ACEFHKMNPRTUWXYaehkmnrtwxy"  # the held-out set draws from other fonts
SYMBOLS = {
    "train": "+×*#@&%$?!=~<>÷∞πΣΩλ♥★☺→←↑✓€£¥§¶√∫≈≠≤≥⊕⊗☆♪♫☂☀✿ßæø‰∑∏",
    "heldout": "+#@&%?!=~÷∞ΔΦΨαβγδμ♦♣♠☼↓↔✗©®",
}
FONTS = {
    "train": (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSans-Oblique.ttf",
        "DejaVuSerif.ttf",
        "DejaVuSerif-Bold.ttf",
        "DejaVuSerif-Italic.ttf",
    ),
    "heldout": (
        "DejaVuSansMono.ttf",
        "DejaVuSansMono-Bold.ttf",
        "STIXGeneral.ttf",
        "STIXGeneralItalic.ttf",
        "STIXGeneralBol.ttf",
    ),
}
SHAPES = {
    "train": (
        "star",
        "polygon",
        "cross",
        "heart",
        "spiral",
        "zigzag",
        "arrow",
        "smiley",
        "cloud",
        "flower",
        "hatch",
    ),
    "heldout": (
        "star",
        "polygon",
        "cross",
        "wave",
        "house",
        "grid",
        "spiral",
        "smiley",
        "lightning",
    ),
}


@dataclass(frozen=True)
class NonDigits:
    """Model inputs (N, 28, 28) float32 in [0, 1] and the kind of each."""

    inputs: np.ndarray
    kinds: np.ndarray  # (N,) str


@lru_cache(maxsize=8)
def make_nondigits(count: int, *, seed: int = 0, split: str = "train") -> NonDigits:
    """``count`` non-digit drawings through the app's preprocessing; same seed, same set.

    Kept for the process (callers must not change the arrays): each run, calibration and
    test asks for the same few sets, and drawing them takes ~3 ms each.
    """
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    inputs = np.zeros((count, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    kinds = []
    made = 0
    while made < count:
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS))]
        preprocessed = canvas_to_mnist(draw_nondigit(kind, rng, split))
        if preprocessed.is_blank:
            continue
        inputs[made] = preprocessed.image
        kinds.append(kind)
        made += 1
    return NonDigits(inputs, np.array(kinds))


def nondigit_drawings(count: int, *, seed: int = 0, split: str = "heldout") -> list[Image.Image]:
    """``count`` non-digits as canvas images (white, dark or transparent), as people upload
    or draw them; the held-out split by default, for measuring."""
    rng = np.random.default_rng([seed, SPLITS.index(split), 1])
    images = []
    while len(images) < count:
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS))]
        mask = np.where(draw_nondigit(kind, rng, split) > 0.5, 255, 0).astype(np.uint8)
        if np.count_nonzero(mask) >= 16:
            images.append(ink_on_canvas(mask, STYLES[int(rng.integers(len(STYLES)))]))
    return images


def draw_nondigit(kind: str, rng: np.random.Generator, split: str = "train") -> np.ndarray:
    """One non-digit as an ink map (H, W) float32 in [0, 1], 1 = ink."""
    if kind == "letter":
        letters = LETTERS if split == "train" else HELDOUT_LETTERS
        return _glyph(letters[int(rng.integers(len(letters)))], rng, split)
    if kind == "symbol":
        symbols = SYMBOLS[split]
        return _glyph(symbols[int(rng.integers(len(symbols)))], rng, split)
    if kind == "shape":
        shapes = SHAPES[split]
        return _pen(_shape(shapes[int(rng.integers(len(shapes)))], rng), rng)
    if kind == "scribble":
        return _pen(_scribble(rng), rng)
    return _noise(rng)


# ---------------------------------------------------------------------------
# Glyphs from fonts, drawn as hard ink


@cache
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return ImageFont.truetype(str(folder / name), size)


def _draws(font: ImageFont.FreeTypeFont, char: str) -> bool:
    return font.getmask(char).getbbox() is not None


def _glyph(char: str, rng: np.random.Generator, split: str) -> np.ndarray:
    fonts = FONTS[split]
    first = int(rng.integers(len(fonts)))
    size = int(rng.integers(3, 8)) * 24
    # Not every font has every symbol: the next one that draws it (DejaVu Sans has them all).
    candidates = [fonts[(first + i) % len(fonts)] for i in range(len(fonts))] + ["DejaVuSans.ttf"]
    font = next(f for f in map(lambda n: _font(n, size), candidates) if _draws(f, char))
    side = 280
    image = Image.new("L", (side, side), 0)
    ImageDraw.Draw(image).text((side / 2, side / 2), char, fill=255, font=font, anchor="mm")
    image = image.rotate(float(rng.uniform(-20, 20)), resample=Image.Resampling.BILINEAR)
    ink = (np.asarray(image) > 110).astype(np.uint8) * 255
    brush = 2 * int(rng.integers(0, 6)) + 1
    if brush > 1:
        ink = widen_strokes(ink, brush)
    return ink.astype(np.float32) / 255.0


# ---------------------------------------------------------------------------
# Shapes and scribbles as pen strokes on the pad


def _pen(strokes: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Strokes in a unit box placed anywhere on the pad, drawn with a random brush."""
    size = float(rng.uniform(0.3, 0.85) * PAD_SIZE)
    centre = rng.uniform(size / 2, PAD_SIZE - size / 2, 2)
    angle = float(rng.uniform(-0.4, 0.4))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    placed = [(stroke @ rotation.T) * size / 2 + centre for stroke in strokes]
    radius = float(rng.uniform(3.0, 14.0))
    return rasterize_strokes([p.astype(np.float64) for p in placed], radius=radius)


def _circle(cx: float, cy: float, r: float, start: float = 0, stop: float = 360, n: int = 24):
    angles = np.radians(np.linspace(start, stop, n))
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)


def _shape(name: str, rng: np.random.Generator) -> list[np.ndarray]:
    """A shape in a unit box (x, y in -1..1, y down) as a list of strokes."""
    if name == "star":
        points = int(rng.integers(5, 8))
        angles = np.radians(np.arange(2 * points + 1) * 180 / points - 90)
        radii = np.where(np.arange(2 * points + 1) % 2 == 0, 1.0, rng.uniform(0.35, 0.5))
        return [np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)]
    if name == "polygon":
        sides = int(rng.integers(3, 7))
        start = rng.uniform(0, 360)
        return [_circle(0, 0, 1, start, start + 360, sides + 1)]
    if name == "cross":
        if rng.random() < 0.5:
            return [np.array([[-1, -1], [1, 1]]), np.array([[1, -1], [-1, 1]])]
        return [np.array([[0, -1], [0, 1]]), np.array([[-1, 0], [1, 0]])]
    if name == "heart":
        t = np.linspace(0, 2 * math.pi, 40)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return [np.stack([x / 17, y / 17], axis=1)]
    if name == "spiral":
        t = np.linspace(0, rng.uniform(3, 6) * math.pi, 80)
        r = t / t[-1]
        return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)]
    if name == "zigzag":
        n = int(rng.integers(4, 9))
        x = np.linspace(-1, 1, n)
        return [np.stack([x, np.where(np.arange(n) % 2 == 0, -0.5, 0.5)], axis=1)]
    if name == "wave":
        x = np.linspace(-1, 1, 40)
        return [np.stack([x, 0.4 * np.sin(x * rng.uniform(6, 12))], axis=1)]
    if name == "arrow":
        return [np.array([[-1, 0], [1, 0]]), np.array([[0.4, -0.5], [1, 0], [0.4, 0.5]])]
    if name == "cloud":  # a loop of bumps
        t = np.linspace(0, 2 * math.pi, 80)
        r = 0.8 + 0.2 * np.abs(np.sin(t * int(rng.integers(4, 8)) / 2))
        return [np.stack([r * np.cos(t), 0.7 * r * np.sin(t)], axis=1)]
    if name == "flower":  # petals round a centre
        t = np.linspace(0, 2 * math.pi, 90)
        r = np.abs(np.cos(t * int(rng.integers(2, 5))))
        return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1), _circle(0, 0, 0.15, n=10)]
    if name == "hatch":  # crossing out: strokes back and forth
        n = int(rng.integers(5, 12))
        y = np.linspace(-1, 1, n)
        x = np.where(np.arange(n) % 2 == 0, -1.0, 1.0)
        return [np.stack([x, y + rng.normal(0, 0.05, n)], axis=1)]
    if name == "lightning":
        return [np.array([[0.3, -1], [-0.4, 0.1], [0.3, 0.0], [-0.3, 1]])]
    if name == "house":
        return [np.array([[-0.8, 1], [-0.8, -0.1], [0, -1], [0.8, -0.1], [0.8, 1], [-0.8, 1]])]
    if name == "grid":
        return [
            np.array([[-0.4, -1], [-0.4, 1]]),
            np.array([[0.4, -1], [0.4, 1]]),
            np.array([[-1, -0.4], [1, -0.4]]),
            np.array([[-1, 0.4], [1, 0.4]]),
        ]
    # smiley: a face with eyes and a mouth (a plain circle would be a fair 0)
    return [
        _circle(0, 0, 1),
        _circle(-0.35, -0.3, 0.08, n=8),
        _circle(0.35, -0.3, 0.08, n=8),
        _circle(0, 0.1, 0.5, 20, 160, 12),
    ]


def _scribble(rng: np.random.Generator) -> list[np.ndarray]:
    """A tangle: 2-5 strokes of a smooth random walk, or one long one that turns a lot.

    A short single curve is left out: it is often a fair 1, 2, 5 or 7.
    """
    strokes = []
    count = int(rng.integers(1, 6))
    for _ in range(count):
        steps = int(rng.integers(60, 140)) if count == 1 else int(rng.integers(15, 70))
        turn = np.cumsum(rng.normal(0, rng.uniform(0.4, 1.0), steps))
        heading = rng.uniform(0, 2 * math.pi) + turn
        path = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], axis=1), axis=0)
        path = path + rng.normal(0, 4, 2)
        strokes.append(path)
    points = np.concatenate(strokes)
    centre = (points.max(axis=0) + points.min(axis=0)) / 2
    scale = max(float(np.abs(points - centre).max()), 1e-6)
    return [(stroke - centre) / scale for stroke in strokes]


def _noise(rng: np.random.Generator) -> np.ndarray:
    """Speckle, dots, blotches or a filled block: not strokes at all."""
    side = int(rng.integers(80, 281))
    style = int(rng.integers(4))
    if style == 0:  # speckle
        return (rng.random((side, side)) < rng.uniform(0.02, 0.3)).astype(np.float32)
    if style == 1:  # scattered dots
        ink = np.zeros((side, side), np.uint8)
        for _ in range(int(rng.integers(5, 40))):
            y, x = rng.integers(0, side, 2)
            ink[y, x] = 255
        return widen_strokes(ink, 2 * int(rng.integers(2, 8)) + 1).astype(np.float32) / 255
    if style == 2:  # blotches: coarse noise, smoothly enlarged, thresholded
        coarse = Image.fromarray((rng.random((6, 6)) * 255).astype(np.uint8))
        smooth = np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC))
        return (smooth > rng.uniform(120, 200)).astype(np.float32)
    ink = np.zeros((side, side), np.float32)  # a filled block
    top, left = rng.integers(0, side // 3, 2)
    ink[top : side - top // 2, left : side - left // 2] = 1.0
    return ink

"""Numbers in the browser (pipeline.js's splitDigits, partToMnist, readNumber) against
digitnet.numbers, in Chromium, on a blank page holding pipeline.js (no app, no server).

On 240 generated numbers of 2-6 digits (touching pairs, digits joined in one stroke, two-stroke
5s, a digit drawn last in the middle, small and large), 60 single digits of every size and 30
pairs drawn in one stroke (cut at a column):
the same digits in the same order, with the same strokes (pieces of them where cut), boxes
and unsure flags, exactly; every digit's 28x28 input identical; and the MLP reads the same
text. Stated tolerance: none on the split (it is float64 arithmetic, mirrored), inputs within
1e-6 (measured: identical).
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from conftest import BROWSER_MARKS

from digitnet import ink_cuts, numbers, strokes
from digitnet.checkpoint import load_checkpoint
from digitnet.errors import DigitnetError
from digitnet.export import web_bytes
from digitnet.number_strokes import random_number
from digitnet.numbers import part_input, read_strokes, split_digits
from digitnet.strokes import PenStyle, digit_strokes, pen_style_between
from digitnet.ui.static_files import STATIC_DIR

NUMBERS = 240
SINGLE_DIGITS = 60
JOINED = 30

pytestmark = BROWSER_MARKS

PAGE_HELPERS = """
globalThis.toBase64 = (array) => {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(text);
};
globalThis.splitInBrowser = (all) => all.map((strokes) => {
  try {
    return digitnetPipeline.splitDigits(strokes).map((part) => ({
      strokes: part.strokes,
      box: part.box,
      strokeIndices: part.strokeIndices,
      unsure: part.unsure,
      image: toBase64(digitnetPipeline.partToMnist(part).image),
    }));
  } catch (error) {
    return String(error.message);
  }
});
"""


@pytest.fixture(scope="module")
def page(browser):
    page = browser.new_page()
    page.set_default_timeout(240_000)
    page.set_content("<!doctype html><html><body></body></html>")
    page.add_script_tag(path=str(STATIC_DIR / "pipeline.js"))
    page.add_script_tag(content=PAGE_HELPERS)
    model, metadata = load_checkpoint("mlp")
    data = base64.b64encode(web_bytes(model, metadata)).decode()
    page.evaluate(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            globalThis.mlp = digitnetPipeline.parseWebModel(bytes.buffer);
        }""",
        data,
    )
    yield page
    page.close()


@pytest.fixture(scope="module")
def mlp():
    return load_checkpoint("mlp")[0]


def generated_drawings() -> list[list]:
    rng = np.random.default_rng(19)
    drawings = []
    for index in range(NUMBERS):
        count = 2 + index % 5
        widths = (50.0, 140.0) if count <= 4 else (20.0, 60.0)
        number = random_number(
            rng, count, widths=widths, touching=0.35, joined=0.2, last_in_middle=0.3
        )
        drawings.append(number.strokes)
    for index in range(SINGLE_DIGITS):
        style = pen_style_between(rng, 0.05, 0.85)
        drawings.append(digit_strokes(index % 10, style))
    for index in range(JOINED):  # two digits far apart, drawn without lifting the pen
        height = float(rng.uniform(50, 110))
        first, second = (
            digit_strokes(digit, PenStyle(height, (x, 140.0), float(rng.uniform(-0.2, 0.2)), 0.6))
            for digit, x in (
                (index % 10, 140 - 0.6 * height),
                ((3 * index) % 10, 140 + 0.6 * height),
            )
        )
        drawings.append(first[:-1] + [first[-1] + second[0]] + second[1:])
    return drawings


def as_arrays(drawing) -> list[np.ndarray]:
    return [np.array(stroke, dtype=np.float64) for stroke in drawing]


def test_the_browsers_number_constants_are_pythons(page):
    constants = page.evaluate("() => digitnetPipeline.NUMBER_CONSTANTS")
    for name, value in constants.items():
        module = strokes if hasattr(strokes, name) and name != "MAX_DIGITS" else numbers
        module = ink_cuts if hasattr(ink_cuts, name) else module
        assert getattr(module, name) == value, name


def test_the_split_and_every_digits_input_are_pythons(page):
    drawings = generated_drawings()
    results = page.evaluate("(all) => splitInBrowser(all)", drawings)
    seen = {"parts": 0, "unsure": 0, "cut": 0, "out_of_order": 0}
    for drawing, browser in zip(drawings, results):
        parts = split_digits(as_arrays(drawing))
        assert len(browser) == len(parts)
        indices = [part.stroke_indices for part in parts]
        seen["out_of_order"] += [i[0] for i in indices] != sorted(i[0] for i in indices)
        for part, theirs in zip(parts, browser):
            assert part.stroke_indices == tuple(theirs["strokeIndices"])
            assert part.box == tuple(theirs["box"])
            assert part.unsure == theirs["unsure"]
            assert len(part.strokes) == len(theirs["strokes"])
            for ours, points in zip(part.strokes, theirs["strokes"]):
                assert np.array_equal(ours, np.array(points, dtype=np.float64).reshape(-1, 2))
            image = np.frombuffer(base64.b64decode(theirs["image"]), "<f4").reshape(28, 28)
            assert np.abs(image - part_input(part).image).max() <= 1e-6
            seen["parts"] += 1
            seen["unsure"] += part.unsure
            whole = [as_arrays(drawing)[i] for i in part.stroke_indices]
            seen["cut"] += len(part.strokes) != len(whole) or not all(
                np.array_equal(a, b) for a, b in zip(part.strokes, whole)
            )
    # The numbers exercised every rule: touching digits split, strokes cut, order by place.
    assert seen["parts"] > 3 * NUMBERS
    assert seen["unsure"] > 40 and seen["cut"] > 10 and seen["out_of_order"] > 20, seen


def test_the_browser_reads_the_same_numbers(page, mlp):
    rng = np.random.default_rng(23)
    drawings = [random_number(rng, touching=0.3).strokes for _ in range(40)]
    browser = page.evaluate(
        """(all) => all.map((strokes) => {
            const reading = digitnetPipeline.readNumber(mlp, strokes);
            return {text: reading.text, confidence: reading.confidence};
        })""",
        drawings,
    )
    for drawing, theirs in zip(drawings, browser):
        reading = read_strokes(mlp, drawing)
        assert theirs["text"] == reading.text
        assert theirs["confidence"] == pytest.approx(reading.confidence, abs=1e-3)


def test_thirteen_digits_are_refused_alike(page):
    thirteen = sum(
        (digit_strokes(k % 10, PenStyle(28, (10 + 21 * k, 140), 0, 0.6)) for k in range(13)),
        [],
    )
    (message,) = page.evaluate("(all) => splitInBrowser(all)", [thirteen])
    with pytest.raises(DigitnetError) as refused:
        split_digits(as_arrays(thirteen))
    assert message == str(refused.value)


def test_a_single_digit_of_any_size_has_pythons_input(page):
    rng = np.random.default_rng(29)
    drawings = [digit_strokes(k % 10, pen_style_between(rng, 0.04, 0.9)) for k in range(30)]
    images = page.evaluate(
        "(all) => all.map((s) => toBase64(digitnetPipeline.strokesToMnist(s).image))", drawings
    )
    for drawing, image in zip(drawings, images):
        theirs = np.frombuffer(base64.b64decode(image), "<f4").reshape(28, 28)
        assert np.array_equal(theirs, numbers.strokes_to_input(as_arrays(drawing)).image)

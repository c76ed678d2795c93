"""The browser's pipeline (digitnet/ui/static/pipeline.js) against Python's, in Chromium.

The same drawings go through the JS pipeline (``page.evaluate`` on a blank page holding
pipeline.js, no server) and through ``canvas_to_mnist`` and PyTorch:

- the example drawings and 200 canvas-like renders of validation digits, as PNG files the
  browser decodes itself (white, dark and transparent canvases of 200-600 px);
- digits drawn as pad strokes (any size, place and slant), rasterised on both sides.

Stated tolerances: every 28x28 input within max |diff| <= 0.02 of Python's (measured: 0, the
steps are mirrored operation by operation); the top label agrees on >= 99.5% of drawings for
the MLP and the CNN; where the inputs are identical (<= 1e-6), probabilities agree within 1e-3.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BROWSER_MARKS

from digitnet import preprocess
from digitnet.calibration import calibrated_probs, calibration_of
from digitnet.checkpoint import load_checkpoint
from digitnet.data import load_training_data
from digitnet.drawings import render_drawings
from digitnet.export import web_bytes
from digitnet.predict import predict_probs
from digitnet.strokes import (
    BRUSH_RADIUS,
    PAD_SIZE,
    digit_strokes,
    random_pen_style,
    rasterize_strokes,
)
from digitnet.train import TrainConfig
from digitnet.ui.static_files import STATIC_DIR

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "assets" / "examples").glob("*.png"))
RENDERS = 200
INPUT_TOLERANCE = 0.02
PROB_TOLERANCE = 1e-3
LABEL_AGREEMENT = 0.995

pytestmark = BROWSER_MARKS

# In the page: decode PNGs as the pad decodes its examples, then run the pipeline and a model.
PAGE_HELPERS = """
globalThis.fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
globalThis.toBase64 = (array) => {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(text);
};
globalThis.throughPipeline = async (pngs) => {
  const P = globalThis.digitnetPipeline;
  const results = [];
  for (const png of pngs) {
    const { rgba, width, height } = await P.loadImagePixels(`data:image/png;base64,${png}`);
    const { grey, alpha } = P.greyFromRGBA(rgba, width, height);
    const { image, blank } = P.canvasToMnist(grey, alpha, width, height);
    let checksum = 0;
    for (let i = 0; i < rgba.length; i++) checksum += rgba[i] * ((i % 97) + 1);
    results.push({ image: Array.from(image), blank, checksum });
  }
  return results;
};
globalThis.loadModels = (files) => {
  globalThis.models = {};
  for (const [name, data] of Object.entries(files)) {
    models[name] = digitnetPipeline.parseWebModel(fromBase64(data).buffer);
  }
};
globalThis.probabilities = (name, inputs) =>
  inputs.map((input) =>
    digitnetPipeline.softmax(
      digitnetPipeline.runModel(models[name], input),
      models[name].calibration.temperature,
    ),
  );
globalThis.rejectBelow = (name) => models[name].calibration.rejectBelow;
"""


@pytest.fixture(scope="module")
def page(browser):
    """A blank page with pipeline.js and both shipped models loaded: no app, no server."""
    page = browser.new_page()
    page.set_default_timeout(120_000)
    page.set_content("<!doctype html><html><body></body></html>")
    page.add_script_tag(path=str(STATIC_DIR / "pipeline.js"))
    page.add_script_tag(content=PAGE_HELPERS)
    files = {}
    for name in ("mlp", "cnn"):
        model, metadata = load_checkpoint(name)
        files[name] = base64.b64encode(web_bytes(model, metadata)).decode()
    page.evaluate("(files) => loadModels(files)", files)
    yield page
    page.close()


@pytest.fixture(scope="module")
def models():
    return {name: load_checkpoint(name)[0] for name in ("mlp", "cnn")}


@pytest.fixture(scope="module")
def drawings():
    """The examples, then RENDERS canvas-like renders of validation digits: (image, label)."""
    data = load_training_data(REPO / "assets" / "mnist-train-8k.csv.gz")
    _, validation = TrainConfig().split(data.labels)
    rows = validation[np.random.default_rng(0).permutation(len(validation))[:RENDERS]]
    images = [preprocess.load_image_file(path) for path in EXAMPLES]
    labels = [int(path.stem[-1]) for path in EXAMPLES]
    return images + render_drawings(data.images[rows], seed=1), labels + list(data.labels[rows])


def png_base64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def pixel_checksum(image) -> float:
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float64).ravel()
    return float((rgba * (np.arange(len(rgba)) % 97 + 1)).sum())


def browser_probabilities(page, name: str, inputs: np.ndarray) -> np.ndarray:
    probs = page.evaluate(
        "([name, inputs]) => probabilities(name, inputs)",
        [name, inputs.reshape(len(inputs), -1).tolist()],
    )
    return np.array(probs)


def test_the_browsers_constants_are_pythons(page):
    constants = page.evaluate("() => digitnetPipeline.CONSTANTS")
    assert constants == {
        "IMAGE_SIZE": 28,
        "BOX_SIZE": preprocess.BOX_SIZE,
        "CENTRE_OF_MASS": preprocess.CENTRE_OF_MASS,
        "MIN_CONTRAST": preprocess.MIN_CONTRAST,
        "NOISE_FLOOR": preprocess.NOISE_FLOOR,
        "MIN_INK_PIXELS": preprocess.MIN_INK_PIXELS,
    }


def test_drawings_give_the_same_input_and_answer_in_the_browser(page, drawings, models):
    images, labels = drawings
    assert len(images) >= RENDERS + len(EXAMPLES)
    browser = []
    for start in range(0, len(images), 25):
        batch = images[start : start + 25]
        browser += page.evaluate("(pngs) => throughPipeline(pngs)", [png_base64(i) for i in batch])
    python = [preprocess.canvas_to_mnist(image) for image in images]
    for image, js in zip(images, browser):  # the browser decoded exactly PIL's pixels
        assert js["checksum"] == pixel_checksum(image)
    assert [js["blank"] for js in browser] == [p.is_blank for p in python]
    js_inputs = np.array([js["image"] for js in browser], dtype=np.float32).reshape(-1, 28, 28)
    py_inputs = np.stack([p.image for p in python])
    differences = np.abs(js_inputs - py_inputs).reshape(len(images), -1).max(axis=1)
    assert differences.max() <= INPUT_TOLERANCE, f"worst input differs by {differences.max()}"
    identical = differences <= 1e-6
    for name, model in models.items():
        js_probs = browser_probabilities(page, name, js_inputs)
        py_probs = predict_probs(model, py_inputs)
        agreement = (js_probs.argmax(1) == py_probs.argmax(1)).mean()
        assert agreement >= LABEL_AGREEMENT, f"{name}: top labels agree on {agreement:.1%}"
        worst = np.abs(js_probs - py_probs)[identical].max()
        assert worst <= PROB_TOLERANCE, f"{name}: probabilities differ by {worst}"
        # And the answers are right, in the browser too (canvas-like drawings: ~98%).
        assert (js_probs.argmax(1) == np.array(labels)).mean() >= 0.95
    print(
        f"\n{len(images)} drawings: inputs identical on {identical.mean():.1%}, "
        f"max |diff| {differences.max():.2g}"
    )


def assert_same_ink_input_and_answer(page, models, drawings) -> np.ndarray:
    """Each drawing (a list of strokes) rasterised and preprocessed in the browser and in
    Python: the same ink bit for bit, the same 28x28 and answers. Returns which are blank."""
    results = page.evaluate(
        """([all, size, radius]) => all.map((strokes) => {
            const ink = digitnetPipeline.rasterizeStrokes(strokes, size, radius);
            const { image, blank } = digitnetPipeline.inkToMnist(ink, size);
            return { ink: toBase64(ink), image: Array.from(image), blank };
        })""",
        [drawings, PAD_SIZE, BRUSH_RADIUS],
    )
    js_inputs, py_inputs, blank = [], [], []
    for drawing, result in zip(drawings, results):
        ink = rasterize_strokes([np.array(stroke) for stroke in drawing])
        js_ink = np.frombuffer(base64.b64decode(result["ink"]), "<f4").reshape(PAD_SIZE, PAD_SIZE)
        assert np.array_equal(js_ink, ink), "the browser's ink is not Python's, bit for bit"
        python = preprocess.canvas_to_mnist(ink)
        assert result["blank"] == python.is_blank
        blank.append(python.is_blank)
        js_inputs.append(np.array(result["image"], dtype=np.float32).reshape(28, 28))
        py_inputs.append(python.image)
    js_inputs, py_inputs = np.stack(js_inputs), np.stack(py_inputs)
    assert np.abs(js_inputs - py_inputs).max() <= 1e-6
    drawn = ~np.array(blank)
    for name, model in models.items():
        js_probs = browser_probabilities(page, name, js_inputs[drawn])
        assert np.abs(js_probs - predict_probs(model, py_inputs[drawn])).max() <= PROB_TOLERANCE
    return np.array(blank)


def test_a_centre_of_mass_on_a_half_pixel_is_centred_alike(page, models):
    """A dense back-and-forth scribble filling a square: its centre of mass falls on a half
    pixel, a tie the two sides' sums once broke in opposite directions (one pixel apart, and
    the MLP read 8 in Python, 0 in the browser)."""
    points = [[20.0, 20.0]]
    for i in range(20_000):
        x, y = 20 + i % 240, 20 + (i // 240) * 3 % 240
        if abs(x - points[-1][0]) + abs(y - points[-1][1]) >= 0.75:
            points.append([float(x), float(y)])
    assert_same_ink_input_and_answer(page, models, [[points[:20_000]]])


def test_pad_strokes_give_the_same_ink_input_and_answer(page, models):
    rng = np.random.default_rng(3)
    drawings = [digit_strokes(index % 10, random_pen_style(rng)) for index in range(20)]
    assert not assert_same_ink_input_and_answer(page, models, drawings).any()


def test_strokes_that_leave_the_pad_give_the_same_ink_input_and_answer(page, models):
    """The pad keeps points off the pad (up to a pad width beyond each edge, as pad.js
    clamps them); the ink stops at the edge, on both sides alike."""
    rng = np.random.default_rng(4)
    drawings = []
    for index in range(24):
        scale = rng.uniform(1, 2.5)  # about the pad's centre, then moved: partly off, or all
        centre = PAD_SIZE / 2 + rng.uniform(-0.8, 0.8, size=2) * PAD_SIZE
        drawing = []
        for stroke in digit_strokes(index % 10, random_pen_style(rng)):
            points = (np.array(stroke) - PAD_SIZE / 2) * scale + centre
            points = np.clip(points, -PAD_SIZE, 2 * PAD_SIZE)
            drawing.append((np.round(points * 10) / 10).tolist())
        drawings.append(drawing)
    points = np.concatenate([np.array(stroke) for drawing in drawings for stroke in drawing])
    assert points.min() < -100 and points.max() > PAD_SIZE + 100
    blank = assert_same_ink_input_and_answer(page, models, drawings)
    assert 0 < blank.sum() < len(drawings) - 5, blank  # off the pad, partly off, and on it


def test_an_incremental_stroke_is_the_whole_stroke(page):
    """The pad adds each new segment as the pen moves; the ink is as if drawn at once."""
    stroke = digit_strokes(2, random_pen_style(np.random.default_rng(5)))[0]
    same = page.evaluate(
        """([stroke, size, radius]) => {
            const P = digitnetPipeline;
            const once = P.rasterizeStrokes([stroke], size, radius);
            const grown = new Float32Array(size * size);
            for (let n = 1; n <= stroke.length; n++) {
                P.drawStroke(grown, size, stroke.slice(0, n), radius, n - 1);
            }
            return once.every((value, i) => value === grown[i]);
        }""",
        [stroke, PAD_SIZE, BRUSH_RADIUS],
    )
    assert same


def test_a_blank_and_a_faint_pad_are_blank_in_the_browser_too(page):
    results = page.evaluate(
        """(size) => {
            const P = digitnetPipeline;
            const blank = P.inkToMnist(new Float32Array(size * size), size);
            const faint = new Float32Array(size * size).fill(0.05);
            return [blank.blank, P.inkToMnist(faint, size).blank, Math.max(...blank.image)];
        }""",
        PAD_SIZE,
    )
    assert results == [True, True, 0]
    faint = np.full((PAD_SIZE, PAD_SIZE), 0.05, np.float32)
    assert preprocess.canvas_to_mnist(faint).is_blank


def test_rounding_is_pythons(page):
    """Python's round() sends halves to even; fit_in_box's sizes depend on it."""
    values = [0.5, 1.5, 2.5, 12.5, 7.4999, 7.5001, 3.0]
    assert page.evaluate("(v) => v.map(digitnetPipeline.roundHalfEven)", values) == [
        round(v) for v in values
    ]


def test_a_broken_model_file_is_refused(page):
    error = page.evaluate(
        """() => { try { digitnetPipeline.parseWebModel(new Uint8Array(16).buffer); return "";
                   } catch (e) { return String(e.message); } }"""
    )
    assert "not a web model file" in error


def test_inference_matches_pytorch_on_random_inputs(page, models):
    """Beyond drawings: any input in [0, 1] gives PyTorch's probabilities."""
    inputs = np.random.default_rng(2).random((5, 28, 28), dtype=np.float32)
    for name, model in models.items():
        with torch.no_grad():
            logits = model(torch.from_numpy(inputs))
        expected = calibrated_probs(logits, calibration_of(model)).numpy()
        assert np.abs(browser_probabilities(page, name, inputs) - expected).max() <= 1e-5


def test_the_browser_refuses_what_python_refuses(page, models):
    """The same not-a-digit threshold, applied to the same calibrated probabilities."""
    from digitnet.nondigits import make_nondigits

    inputs = make_nondigits(40, seed=5, split="heldout").inputs
    for name, model in models.items():
        threshold = calibration_of(model).reject_below
        assert page.evaluate("(name) => rejectBelow(name)", name) == pytest.approx(threshold)
        js_refused = browser_probabilities(page, name, inputs).max(axis=1) < threshold
        py_refused = predict_probs(model, inputs).max(axis=1) < threshold
        assert (js_refused == py_refused).mean() >= 0.975  # only ties within 1e-3 may differ

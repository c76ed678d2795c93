"""The drawing app (app.py): its handlers called directly, then the app served in-process on
a free port and driven with gradio_client, as the README's API examples are.

Offline: Gradio's analytics and the Hugging Face telemetry are off before gradio is imported.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import assert_one_line  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

import app  # noqa: E402
from digitnet.dashboard import DIGITS  # noqa: E402
from digitnet.data import stratified_split  # noqa: E402
from digitnet.drawings import DrawingStyle, render_drawing  # noqa: E402
from digitnet.train import TrainConfig  # noqa: E402

CANVAS = (app.CANVAS_SIZE, app.CANVAS_SIZE)
EXAMPLES = sorted(app.EXAMPLES_DIR.glob("*.png"))
PROMPT = "Draw a digit"

# Canvas-like drawings of validation digits (never trained on): (digit, which validation
# digit of that class, style). Sizes, places, brushes and backgrounds a person would use.
DRAWINGS = [
    (3, 0, DrawingStyle(CANVAS, 200, 13, "white", (0.5, 0.5))),
    (7, 1, DrawingStyle(CANVAS, 70, 5, "white", (0.05, 0.05))),
    (2, 0, DrawingStyle((400, 300), 150, 9, "dark", (0.8, 0.3))),
    (5, 0, DrawingStyle(CANVAS, 180, 11, "transparent", (0.4, 0.6))),
    (0, 0, DrawingStyle((500, 500), 420, 31, "white", (0.5, 0.5))),
]


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def loaded():
    """The shipped models (the MLP at least), loaded once."""
    models, warnings = app.load_models()
    assert "MLP" in models, warnings
    return models, warnings


@pytest.fixture(scope="module")
def handlers(loaded):
    models, _ = loaded
    predict_sketch, classify_file, dashboard = app.make_handlers(models)
    return predict_sketch, classify_file, dashboard


@pytest.fixture(scope="module")
def validation(mnist):
    """Indices of the validation digits of the split the shipped models were trained on."""
    config = TrainConfig()
    _, val_index = stratified_split(mnist.labels, config.val_fraction, config.seed)
    return val_index


def drawing(mnist, validation, digit: int, nth: int, style: DrawingStyle) -> Image.Image:
    rows = validation[mnist.labels[validation] == digit]
    return render_drawing(mnist.images[rows[nth]], style)


def sketch(composite) -> dict:
    """A sketchpad value as Gradio hands it to the handler (type="numpy")."""
    return {"background": None, "layers": [], "composite": composite}


def canvas_digit(mnist, validation, digit: int = 3, background: str = "white") -> np.ndarray:
    """A digit drawn on the app's 280x280 canvas, as a grey (or RGBA) uint8 array."""
    style = DrawingStyle(CANVAS, 200, 13, background, (0.5, 0.5))
    image = drawing(mnist, validation, digit, 0, style)
    return np.asarray(image if background == "transparent" else image.convert("L"))


@pytest.fixture(scope="module")
def drawing_files(mnist, validation, tmp_path_factory) -> list[tuple[Path, int]]:
    """The DRAWINGS as PNG files, with their true digit."""
    folder = tmp_path_factory.mktemp("drawings")
    files = []
    for index, (digit, nth, style) in enumerate(DRAWINGS):
        path = folder / f"{index}-{style.background}-{digit}.png"
        drawing(mnist, validation, digit, nth, style).save(path)
        files.append((path, digit))
    return files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """Files that are not usable images, each of which the app must refuse in one line."""
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.png"
    text.write_text("this is not an image\n")
    truncated = folder / "truncated.png"
    truncated.write_bytes(EXAMPLES[0].read_bytes()[:400] if EXAMPLES else b"\x89PNG\r\n\x1a\n")
    bomb = folder / "bomb.png"  # 400 megapixels of 1-bit zeros: ~50 KB on disk
    Image.new("1", (20000, 20000)).save(bomb)
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    blank = folder / "blank.png"
    Image.new("L", CANVAS, 255).save(blank)
    return {"text": text, "truncated": truncated, "bomb": bomb, "empty": empty, "blank": blank}


class FlatModel(nn.Module):
    """A model with no opinion: equal logits for every digit."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(inputs), 10)


# ---------------------------------------------------------------------------
# predict_sketch: the live answer


def check_answer(outputs, digit: int) -> None:
    answer, label, bars, ink, cropped, boxed, centred, comparison = outputs
    assert f"**{digit}**" in answer and "Not sure" not in answer, answer
    assert list(label) == DIGITS
    assert max(label, key=label.get) == str(digit)
    assert sum(label.values()) == pytest.approx(1.0, abs=1e-4)
    assert list(bars.columns) == ["digit", "probability"]
    assert bars["digit"].tolist() == DIGITS  # fixed order 0-9, not sorted by probability
    assert bars["probability"].tolist() == pytest.approx([label[d] for d in DIGITS])
    for step in (ink, cropped, boxed, centred):
        assert isinstance(step, np.ndarray) and step.dtype == np.uint8 and step.ndim == 2
    assert max(boxed.shape) == 20 * app.STEP_SCALE
    assert centred.shape == (28 * app.STEP_SCALE, 28 * app.STEP_SCALE)
    assert centred.max() == 255 and centred[0, 0] == 0  # white ink on black, like MNIST
    assert comparison.startswith("Every model's answer") and f"**{digit}**" in comparison


def check_blank(outputs) -> None:
    answer, label, bars, *steps, comparison = outputs
    assert PROMPT in answer
    assert label is None
    assert bars["digit"].tolist() == DIGITS and float(bars["probability"].sum()) == 0.0
    assert steps == [None, None, None, None]
    assert comparison == ""


def test_a_drawn_digit_is_recognised(handlers, mnist, validation):
    predict_sketch, _, _ = handlers
    image = canvas_digit(mnist, validation, 3)
    outputs = predict_sketch(sketch(image), "MLP")
    check_answer(outputs, 3)
    assert outputs[3].shape == CANVAS  # step 1 is the whole drawing


def test_a_bare_array_and_no_choice_use_the_default_model(handlers, mnist, validation):
    predict_sketch, _, _ = handlers
    check_answer(predict_sketch(canvas_digit(mnist, validation, 4), None), 4)
    check_answer(predict_sketch(sketch(canvas_digit(mnist, validation, 4)), "no such model"), 4)


@pytest.mark.parametrize("background", ["dark", "transparent"])
def test_dark_and_transparent_canvases_are_recognised(handlers, mnist, validation, background):
    predict_sketch, _, _ = handlers
    image = canvas_digit(mnist, validation, 6, background)
    assert image.ndim == (3 if background == "transparent" else 2)
    check_answer(predict_sketch(sketch(image), "MLP"), 6)


@pytest.mark.parametrize(
    "value",
    [
        None,  # "Clear" sets the sketchpad to None
        sketch(None),
        sketch(np.full(CANVAS, 255, np.uint8)),  # blank white
        sketch(np.zeros(CANVAS, np.uint8)),  # blank black (a transparent canvas as grey)
        sketch(np.zeros((*CANVAS, 4), np.uint8)),  # everything erased: fully transparent
        sketch(np.full(CANVAS, 250, np.uint8) - np.eye(280, dtype=np.uint8) * 5),  # faint
    ],
    ids=["cleared", "no-composite", "white", "black", "transparent", "faint"],
)
def test_a_blank_or_cleared_canvas_asks_for_a_drawing(handlers, value):
    predict_sketch, _, _ = handlers
    check_blank(predict_sketch(value, "MLP"))


def test_a_few_stray_pixels_are_blank(handlers):
    predict_sketch, _, _ = handlers
    canvas = np.full(CANVAS, 255, np.uint8)
    canvas[100, 100:102] = 0  # a click without a stroke
    check_blank(predict_sketch(sketch(canvas), "MLP"))


def test_an_unsure_answer_says_so(mnist, validation):
    flat = app.LoadedModel("Flat", FlatModel(), {})
    predict_sketch, classify_file, _ = app.make_handlers({"Flat": flat})
    answer, label, bars, *_ = predict_sketch(sketch(canvas_digit(mnist, validation, 3)), None)
    assert answer.startswith("Not sure"), answer
    assert answer.count("%") == 2  # the two likeliest digits, with their probabilities
    assert sum(label.values()) == pytest.approx(1.0)
    assert bars["probability"].tolist() == pytest.approx([0.1] * 10)


def test_a_broken_composite_is_a_one_line_error(handlers):
    predict_sketch, _, _ = handlers
    with pytest.raises(gr.Error) as caught:
        predict_sketch(sketch(np.zeros((10, 10, 7), np.uint8)), "MLP")
    assert_one_line(caught.value.message, "image")


@pytest.mark.skipif(not EXAMPLES, reason="no example drawings in assets/examples")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_is_recognised(handlers, path):
    """Examples are named NAME-DIGIT.png; loaded into the sketchpad they become its composite."""
    predict_sketch, _, _ = handlers
    digit = int(re.search(r"(\d)\.png$", path.name).group(1))
    composite = np.asarray(Image.open(path).convert("L"))  # the sketchpad's image_mode="L"
    check_answer(predict_sketch(sketch(composite), "MLP"), digit)


# ---------------------------------------------------------------------------
# classify_file: the classify endpoint


def test_classify_file_recognises_drawings(handlers, drawing_files):
    _, classify_file, _ = handlers
    for path, digit in drawing_files:
        confidences = classify_file(str(path), "MLP")
        assert list(confidences) == DIGITS
        assert max(confidences, key=confidences.get) == str(digit), path.name
        assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-4)


# Each bad upload and a word its one-line message must contain.
BAD_FILES = [
    ("blank", "blank"),
    ("text", "not an image"),
    ("truncated", "truncated"),
    ("bomb", "too many pixels"),
    ("empty", "empty"),
]


@pytest.mark.parametrize("kind, needle", BAD_FILES)
def test_classify_file_refuses_bad_files_in_one_line(handlers, bad_files, kind, needle):
    _, classify_file, _ = handlers
    with pytest.raises(gr.Error) as caught:
        classify_file(str(bad_files[kind]), "MLP")
    assert_one_line(caught.value.message, needle)


def test_classify_file_refuses_a_large_image_without_decoding_it(handlers, tmp_path):
    """Under Pillow's own bomb limit but over the app's: refused from the header alone."""
    _, classify_file, _ = handlers
    path = tmp_path / "large.png"
    Image.new("1", (8000, 8000)).save(path)
    with pytest.raises(gr.Error) as caught:
        classify_file(str(path), "MLP")
    assert_one_line(caught.value.message, "too large")


@pytest.mark.parametrize("path", [None, ""])
def test_classify_file_without_a_file(handlers, path):
    _, classify_file, _ = handlers
    with pytest.raises(gr.Error) as caught:
        classify_file(path, "MLP")
    assert_one_line(caught.value.message, "No image")


# ---------------------------------------------------------------------------
# Dashboard, model loading and start-up


def test_dashboard_of_the_mlp(handlers):
    _, _, dashboard = handlers
    card, curves, per_class, confusion, mistakes = dashboard("MLP")
    assert card.startswith("### Model card") and "parameters" in card and "MLP" in card
    assert curves is not None and confusion is not None
    assert per_class["digit"].tolist() == DIGITS
    assert mistakes, "no misclassified examples in the gallery"
    for image, caption in mistakes:
        assert image.ndim == 2 and image.dtype == np.uint8
        assert re.match(r"^\d \(\d\)", caption), caption  # predicted (true)
    assert dashboard(None)[0] == card  # no choice: the default model, the MLP


def test_the_mlp_is_the_default_and_loads_first(loaded):
    models, warnings = loaded
    assert next(iter(models)) == "MLP"
    assert set(models) <= {"MLP", "CNN"}
    for warning in warnings:  # cnn may not be trained yet: a warning, not a failure
        assert_one_line(warning, "could not load")


def test_an_extra_model_comes_first(loaded):
    models, _ = app.load_models(str(app.HERE / "assets" / "mlp"))
    assert list(models)[0] == "Custom: mlp"
    assert "MLP" in models


def corrupt_checkpoints(folder: Path) -> dict[str, Path]:
    """A missing checkpoint and broken ones of each kind."""
    folder.mkdir(parents=True, exist_ok=True)
    bad_json = folder / "bad-json"
    bad_json.with_suffix(".json").write_text('{"format": "digitnet-checkpoint", "con')
    bad_json.with_suffix(".safetensors").write_bytes(b"\0" * 64)
    bad_weights = folder / "bad-weights"
    bad_weights.with_suffix(".json").write_text((app.HERE / "assets" / "mlp.json").read_text())
    bad_weights.with_suffix(".safetensors").write_bytes(b"not safetensors at all")
    bad_pt = folder / "model.pt"
    bad_pt.write_bytes(b"PK\x03\x04 truncated zip")
    return {
        "missing": folder / "missing",
        "bad-json": bad_json,
        "bad-weights": bad_weights,
        "bad-pt": bad_pt,
    }


@pytest.mark.parametrize("kind", ["missing", "bad-json", "bad-weights", "bad-pt"])
def test_a_broken_model_is_a_warning_and_the_shipped_ones_still_load(tmp_path, kind):
    path = corrupt_checkpoints(tmp_path)[kind]
    models, warnings = app.load_models(str(path))
    assert "MLP" in models
    assert not any(name.startswith("Custom") for name in models)
    assert warnings, "no warning for a broken --model"
    assert_one_line(warnings[0], "could not load", str(path))


def test_main_without_any_loadable_model_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DIGITNET_MODEL", raising=False)
    monkeypatch.setattr(app, "SHIPPED", {"MLP": str(tmp_path / "gone-mlp")})

    def no_launch(*args, **kwargs):
        raise AssertionError("the app must not start without a model")

    monkeypatch.setattr(app, "launch", no_launch)
    assert app.main(["--model", str(tmp_path / "gone-custom")]) == 2
    err = capsys.readouterr().err
    assert "no model could be loaded" in err
    assert err.count("warning: could not load") == 2


# ---------------------------------------------------------------------------
# The app served in-process, driven with gradio_client


@pytest.fixture(scope="module")
def server(loaded):
    """The whole app (with its css and theme) on 127.0.0.1 and a free port, for this module."""
    demo, url = app.serve_in_background(*loaded)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    from gradio_client import Client

    return Client(
        server,
        verbose=False,
        analytics_enabled=False,
        download_files=str(tmp_path_factory.mktemp("client-downloads")),
    )


def top_label(result: dict) -> str:
    return result["label"]


def client_sketch(path: Path) -> dict:
    from gradio_client import handle_file

    return {"background": None, "layers": [], "composite": handle_file(str(path))}


def test_the_api_has_both_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert {"/predict", "/classify"} <= set(api["named_endpoints"])


def test_classify_endpoint_recognises_drawings(client, drawing_files):
    from gradio_client import handle_file

    for path, digit in drawing_files:
        result = client.predict(handle_file(str(path)), "MLP", api_name="/classify")
        assert top_label(result) == str(digit), path.name
        assert len(result["confidences"]) == 10  # all ten label confidences


def test_predict_endpoint_recognises_drawings(client, drawing_files):
    for path, digit in drawing_files:
        answer, label, bars, *steps, comparison = client.predict(
            client_sketch(path), "MLP", api_name="/predict"
        )
        assert f"**{digit}**" in answer, (path.name, answer)
        assert top_label(label) == str(digit)
        assert len(label["confidences"]) == 10
        assert [row[0] for row in bars["data"]] == DIGITS
        assert all(step for step in steps), "a pipeline image is missing"
        assert f"**{digit}**" in comparison


@pytest.mark.skipif(not EXAMPLES, reason="no example drawings in assets/examples")
def test_predict_endpoint_recognises_the_examples(client):
    for path in EXAMPLES:
        digit = re.search(r"(\d)\.png$", path.name).group(1)
        answer, label, *_ = client.predict(client_sketch(path), "MLP", api_name="/predict")
        assert top_label(label) == digit, (path.name, answer)


def test_predict_endpoint_with_a_blank_or_cleared_canvas(client, bad_files):
    for value in (client_sketch(bad_files["blank"]), None):
        answer, label, _, *steps, comparison = client.predict(value, "MLP", api_name="/predict")
        assert PROMPT in answer
        assert not label or not label.get("confidences")
        assert steps == [None] * 4 and comparison == ""


@pytest.mark.parametrize("kind, needle", [*BAD_FILES, (None, "No image")])
def test_classify_endpoint_refuses_bad_input_and_keeps_serving(
    client, bad_files, drawing_files, kind, needle
):
    from gradio_client import handle_file

    bad = None if kind is None else handle_file(str(bad_files[kind]))
    with pytest.raises(Exception) as caught:  # gradio_client's AppError
        client.predict(bad, "MLP", api_name="/classify")
    assert_one_line(str(caught.value), needle)
    path, digit = drawing_files[0]
    result = client.predict(handle_file(str(path)), "MLP", api_name="/classify")
    assert top_label(result) == str(digit)


def test_classify_endpoint_refuses_a_file_that_is_not_an_image_type(
    client, drawing_files, tmp_path
):
    from gradio_client import handle_file

    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(path)), "MLP", api_name="/classify")
    assert_one_line(str(caught.value), "image")
    good, digit = drawing_files[1]
    assert top_label(client.predict(handle_file(str(good)), api_name="/classify")) == str(digit)


# ---------------------------------------------------------------------------
# Where the app listens: Gradio's GRADIO_SERVER_* convention, with flags and PORT first


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([], {}, {}),  # Gradio's default, or its GRADIO_SERVER_* variables
        ([], {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "9000"}, {}),
        ([], {"SPACE_ID": "me/digitnet"}, {"server_name": "0.0.0.0"}),
        ([], {"SPACE_ID": "me/digitnet", "GRADIO_SERVER_NAME": "::"}, {}),
        ([], {"PORT": "8080", "GRADIO_SERVER_PORT": "9000"}, {"server_port": 8080}),
        (
            ["--host", "0.0.0.0", "--port", "7000"],
            {"PORT": "8080", "GRADIO_SERVER_NAME": "127.0.0.1"},
            {"server_name": "0.0.0.0", "server_port": 7000},
        ),
    ],
)
def test_server_settings_follow_gradio_then_flags(argv, environ, expected):
    assert app.server_settings(app.parse_args(argv), environ) == expected


def test_a_bad_port_variable_is_one_line():
    with pytest.raises(app.DigitnetError) as caught:
        app.server_settings(app.parse_args([]), {"PORT": "http"})
    assert_one_line(str(caught.value), "PORT", "port number")


def test_app_listens_on_gradio_server_port(tmp_path):
    """The real program, started as a user would, honours GRADIO_SERVER_PORT."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = {k: v for k, v in os.environ.items() if k not in ("PORT", "SPACE_ID")}
    environ.update(GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen(
        [sys.executable, str(Path(app.__file__))],
        env=environ,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert server.poll() is None, "the app exited"
                assert time.monotonic() < deadline, "the app did not answer on its port"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)

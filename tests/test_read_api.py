"""The ``read`` and ``read_image`` endpoints (numbers of several digits): the handlers called
directly, then the app served in-process and called with gradio_client, as a program would.

Offline: Gradio's analytics and the Hugging Face telemetry are off before gradio is imported.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import assert_one_line, close_when_idle  # noqa: E402
from PIL import Image  # noqa: E402

import app  # noqa: E402
from digitnet.number_strokes import random_number  # noqa: E402
from digitnet.strokes import PAD_SIZE, PenStyle, digit_strokes, rasterize_strokes  # noqa: E402
from digitnet.ui.draw_tab import make_draw_handlers  # noqa: E402

EXAMPLES = sorted(app.EXAMPLES_DIR.glob("*.png"))


def digit_at(digit: int, x: float, y: float = 140.0, height: float = 100.0):
    return digit_strokes(digit, PenStyle(height, (x, y), 0.05, 0.6))


FORTY_TWO = {"strokes": digit_at(4, 90) + digit_at(2, 190)}
# Thirteen 1s side by side: one digit more than a number may have.
THIRTEEN = {"strokes": [[[15.0 + 20 * k, 110.0], [15.0 + 20 * k, 170.0]] for k in range(13)]}


def number_image(strokes) -> Image.Image:
    """A number drawn as dark ink on white, as a photo or a scan of one would be."""
    ink = rasterize_strokes([np.array(s, dtype=np.float64) for s in strokes], PAD_SIZE, 6.0)
    return Image.fromarray((255 - ink * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def loaded():
    models, warnings = app.load_models()
    assert "MLP" in models, warnings
    return models, warnings


@pytest.fixture(scope="module")
def handlers(loaded):
    return make_draw_handlers(loaded[0], app.example_files())


def check_42(answer: dict) -> None:
    assert answer["text"] == "42", answer
    assert [digit["label"] for digit in answer["digits"]] == ["4", "2"]
    product = answer["digits"][0]["confidence"] * answer["digits"][1]["confidence"]
    assert answer["confidence"] == pytest.approx(product, abs=1e-3)
    (a0, _, a1, _), (b0, _, b1, _) = (digit["box"] for digit in answer["digits"])
    assert 0 <= a0 < a1 < b0 < b1 <= PAD_SIZE  # pad units, left to right


# ---------------------------------------------------------------------------
# The handlers


@pytest.mark.parametrize("choice", ["MLP", "CNN", None])
def test_read_gives_the_number_its_digits_and_their_boxes(handlers, loaded, choice):
    if choice is not None and choice not in loaded[0]:
        pytest.skip(f"{choice} is not shipped here")
    check_42(handlers.read(FORTY_TWO, choice))


def test_read_of_one_digit_is_a_number_of_one_digit(handlers):
    answer = handlers.read({"strokes": digit_strokes(7, PenStyle(200, (140, 140), 0.1))}, "MLP")
    assert answer["text"] == "7" and len(answer["digits"]) == 1


@pytest.mark.parametrize("value", [{"strokes": []}, None, ""])
def test_read_of_a_blank_pad_is_empty_text(handlers, value):
    assert handlers.read(value, "MLP") == {"text": "", "confidence": 0.0, "digits": []}


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("not json", "not JSON"),
        ({"strokes": "a 7"}, "list of strokes"),
        ({"background": None, "layers": [], "composite": None}, "classify endpoint"),
        ({"example": "../../etc/passwd"}, "no example named"),
        (THIRTEEN, "13 digits is too many for one number; draw at most 12 digits"),
    ],
)
def test_read_refuses_bad_values_in_one_line(handlers, value, needle):
    with pytest.raises(gr.Error) as caught:
        handlers.read(value, "MLP")
    assert_one_line(str(caught.value.message), needle)


@pytest.mark.skipif(not EXAMPLES, reason="no example drawings in assets/examples")
def test_read_refuses_an_example_in_one_line(handlers):
    with pytest.raises(gr.Error) as caught:
        handlers.read({"example": EXAMPLES[0].name}, "MLP")
    assert_one_line(str(caught.value.message), "not an example", "read_image")


def test_read_image_reads_a_file_of_a_number(handlers, tmp_path):
    path = tmp_path / "42.png"
    number_image(FORTY_TWO["strokes"]).save(path)
    assert handlers.read_image(str(path), "MLP")["text"] == "42"
    blank = tmp_path / "blank.png"
    Image.new("L", (60, 40), 255).save(blank)
    assert handlers.read_image(str(blank), "MLP")["text"] == ""


@pytest.mark.parametrize("path", [None, ""])
def test_read_image_without_a_file(handlers, path):
    with pytest.raises(gr.Error) as caught:
        handlers.read_image(path, "MLP")
    assert_one_line(str(caught.value.message), "No image")


def test_read_image_refuses_a_file_that_is_no_image_in_one_line(handlers, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(gr.Error) as caught:
        handlers.read_image(str(path), "MLP")
    message = str(caught.value.message)
    assert_one_line(message, "notes.png")
    assert str(tmp_path) not in message  # no server path


# ---------------------------------------------------------------------------
# Served, through gradio_client


@pytest.fixture(scope="module")
def client(loaded, tmp_path_factory):
    from gradio_client import Client

    demo, url = app.serve_in_background(*loaded)
    yield Client(
        url,
        verbose=False,
        analytics_enabled=False,
        download_files=str(tmp_path_factory.mktemp("client-downloads")),
    )
    close_when_idle(demo)


def test_the_endpoints_are_named_by_their_parameters(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, first in (("/read", "value"), ("/read_image", "path")):
        parameters = [p["parameter_name"] for p in endpoints[name]["parameters"]]
        assert parameters == [first, "choice"], (name, parameters)
        assert [r["label"] for r in endpoints[name]["returns"]] == ["number"]


def test_read_and_read_image_through_the_api(client, tmp_path):
    from gradio_client import handle_file

    check_42(client.predict(FORTY_TWO, "MLP", api_name="/read"))
    assert client.predict({"strokes": []}, api_name="/read")["text"] == ""
    with pytest.raises(Exception) as caught:  # gradio_client's AppError
        client.predict(THIRTEEN, "MLP", api_name="/read")
    assert_one_line(str(caught.value), "13 digits is too many")
    path = tmp_path / "42.png"
    number_image(FORTY_TWO["strokes"]).save(path)
    assert client.predict(handle_file(str(path)), "MLP", api_name="/read_image")["text"] == "42"
    # Still serving after the refusal; the choice is optional.
    number = random_number(np.random.default_rng(3), 3)
    assert client.predict({"strokes": number.strokes}, api_name="/read")["text"] == number.text

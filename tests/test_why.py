"""The "Why" panel, the dashboard's "Look inside" and the ``explain`` endpoint (digitnet.ui.why):
the panel's and the dashboard's values computed directly, then the endpoint through gradio_client
against the whole app served in-process.
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
from conftest import assert_one_line, close_when_idle  # noqa: E402
from PIL import Image  # noqa: E402

import app  # noqa: E402
from digitnet.explain import AWAY_RGB, TOWARD_RGB  # noqa: E402
from digitnet.preprocess import canvas_to_mnist  # noqa: E402
from digitnet.ui.why import (  # noqa: E402
    FILTER_GAP,
    FILTER_SCALE,
    WHY_PROMPT,
    explain_endpoint,
    look_inside_outputs,
    why_for_drawing,
    why_outputs,
)

EXAMPLES = sorted(app.EXAMPLES_DIR.glob("*.png"))
SEVEN = app.EXAMPLES_DIR / "small-in-a-corner-7.png"
NINE = app.EXAMPLES_DIR / "big-9.png"
OVERLAY_SIZE = 224  # 28 x explain.OVERLAY_SCALE


@pytest.fixture(scope="module")
def models() -> dict:
    loaded, warnings = app.load_models()
    assert {"MLP", "CNN"} <= set(loaded), warnings
    return {name: entry.model for name, entry in loaded.items()}


def digit_of(path: Path) -> int:
    return int(re.search(r"(\d)\.png$", path.name).group(1))


def colour_share(image: np.ndarray, rgb: np.ndarray) -> float:
    """Share of pixels clearly tinted toward ``rgb`` (red or blue) rather than grey/white."""
    pixels = image.reshape(-1, 3).astype(np.float32)
    channel = int(np.argmax(rgb))  # red's red channel, blue's blue channel
    others = [c for c in range(3) if c != channel]
    tinted = pixels[:, channel] - pixels[:, others].mean(axis=1) > 40
    return float(tinted.mean())


# ---------------------------------------------------------------------------
# why_outputs: the panel's values


@pytest.mark.parametrize("name", ["MLP", "CNN"])
def test_why_outputs_explain_a_drawing(models, name):
    preprocessed = canvas_to_mnist(np.asarray(Image.open(SEVEN)))
    overlay, runner_text, runner_overlay, inside_text, inside = why_outputs(
        name, models[name], preprocessed
    )
    for image in (overlay, runner_overlay):
        assert image.shape == (OVERLAY_SIZE, OVERLAY_SIZE, 3) and image.dtype == np.uint8
    # The answer's saliency is mostly red (the ink pushes toward the 7), and shows some colour.
    assert colour_share(overlay, TOWARD_RGB) > colour_share(overlay, AWAY_RGB) > 0
    assert f"{name} answers **7**" in runner_text
    second = int(re.search(r"runner-up and what would change it:\*\* \*\*(\d)\*\*", runner_text)[1])
    assert second != 7 and "%" in runner_text
    assert inside.dtype == np.uint8 and inside.ndim == 3 and min(inside.shape[:2]) > 100
    assert ("first-layer units" if name == "MLP" else "feature maps") in inside_text


def test_why_outputs_for_a_blank_drawing(models):
    blank = canvas_to_mnist(np.full((280, 280), 255, np.uint8))
    for name, model in models.items():
        assert why_outputs(name, model, blank) == (None, WHY_PROMPT, None, "", None)
    assert why_for_drawing(models, None, "MLP") == (None, WHY_PROMPT, None, "", None)


def test_why_for_drawing_refuses_an_unknown_model(models):
    with pytest.raises(gr.Error) as caught:
        why_for_drawing(models, np.asarray(Image.open(SEVEN)), "ResNet")
    assert_one_line(str(caught.value), "unknown model", "MLP")


# ---------------------------------------------------------------------------
# Look inside


def test_look_inside_shows_the_mlps_64_strongest_tiles_once(models):
    text, grid = look_inside_outputs(models["MLP"])
    assert "red" in text and "blue" in text and "64" in text
    cell = 28 * 3 + 1  # a tile at scale 3, and a 1-px gap
    assert grid.shape == (8 * cell - 1, 8 * cell - 1, 3) and grid.dtype == np.uint8
    # Both colours at full strength somewhere: the weights push both ways (the MLP trained on
    # all of MNIST has smoother tiles than the 8,000-digit one: ~4.5% of pixels deep red).
    assert colour_share(grid, TOWARD_RGB) > 0.02 and colour_share(grid, AWAY_RGB) > 0.02
    assert look_inside_outputs(models["MLP"])[1] is grid  # cached once per model


def test_look_inside_shows_the_cnns_first_filters(models):
    text, grid = look_inside_outputs(models["CNN"])
    assert "3×3" in text and "no whole-image tiles" in text
    assert grid.ndim == 3 and colour_share(grid, TOWARD_RGB) > 0
    # 32 filters in 4 rows of 8, each 3x3 weights enlarged and framed, white between them.
    tile = 3 * FILTER_SCALE + 2
    assert grid.shape == (4 * tile + 3 * FILTER_GAP, 8 * tile + 7 * FILTER_GAP, 3)
    assert (grid[:, tile : tile + FILTER_GAP] == 255).all()  # the gap after column 1
    weights = models["CNN"].features[0][0].weight.detach()[0, 0].numpy()  # filter 0
    strongest = np.unravel_index(np.abs(weights).argmax(), weights.shape)
    y, x = (1 + FILTER_SCALE * i + FILTER_SCALE // 2 for i in strongest)
    expected = TOWARD_RGB if weights[strongest] > 0 else AWAY_RGB
    assert np.abs(grid[y, x].astype(float) - expected).max() <= 1  # full colour at its peak


# ---------------------------------------------------------------------------
# explain_endpoint called directly


def test_explain_endpoint_returns_the_overlay_then_the_arrays(models):
    overlay, result = explain_endpoint(models, str(NINE), "CNN")
    assert overlay.shape == (OVERLAY_SIZE, OVERLAY_SIZE, 3)
    assert result["model"] == "CNN" and result["label"] == 9 and result["architecture"] == "cnn"
    assert np.array(result["feature_maps"]["block1"]).shape == (32, 14, 14)
    assert result["completeness_error"] <= 0.01


@pytest.mark.parametrize("choice", [None, ""])
def test_explain_endpoint_defaults_to_the_first_model(models, choice):
    _, result = explain_endpoint(models, str(SEVEN), choice)
    assert result["model"] == "MLP" and result["label"] == 7


# ---------------------------------------------------------------------------
# The endpoint through gradio_client, against the app served in-process


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from gradio_client import Client

    demo, url = app.serve_in_background(*app.load_models())
    yield Client(
        url,
        verbose=False,
        analytics_enabled=False,
        download_files=str(tmp_path_factory.mktemp("why-downloads")),
    )
    close_when_idle(demo)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.png"
    text.write_text("this is not an image\n")
    bomb = folder / "bomb.png"  # 400 megapixels of 1-bit zeros: ~50 KB on disk
    Image.new("1", (20000, 20000)).save(bomb)
    blank = folder / "blank.png"
    Image.new("L", (280, 280), 255).save(blank)
    return {"text": text, "bomb": bomb, "blank": blank}


def test_the_api_has_the_explain_endpoint(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert "/explain" in api["named_endpoints"]


@pytest.mark.skipif(not EXAMPLES, reason="no example drawings in assets/examples")
@pytest.mark.parametrize("name", ["MLP", "CNN"])
def test_explain_endpoint_answers_the_examples_with_an_image_and_json(client, name):
    from gradio_client import handle_file

    for path in EXAMPLES:
        image_path, result = client.predict(handle_file(str(path)), name, api_name="/explain")
        overlay = np.asarray(Image.open(image_path).convert("RGB"))
        assert overlay.shape == (OVERLAY_SIZE, OVERLAY_SIZE, 3), path.name
        assert colour_share(overlay, TOWARD_RGB) > 0
        assert result["model"] == name and result["label"] == digit_of(path), path.name
        assert np.array(result["integrated_gradients"]).shape == (28, 28)
        assert result["runner_up"]["label"] != result["label"]
        assert ("active_units" in result) == (name == "MLP")
        if name == "MLP":  # units and how much each fired; the tiles are the model's weights
            assert set(result["active_units"]) == {"units", "activations"}


@pytest.mark.parametrize(
    "kind, needle",
    [("text", "not an image"), ("bomb", "too many pixels"), ("blank", "blank"), (None, "No image")],
)
def test_explain_endpoint_refuses_bad_input_in_one_line_and_keeps_serving(
    client, bad_files, kind, needle
):
    from gradio_client import handle_file

    bad = None if kind is None else handle_file(str(bad_files[kind]))
    with pytest.raises(Exception) as caught:  # gradio_client's AppError
        client.predict(bad, "MLP", api_name="/explain")
    assert_one_line(str(caught.value), needle)
    _, result = client.predict(handle_file(str(SEVEN)), "MLP", api_name="/explain")
    assert result["label"] == 7

"""digitnet.explain on the shipped models: saliency on the ink, completeness, occlusion,
the MLP's first layer, the CNN's feature maps, and a model left exactly as it was.

Oracles are plain torch (autograd on a float64 copy, finite differences, a dense
uniform-step path integral, predict_logits), never the module's own helpers.
"""

from __future__ import annotations

import copy
import json
import threading

import numpy as np
import pytest
import torch
from conftest import assert_one_line
from PIL import Image

from digitnet import explain as ex
from digitnet.checkpoint import ASSETS_DIR, load_checkpoint
from digitnet.data import load_training_data, stratified_split
from digitnet.drawings import DrawingStyle, render_drawing
from digitnet.errors import DigitnetError
from digitnet.predict import predict_logits, predict_probs
from digitnet.preprocess import canvas_to_mnist

SEVEN_PNG = ASSETS_DIR / "examples" / "small-in-a-corner-7.png"
TRAIN_8K = ASSETS_DIR / "mnist-train-8k.csv.gz"
# A plain canvas drawing: 400x400 white, the digit 300 px tall in the middle, 9 px brush.
CANVAS_STYLE = DrawingStyle((400, 400), 300, 9, "white", (0.5, 0.5))


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def model(request):
    return load_checkpoint(request.param)[0]


@pytest.fixture(scope="module")
def mlp():
    return load_checkpoint("mlp")[0]


@pytest.fixture(scope="module")
def drawings() -> dict[int, np.ndarray]:
    """The model inputs of a drawn 7 (a shipped example) and a drawn 1 (a validation digit)."""
    digits = load_training_data(TRAIN_8K)
    # The shipped models' validation split (val_fraction 0.1, seed 0): digits they never saw.
    _, validation = stratified_split(digits.labels, 0.1, 0)
    first_one = validation[digits.labels[validation] == 1][0]
    one = canvas_to_mnist(render_drawing(digits.images[first_one], CANVAS_STYLE))
    seven = canvas_to_mnist(Image.open(SEVEN_PNG))
    return {1: one.image, 7: seven.image}


def ink_neighbourhood(image: np.ndarray) -> np.ndarray:
    """Clearly inked pixels (>= 0.5) and the pixels next to them (8-neighbours)."""
    padded = np.pad(image >= 0.5, 1)
    shifts = [padded[r : r + 28, c : c + 28] for r in range(3) for c in range(3)]
    return np.logical_or.reduce(shifts)


def logit_of(model, image: np.ndarray, target: int) -> float:
    return float(predict_logits(model, image[None])[0, target])


# ---------------------------------------------------------------------------
# The "Done when": saliency on the ink, completeness, blank occlusion


@pytest.mark.parametrize("digit", [1, 7])
def test_integrated_gradients_lie_on_or_next_to_the_ink(model, drawings, digit):
    image = drawings[digit]
    result = ex.integrated_gradients(model, image)
    assert result.target == digit  # explaining the right answer
    positive = np.clip(result.attributions, 0.0, None)
    share = positive[ink_neighbourhood(image)].sum() / positive.sum()
    # With a blank baseline pixels without any ink get exactly zero, so this measures the
    # faint anti-aliased halo against the strokes (measured: >= 99.7%).
    assert share >= 0.8


@pytest.mark.parametrize("digit", [1, 7])
def test_integrated_gradients_are_complete_within_one_percent(model, drawings, digit):
    image = drawings[digit]
    result = ex.integrated_gradients(model, image)
    change = logit_of(model, image, digit) - logit_of(model, np.zeros_like(image), digit)
    assert abs(change) > 1.0  # the answer's logit moves a lot from blank
    assert abs(result.attributions.sum(dtype=np.float64) - change) <= 0.01 * abs(change)
    assert result.completeness_error <= 0.01
    assert 32 <= result.steps <= ex.IG_MAX_STEPS


def test_other_classes_are_complete_within_one_percent_or_a_hundredth_logit(model, drawings):
    image = drawings[7]
    for target in (1, 9):
        result = ex.integrated_gradients(model, image, target)
        change = logit_of(model, image, target) - logit_of(model, np.zeros_like(image), target)
        gap = abs(result.attributions.sum(dtype=np.float64) - change)
        assert gap <= 0.01 * max(abs(change), 1.0)


def test_integrated_gradients_match_a_dense_path_integral(mlp, drawings):
    """Oracle: 1,024 uniform midpoint steps with plain autograd, the textbook definition."""
    image = drawings[7]
    steps = 1024
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    path = (alphas[:, None, None] * torch.as_tensor(image)).requires_grad_(True)
    mlp(path)[:, 7].sum().backward()
    dense = image * path.grad.double().numpy().mean(axis=0)
    refined = ex.integrated_gradients(mlp, image, 7).attributions
    assert np.abs(refined - dense).sum() / np.abs(dense).sum() < 0.05  # measured: 1-3%


def test_occluding_a_blank_region_changes_nothing(model, drawings):
    image = drawings[7]
    result = ex.occlusion(model, image)
    assert result.drops.shape == (7, 7)
    patches = image.reshape(7, 4, 7, 4).transpose(0, 2, 1, 3)  # (row, col, 4, 4)
    blank = ~patches.any(axis=(2, 3))
    assert blank.sum() >= 10  # a digit leaves the frame's edges empty
    np.testing.assert_allclose(result.drops[blank], 0.0, atol=1e-6)
    assert result.drops[~blank].max() > 0.01  # hiding part of the stroke does matter


def test_occlusion_drop_matches_hiding_the_patch_by_hand(model, drawings):
    image = drawings[7]
    result = ex.occlusion(model, image, 7)
    row, col = np.unravel_index(np.argmax(result.drops), result.drops.shape)
    hidden = image.copy()
    hidden[4 * row : 4 * row + 4, 4 * col : 4 * col + 4] = 0.0
    probs = predict_probs(model, np.stack([image, hidden]))[:, 7]
    assert result.prob == pytest.approx(probs[0], abs=1e-5)
    assert result.drops[row, col] == pytest.approx(probs[0] - probs[1], abs=1e-5)
    assert result.pixel_map.shape == (28, 28)
    assert result.pixel_map[4 * row + 3, 4 * col] == result.drops[row, col]


# ---------------------------------------------------------------------------
# Gradients against plain autograd and finite differences


def test_input_gradient_matches_finite_differences(mlp, drawings):
    image = drawings[1]
    gradient = ex.input_gradient(mlp, image)
    reference = copy.deepcopy(mlp).double()  # a float64 copy: differences are exact enough
    x = torch.as_tensor(image, dtype=torch.float64)[None]
    rng = np.random.default_rng(0)
    pixels = [(14, 14), (3, 25)] + [tuple(p) for p in rng.integers(0, 28, size=(6, 2))]
    epsilon = 1e-4
    for row, col in pixels:
        step = torch.zeros_like(x)
        step[0, row, col] = epsilon
        with torch.no_grad():
            slope = (reference(x + step)[0, 1] - reference(x - step)[0, 1]) / (2 * epsilon)
        assert gradient[row, col] == pytest.approx(float(slope), rel=1e-3, abs=1e-5)


def test_runner_up_is_the_second_class_and_its_saliency_the_margin_gradient(model, drawings):
    image = drawings[7]
    probs = predict_probs(model, image[None])[0]
    answer, second = np.argsort(-probs)[:2]
    result = ex.runner_up(model, image)
    assert result.label == second
    assert result.prob == pytest.approx(float(probs[second]), abs=1e-5)
    expected = ex.input_gradient(model, image, int(second)) - ex.input_gradient(
        model, image, int(answer)
    )
    np.testing.assert_allclose(result.saliency, expected, atol=1e-5)


# ---------------------------------------------------------------------------
# Inside the models


def test_first_layer_tiles_are_the_largest_norm_units(mlp):
    tiles = ex.first_layer_tiles(mlp, 64)
    weights = mlp.fc1.weight.detach()
    norms = torch.linalg.vector_norm(weights, dim=1)
    assert tiles.tiles.shape == (64, 28, 28) and tiles.units.shape == (64,)
    assert set(tiles.units.tolist()) == set(torch.topk(norms, 64).indices.tolist())
    assert np.all(np.diff(tiles.norms) <= 0)  # largest first
    unit = int(tiles.units[5])
    np.testing.assert_array_equal(tiles.tiles[5], weights[unit].numpy().reshape(28, 28))
    grid = ex.tile_grid(tiles.tiles, columns=8, scale=3)
    assert grid.dtype == np.uint8 and grid.shape == (8 * 85 - 1, 8 * 85 - 1, 3)


def test_most_active_units_are_the_top_relu_activations(mlp, drawings):
    image = drawings[7]
    units = ex.most_active_units(mlp, image, count=8)
    with torch.no_grad():
        activations = torch.relu(mlp.fc1(torch.as_tensor(image).reshape(1, -1)))[0]
    top = torch.topk(activations, 8)
    np.testing.assert_allclose(units.activations, top.values.numpy(), rtol=1e-6)
    assert units.units.tolist() == top.indices.tolist()
    assert units.tiles.shape == (8, 28, 28)
    np.testing.assert_array_equal(
        units.tiles[0], mlp.fc1.weight.detach()[top.indices[0]].numpy().reshape(28, 28)
    )


def test_feature_maps_are_what_the_head_reads():
    cnn = load_checkpoint("cnn")[0]
    image = canvas_to_mnist(Image.open(SEVEN_PNG)).image
    maps = ex.feature_maps(cnn, image)
    assert maps.block1.shape == (32, 14, 14) and maps.block2.shape == (64, 7, 7)
    assert maps.block1.min() >= 0 and maps.block2.min() >= 0  # after ReLU
    with torch.no_grad():
        logits = cnn.head(torch.as_tensor(maps.block2)[None])[0].numpy()
    np.testing.assert_allclose(logits, predict_logits(cnn, image[None])[0].numpy(), atol=1e-4)
    strongest = maps.strongest(2, 5)
    means = maps.block2.mean(axis=(1, 2))
    assert means[strongest[0]] == means.max() and len(strongest) == 5
    grid = ex.feature_map_grid(maps.block1[maps.strongest(1, 8)], columns=8, scale=4)
    assert grid.dtype == np.uint8 and grid.shape == (56, 8 * 57 - 1, 3)


def test_the_wrong_architecture_gets_a_one_line_error(mlp):
    cnn = load_checkpoint("cnn")[0]
    image = np.zeros((28, 28), dtype=np.float32)
    with pytest.raises(DigitnetError) as error:
        ex.first_layer_tiles(cnn)
    assert_one_line(str(error.value), "MLP", "feature_maps")
    with pytest.raises(DigitnetError) as error:
        ex.feature_maps(mlp, image)
    assert_one_line(str(error.value), "CNN", "first_layer_tiles")


# ---------------------------------------------------------------------------
# explain(): the bundle, its JSON and its images


def test_explain_bundles_everything_with_the_right_shapes(model, drawings):
    result = ex.explain(model, drawings[7])
    assert result.label == 7 and not result.is_blank
    assert result.probs.shape == (10,) and result.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert result.attributions.shape == result.gradient.shape == (28, 28)
    assert result.occlusion.drops.shape == (7, 7)
    assert result.runner_up.label != 7
    if result.architecture == "mlp":
        assert result.active_units.tiles.shape == (8, 28, 28) and result.feature_maps is None
    else:
        assert result.feature_maps.block2.shape == (64, 7, 7) and result.active_units is None
    overlay = result.overlay()
    assert overlay.dtype == np.uint8 and overlay.shape == (224, 224, 3)
    assert result.runner_up_overlay().shape == (224, 224, 3)
    payload = json.loads(json.dumps(result.to_json()))
    assert payload["label"] == 7 and payload["architecture"] == result.architecture
    assert np.array(payload["integrated_gradients"]).shape == (28, 28)
    assert np.array(payload["occlusion"]["drops"]).shape == (7, 7)
    assert payload["runner_up"]["label"] == result.runner_up.label
    assert payload["completeness_error"] <= 0.01


def test_explain_is_deterministic(model, drawings):
    first = ex.explain(model, drawings[1])
    second = ex.explain(model, drawings[1])
    assert first.to_json() == second.to_json()
    np.testing.assert_array_equal(first.attributions, second.attributions)
    np.testing.assert_array_equal(first.overlay(), second.overlay())


def test_explain_leaves_the_model_as_it_was(model, drawings):
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    expected = ex.explain(model, drawings[7]).to_json()
    with torch.no_grad():  # as a caller (or a Gradio handler) might be
        assert ex.explain(model, drawings[7]).to_json() == expected
    with torch.inference_mode():
        assert ex.explain(model, drawings[7]).to_json() == expected
    assert not model.training
    assert all(parameter.grad is None for parameter in model.parameters())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # BatchNorm statistics included


def test_explain_serves_threads_sharing_one_model(mlp, drawings):
    expected = {digit: ex.explain(mlp, image).to_json() for digit, image in drawings.items()}
    results, errors = {}, []

    def worker(index: int) -> None:
        digit = (1, 7)[index % 2]
        try:
            for _ in range(3):
                results[index] = ex.explain(mlp, drawings[digit]).to_json()
        except Exception as error:  # reported below: a thread cannot fail the test itself
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for index, payload in results.items():
        assert payload == expected[(1, 7)[index % 2]]


def test_a_blank_drawing_gets_no_answer_and_zero_saliency(model):
    """Choice: a blank input is explained as blank (no label, all-zero maps), not an error."""
    for blank in (
        np.zeros((28, 28), dtype=np.float32),
        canvas_to_mnist(Image.new("RGB", (300, 300), "white")),  # a Preprocessed, blank
    ):
        result = ex.explain(model, blank)
        assert result.is_blank and result.label is None and result.runner_up is None
        assert not result.attributions.any() and not result.gradient.any()
        assert not result.probs.any()
        assert result.overlay().shape == (224, 224, 3)
        assert result.runner_up_overlay() is None
        payload = json.loads(json.dumps(result.to_json()))
        assert payload["is_blank"] and payload["label"] is None
    # The path from blank to blank has no length: integrated gradients are exactly zero.
    zeros = ex.integrated_gradients(model, np.zeros((28, 28), dtype=np.float32), 3)
    assert not zeros.attributions.any() and zeros.completeness_error == 0.0


def test_overlay_is_red_toward_blue_away_and_enlarged_by_whole_pixels(drawings):
    image = drawings[7]
    saliency = np.zeros((28, 28), dtype=np.float32)
    saliency[5, 5], saliency[20, 20] = 1.0, -1.0
    overlay = ex.saliency_overlay(image, saliency, scale=4)
    assert overlay.shape == (112, 112, 3) and overlay.dtype == np.uint8
    blocks = overlay.reshape(28, 4, 28, 4, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # each input pixel is one flat 4x4 block
    red, blue = blocks[5, 0, 5, 0], blocks[20, 0, 20, 0]
    assert red[0] > 150 and red[0] > red[2] + 100
    assert blue[2] > 150 and blue[2] > blue[0] + 100
    plain = ex.saliency_overlay(image, np.zeros((28, 28)), scale=1)
    assert (plain[..., 0] == plain[..., 1]).all() and (plain[..., 1] == plain[..., 2]).all()
    assert plain[0, 0].tolist() == [255, 255, 255]  # background stays white
    ink = np.unravel_index(np.argmax(image), image.shape)
    assert plain[ink][0] < 128  # full ink is dark grey


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (np.zeros((10, 10)), "28x28"),
        (np.full((28, 28), 2.0), "[0, 1]"),
        (np.full((28, 28), np.nan), "[0, 1]"),
    ],
)
def test_bad_input_gets_a_one_line_error(mlp, bad, needle):
    with pytest.raises(DigitnetError) as error:
        ex.explain(mlp, bad)
    assert_one_line(str(error.value), needle)


def test_bad_target_and_training_mode_get_one_line_errors(drawings):
    model = load_checkpoint("mlp")[0]  # its own copy: this test switches it to training
    with pytest.raises(DigitnetError) as error:
        ex.input_gradient(model, drawings[7], target=10)
    assert_one_line(str(error.value), "0-9")
    model.train()
    with pytest.raises(DigitnetError) as error:
        ex.explain(model, drawings[7])
    assert_one_line(str(error.value), "eval")

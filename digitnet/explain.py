"""Why the model gave its answer: saliency, occlusion, first-layer units and feature maps.

Every function takes a model in eval mode and the 28x28 input it sees (float in [0, 1],
as ``canvas_to_mnist`` makes it) and returns NumPy arrays or small dataclasses. None of
them changes the model: gradients are taken with ``torch.autograd.grad`` with respect to
the input only, so no ``.grad`` is ever left on a parameter and one model can serve many
requests at once (a Gradio server's threads).

Signs follow one rule everywhere: positive (drawn red) pushes toward the class, negative
(drawn blue) pushes away from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from digitnet.calibration import calibration_of
from digitnet.data import IMAGE_SIZE, NUM_CLASSES
from digitnet.errors import DigitnetError
from digitnet.model import CNN, MLP
from digitnet.predict import predict_logits
from digitnet.preprocess import Preprocessed

# Integrated gradients: start with this many equal steps, then split the steps that miss
# until the attributions sum to logit(x) - logit(baseline) within COMPLETENESS_TOLERANCE.
# Measured on 30 canvas-like drawings: 32 steps refined reach 1% in a median of 37 (MLP)
# and 38 (CNN) gradients, at most 72, and land within 2-3% (L1) of a 2,048-step sum.
IG_STEPS = 32
IG_MAX_STEPS = 512  # gradient evaluations at most; completeness may then miss 1%
REFINE_SPLIT = 2  # an interval that misses is split in two
COMPLETENESS_TOLERANCE = 0.01  # relative to |logit(x) - logit(baseline)| ...
# ... or to this many logits when the change is smaller: 1% of a class's near-zero change
# (-0.004 for a 0 on a drawn 7) took the CNN all 512 steps and still missed.
COMPLETENESS_FLOOR = 1.0
OCCLUSION_PATCH = 4  # pixels; 28 / 4 = a 7x7 grid of patches
TILE_COUNT = 64  # first-layer weight tiles shown for an MLP, the largest by weight norm
ACTIVE_UNIT_COUNT = 8  # most active first-layer units shown for one drawing
OVERLAY_SCALE = 8  # each of the 28x28 pixels becomes an 8x8 block: 224x224 for display
JSON_DECIMALS = 4

# Overlay colours (RGB): the drawing in grey on white, saliency blended over it.
BACKGROUND_RGB = np.array([255, 255, 255], dtype=np.float32)
INK_RGB = np.array([90, 90, 90], dtype=np.float32)
TOWARD_RGB = np.array([214, 39, 40], dtype=np.float32)  # red: pushes toward the class
AWAY_RGB = np.array([31, 119, 180], dtype=np.float32)  # blue: pushes away from it
MAX_OVERLAY_ALPHA = 0.9  # the strongest saliency still lets the stroke show through
SALIENCY_PERCENTILE = 99  # colour scale: one extreme pixel should not wash out the rest
GRID_GAP_RGB = (200, 200, 200)  # the lines between tiles in a grid, visible on white tiles


# ---------------------------------------------------------------------------
# Inputs, checks and the one autograd helper everything builds on


def as_input(image: np.ndarray | torch.Tensor | Preprocessed) -> np.ndarray:
    """The model's input as (28, 28) float32 in [0, 1]; a one-line DigitnetError otherwise."""
    if isinstance(image, Preprocessed):
        image = image.image
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    array = np.asarray(image, dtype=np.float32)
    if array.size != IMAGE_SIZE * IMAGE_SIZE:
        raise DigitnetError(
            f"explain needs the 28x28 model input (784 values), got shape {array.shape}; "
            f"run the drawing through canvas_to_mnist first"
        )
    array = array.reshape(IMAGE_SIZE, IMAGE_SIZE)
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise DigitnetError("explain needs pixel values in [0, 1] (1 = ink); rescale the input")
    return array


def is_blank(image: np.ndarray) -> bool:
    """No ink at all: the blank baseline itself, nothing to explain."""
    return not np.any(image)


def _check_model(model: nn.Module) -> None:
    if model.training:
        # Switching modes here would change a model other threads may be using.
        raise DigitnetError(
            "explain needs a model in eval mode (call model.eval() once after loading)"
        )


def _check_class(target: int, name: str = "target") -> int:
    if not 0 <= int(target) < NUM_CLASSES:
        raise DigitnetError(f"{name} must be a class 0-9, got {target}")
    return int(target)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _logits(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """Logits (B, 10) for (B, 28, 28) inputs, through predict's path; float64 for exact sums."""
    return predict_logits(model, images).double().numpy()


def _gradients(
    model: nn.Module, images: np.ndarray, class_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (B, 10) and d(class_weights[b] . logits[b]) / d images[b], (B, 28, 28).

    One batched forward and backward. In eval mode the rows do not interact, so each
    row's gradient is that of its own objective. Gradients are taken with respect to the
    input only (``autograd.grad``), so the parameters' ``.grad`` stay untouched.
    """
    device = _device(model)
    # The caller may be inside no_grad or inference_mode; gradients are needed here.
    with torch.inference_mode(False), torch.enable_grad():
        batch = torch.as_tensor(images, dtype=torch.float32, device=device).unsqueeze(1)
        batch.requires_grad_(True)  # (B, 1, 28, 28)
        logits = model(batch)  # (B, 10)
        weights = torch.as_tensor(class_weights, dtype=logits.dtype, device=device)
        (grads,) = torch.autograd.grad((logits * weights).sum(), batch)
    return logits.detach().double().cpu().numpy(), grads.squeeze(1).double().cpu().numpy()


def _one_hot(target: int, rows: int = 1) -> np.ndarray:
    weights = np.zeros((rows, NUM_CLASSES))
    weights[:, target] = 1.0
    return weights


# ---------------------------------------------------------------------------
# Answers and saliency


def class_probs(model: nn.Module, image) -> np.ndarray:
    """The ten class probabilities (10,) for one input."""
    _check_model(model)
    logits = _logits(model, as_input(image)[None])[0]
    return _probs(model, logits)


def _probs(model: nn.Module, logits: np.ndarray) -> np.ndarray:
    """The model's calibrated probabilities for ``logits``, as every answer shows them."""
    scaled = logits / calibration_of(model).temperature
    shifted = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def predicted_class(model: nn.Module, image) -> int:
    return int(class_probs(model, image).argmax())


def input_gradient(model: nn.Module, image, target: int | None = None) -> np.ndarray:
    """d logit[target] / d input, (28, 28) float32; target defaults to the predicted class.

    Positive where adding ink would raise the class's logit, anywhere on the 28x28.
    """
    _check_model(model)
    array = as_input(image)
    target = predicted_class(model, array) if target is None else _check_class(target)
    _, grads = _gradients(model, array[None], _one_hot(target))
    return grads[0].astype(np.float32)


@dataclass(frozen=True)
class IntegratedGradients:
    """Integrated gradients of one class from the blank (all-zero) input."""

    attributions: np.ndarray  # (28, 28) float32; sums to logit - baseline_logit
    target: int
    logit: float  # the class's logit for the input
    baseline_logit: float  # ... and for the blank baseline
    steps: int  # gradient evaluations along the path

    @property
    def completeness_error(self) -> float:
        """|sum(attributions) - (logit - baseline_logit)| / max(|that change|, 1 logit)."""
        change = self.logit - self.baseline_logit
        gap = abs(float(self.attributions.sum(dtype=np.float64)) - change)
        return gap / max(abs(change), COMPLETENESS_FLOOR)


def integrated_gradients(
    model: nn.Module,
    image,
    target: int | None = None,
    *,
    steps: int = IG_STEPS,
    max_steps: int = IG_MAX_STEPS,
    tolerance: float = COMPLETENESS_TOLERANCE,
) -> IntegratedGradients:
    """Integrated gradients (Sundararajan et al. 2017) from a blank baseline.

    The path integral is a midpoint sum over ``steps`` equal intervals (one batch), then
    refined where it is wrong until the attributions sum to logit(x) - logit(blank) within
    ``tolerance`` of that change (of 1 logit if the change is smaller) or ``max_steps``
    gradients were taken. A ReLU network's logit is
    piecewise linear along the path, so an interval's midpoint gradient predicts the
    logit change across it exactly unless a ReLU switches inside; the forward logits at
    the interval's ends show the miss, and the intervals that miss most are split.
    (Doubling uniform steps instead needed up to 512 steps for the CNN.)
    Pixels with no ink get exactly zero: the path from blank never changes them.
    """
    _check_model(model)
    array = as_input(image)
    target = predicted_class(model, array) if target is None else _check_class(target)
    direction = array.astype(np.float64)  # the input minus the blank baseline
    edges = np.linspace(0.0, 1.0, steps + 1)
    lows, highs = np.zeros(0), np.zeros(0)  # the intervals evaluated so far
    edge_logits: dict[float, float] = {}
    weighted_grads = np.zeros((0, IMAGE_SIZE, IMAGE_SIZE))  # each interval's width * gradient
    misses = np.zeros(0)  # each interval's predicted minus actual logit change
    evaluations = 0
    new_lows, new_highs = edges[:-1], edges[1:]  # the intervals to evaluate next
    while True:
        # Forward logits at the new interval ends, gradients at the new midpoints.
        new_edges = np.setdiff1d(np.concatenate([new_lows, new_highs]), list(edge_logits))
        path_logits = _logits(model, new_edges[:, None, None] * array)[:, target]
        edge_logits.update(zip(new_edges.tolist(), path_logits.tolist()))
        middles = (new_lows + new_highs) / 2
        _, grads = _gradients(model, middles[:, None, None] * array, _one_hot(target, len(middles)))
        evaluations += len(middles)
        widths = new_highs - new_lows
        new_weighted = grads * widths[:, None, None]
        actual = np.array(
            [
                edge_logits[hi] - edge_logits[lo]
                for lo, hi in zip(new_lows.tolist(), new_highs.tolist())
            ]
        )
        new_misses = (new_weighted * direction).sum(axis=(1, 2)) - actual
        lows, highs = np.concatenate([lows, new_lows]), np.concatenate([highs, new_highs])
        weighted_grads = np.concatenate([weighted_grads, new_weighted])
        misses = np.concatenate([misses, new_misses])
        change = edge_logits[1.0] - edge_logits[0.0]
        # The intervals holding half the total miss, worst first, are split next.
        order = np.argsort(-np.abs(misses), kind="stable")
        cumulative = np.cumsum(np.abs(misses[order]))
        worst = order[: int(np.searchsorted(cumulative, cumulative[-1] / 2)) + 1]
        if (
            abs(misses.sum()) <= tolerance * max(abs(change), COMPLETENESS_FLOOR)
            or evaluations + REFINE_SPLIT * len(worst) > max_steps
        ):
            break
        fractions = np.arange(REFINE_SPLIT + 1) / REFINE_SPLIT
        parts = lows[worst, None] + (highs - lows)[worst, None] * fractions  # (W, SPLIT + 1)
        parts[:, -1] = highs[worst]  # exactly the old end, whose logit is known
        new_lows, new_highs = parts[:, :-1].ravel(), parts[:, 1:].ravel()
        keep = np.ones(len(lows), dtype=bool)
        keep[worst] = False
        lows, highs = lows[keep], highs[keep]
        weighted_grads, misses = weighted_grads[keep], misses[keep]
    attributions = (weighted_grads.sum(axis=0) * direction).astype(np.float32)
    return IntegratedGradients(
        attributions, target, edge_logits[1.0], edge_logits[0.0], evaluations
    )


@dataclass(frozen=True)
class Occlusion:
    """How much the class's probability drops when each patch is hidden (set to blank)."""

    drops: np.ndarray  # (28 / patch, 28 / patch) float32; positive = the patch mattered
    target: int
    prob: float  # the class's probability with nothing hidden
    patch: int

    @property
    def pixel_map(self) -> np.ndarray:
        """The drops spread over the 28x28, each patch's value on its pixels."""
        return np.kron(self.drops, np.ones((self.patch, self.patch), dtype=np.float32))


def occlusion(
    model: nn.Module, image, target: int | None = None, *, patch: int = OCCLUSION_PATCH
) -> Occlusion:
    """Hide each ``patch`` x ``patch`` square in turn (one batch) and record the drop."""
    _check_model(model)
    if patch <= 0 or IMAGE_SIZE % patch:
        raise DigitnetError(f"the occlusion patch must divide 28, got {patch}")
    array = as_input(image)
    target = predicted_class(model, array) if target is None else _check_class(target)
    cells = IMAGE_SIZE // patch
    hidden = np.repeat(array[None], cells * cells + 1, axis=0)  # row 0: nothing hidden
    for index in range(cells * cells):
        row, col = divmod(index, cells)
        hidden[index + 1, row * patch : (row + 1) * patch, col * patch : (col + 1) * patch] = 0.0
    probs = _probs(model, _logits(model, hidden))[:, target]
    drops = (probs[0] - probs[1:]).reshape(cells, cells).astype(np.float32)
    return Occlusion(drops, target, float(probs[0]), patch)


@dataclass(frozen=True)
class RunnerUp:
    """The second most likely class, and what would move the answer toward it."""

    label: int
    prob: float
    # d(logit[runner-up] - logit[answer]) / d input, (28, 28): red where more ink would
    # favour the runner-up over the answer, blue where it would favour the answer.
    saliency: np.ndarray


def runner_up(model: nn.Module, image) -> RunnerUp:
    """The second class by probability, its probability and its saliency against the answer."""
    _check_model(model)
    array = as_input(image)
    probs = class_probs(model, array)
    answer, second = (int(c) for c in np.argsort(-probs, kind="stable")[:2])
    weights = np.zeros((1, NUM_CLASSES))
    weights[0, second], weights[0, answer] = 1.0, -1.0
    _, grads = _gradients(model, array[None], weights)
    return RunnerUp(second, float(probs[second]), grads[0].astype(np.float32))


# ---------------------------------------------------------------------------
# Inside the model: the MLP's first layer, the CNN's feature maps


def _first_layer(model: nn.Module) -> nn.Linear:
    if not isinstance(model, MLP):
        raise DigitnetError(
            f"first-layer tiles are for the MLP; this model is a {type(model).__name__} "
            f"(use feature_maps for a CNN)"
        )
    return model.fc1


@dataclass(frozen=True)
class WeightTiles:
    """First-layer units of an MLP, each unit's 784 input weights as a 28x28 tile."""

    units: np.ndarray  # (K,) int, indices into fc1's outputs
    tiles: np.ndarray  # (K, 28, 28) float32: positive weights = ink there excites the unit
    norms: np.ndarray  # (K,) float32, L2 norm of each unit's weights


def first_layer_tiles(model: nn.Module, count: int = TILE_COUNT) -> WeightTiles:
    """The ``count`` first-layer units with the largest weight norm, largest first."""
    weights = _first_layer(model).weight.detach().float().cpu().numpy()  # (hidden, 784)
    norms = np.linalg.norm(weights, axis=1)
    units = np.argsort(-norms, kind="stable")[:count]
    tiles = weights[units].reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return WeightTiles(units, tiles, norms[units].astype(np.float32))


@dataclass(frozen=True)
class ActiveUnits:
    """The first-layer units an input excites most, with what each one looks for."""

    units: np.ndarray  # (K,) int
    activations: np.ndarray  # (K,) float32, ReLU(fc1(x)) of each unit, largest first
    tiles: np.ndarray  # (K, 28, 28) float32, each unit's input weights


@torch.no_grad()
def most_active_units(model: nn.Module, image, count: int = ACTIVE_UNIT_COUNT) -> ActiveUnits:
    """The ``count`` first-layer units with the highest activation for this input."""
    _check_model(model)
    layer = _first_layer(model)
    array = as_input(image)
    batch = torch.as_tensor(array.reshape(1, -1), device=layer.weight.device)
    activations = torch.relu(layer(batch))[0].double().cpu().numpy()  # (hidden,)
    units = np.argsort(-activations, kind="stable")[:count]
    weights = layer.weight.detach()[torch.as_tensor(units, device=layer.weight.device)]
    tiles = weights.float().cpu().numpy().reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return ActiveUnits(units, activations[units].astype(np.float32), tiles)


@dataclass(frozen=True)
class FeatureMaps:
    """What the CNN's first two blocks pass on: (channels, size, size) each, after ReLU+pool."""

    block1: np.ndarray  # (32, 14, 14) float32 for the shipped CNN
    block2: np.ndarray  # (64, 7, 7) float32

    def strongest(self, block: int, count: int) -> np.ndarray:
        """Indices of the ``count`` channels of block 1 or 2 with the highest mean activation."""
        maps = self.block1 if block == 1 else self.block2
        return np.argsort(-maps.mean(axis=(1, 2)), kind="stable")[:count]


@torch.no_grad()
def feature_maps(model: nn.Module, image) -> FeatureMaps:
    """The CNN's feature maps after each of its two blocks for one input."""
    _check_model(model)
    if not isinstance(model, CNN):
        raise DigitnetError(
            f"feature maps are for the CNN; this model is a {type(model).__name__} "
            f"(use first_layer_tiles for an MLP)"
        )
    batch = torch.as_tensor(as_input(image), device=_device(model))[None, None]
    first = model.features[0](batch)
    second = model.features[1](first)
    return FeatureMaps(first[0].float().cpu().numpy(), second[0].float().cpu().numpy())


# ---------------------------------------------------------------------------
# Images for display


def _enlarge(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel becomes a scale x scale block: crisp pixels, as the model sees them."""
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


def saliency_overlay(image, saliency: np.ndarray, *, scale: int = OVERLAY_SCALE) -> np.ndarray:
    """The 28x28 drawing in grey with saliency over it: red toward the class, blue away.

    Returns (28*scale, 28*scale, 3) uint8. Colour strength is |saliency| relative to its
    99th-percentile magnitude, so a single extreme pixel does not wash out the rest; an
    all-zero saliency leaves the plain drawing.
    """
    array = as_input(image)
    saliency = np.asarray(saliency, dtype=np.float32).reshape(IMAGE_SIZE, IMAGE_SIZE)
    if scale < 1:
        raise DigitnetError(f"the overlay scale must be a whole number >= 1, got {scale}")
    base = BACKGROUND_RGB + array[..., None] * (INK_RGB - BACKGROUND_RGB)  # (28, 28, 3)
    magnitude = np.abs(saliency)
    reference = (
        float(np.percentile(magnitude[magnitude > 0], SALIENCY_PERCENTILE, method="lower"))
        if np.any(magnitude > 0)
        else 0.0
    )
    if reference > 0:
        alpha = MAX_OVERLAY_ALPHA * np.clip(magnitude / reference, 0.0, 1.0)[..., None]
        colour = np.where(saliency[..., None] > 0, TOWARD_RGB, AWAY_RGB)
        base = base * (1.0 - alpha) + colour * alpha
    return _enlarge(np.rint(base).astype(np.uint8), scale)


def tile_grid(tiles: np.ndarray, *, columns: int = 8, scale: int = 3, gap: int = 1) -> np.ndarray:
    """Weight tiles (K, 28, 28) as one uint8 RGB grid: red positive, blue negative, white zero.

    Each tile is scaled by its own largest |weight|, so every unit's pattern is readable.
    """
    tiles = np.asarray(tiles, dtype=np.float32)
    count, height, width = tiles.shape
    rows = max(1, -(-count // columns))
    cell_h, cell_w = height * scale + gap, width * scale + gap
    grid = np.full((rows * cell_h - gap, columns * cell_w - gap, 3), GRID_GAP_RGB, dtype=np.uint8)
    for index, tile in enumerate(tiles):
        peak = float(np.abs(tile).max())
        signed = tile / peak if peak > 0 else tile
        strength = np.abs(signed)[..., None]
        colour = np.where(signed[..., None] > 0, TOWARD_RGB, AWAY_RGB)
        pixels = BACKGROUND_RGB * (1.0 - strength) + colour * strength
        row, col = divmod(index, columns)
        top, left = row * cell_h, col * cell_w
        grid[top : top + height * scale, left : left + width * scale] = _enlarge(
            np.rint(pixels).astype(np.uint8), scale
        )
    return grid


def feature_map_grid(
    maps: np.ndarray, *, columns: int = 8, scale: int = 4, gap: int = 1
) -> np.ndarray:
    """Feature maps (C, H, W) as one uint8 RGB grid, white = 0, black = the map's maximum."""
    maps = np.asarray(maps, dtype=np.float32)
    peaks = maps.reshape(len(maps), -1).max(axis=1)
    normalised = maps / np.where(peaks > 0, peaks, 1.0)[:, None, None]
    greys = np.rint(255.0 * (1.0 - np.clip(normalised, 0.0, 1.0))).astype(np.uint8)
    count, height, width = greys.shape
    rows = max(1, -(-count // columns))
    cell_h, cell_w = height * scale + gap, width * scale + gap
    grid = np.full((rows * cell_h - gap, columns * cell_w - gap, 3), GRID_GAP_RGB, dtype=np.uint8)
    for index, grey in enumerate(greys):
        row, col = divmod(index, columns)
        top, left = row * cell_h, col * cell_w
        grid[top : top + height * scale, left : left + width * scale] = _enlarge(grey, scale)[
            ..., None
        ]
    return grid


# ---------------------------------------------------------------------------
# Everything a "Why" panel or an API needs, in one call


@dataclass(frozen=True)
class Explanation:
    """Why one input got its answer. A blank input has no answer and all-zero saliency."""

    architecture: str  # "mlp", "cnn" or the model's class name
    image: np.ndarray  # (28, 28) the model's input
    is_blank: bool
    probs: np.ndarray  # (10,); zeros when blank (a blank is never guessed)
    label: int | None
    saliency: IntegratedGradients | None  # for ``label``; None when blank
    gradient: np.ndarray  # (28, 28) input gradient of ``label``; zeros when blank
    occlusion: Occlusion | None
    runner_up: RunnerUp | None
    active_units: ActiveUnits | None  # MLP only
    feature_maps: FeatureMaps | None  # CNN only

    @property
    def attributions(self) -> np.ndarray:
        """The integrated gradients (28, 28), zeros when blank."""
        if self.saliency is None:
            return np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        return self.saliency.attributions

    def overlay(self, *, scale: int = OVERLAY_SCALE) -> np.ndarray:
        """The answer's saliency over the drawing, uint8 RGB (28*scale, 28*scale, 3)."""
        return saliency_overlay(self.image, self.attributions, scale=scale)

    def runner_up_overlay(self, *, scale: int = OVERLAY_SCALE) -> np.ndarray | None:
        """The runner-up's saliency against the answer, over the drawing; None when blank."""
        if self.runner_up is None:
            return None
        return saliency_overlay(self.image, self.runner_up.saliency, scale=scale)

    def to_json(self, decimals: int = JSON_DECIMALS, tiles: bool = True) -> dict:
        """A JSON-ready dict (``json.dumps`` takes it): arrays as nested lists, rounded.

        ``tiles=False`` leaves out the active units' weight tiles: they are the model's own
        first-layer weights (``first_layer_tiles``), two thirds of the JSON, and the same
        for every drawing, so an API answer need not carry them each time.
        """

        def rounded(array: np.ndarray) -> list:
            return np.round(np.asarray(array, dtype=np.float64), decimals).tolist()

        result: dict = {
            "architecture": self.architecture,
            "is_blank": self.is_blank,
            "label": self.label,
            "probs": rounded(self.probs),
            "image": rounded(self.image),
            "integrated_gradients": rounded(self.attributions),
            "gradient": rounded(self.gradient),
        }
        if self.saliency is not None:
            result["completeness_error"] = round(self.saliency.completeness_error, 6)
            result["ig_steps"] = self.saliency.steps
        if self.occlusion is not None:
            result["occlusion"] = {
                "patch": self.occlusion.patch,
                "prob": round(self.occlusion.prob, decimals),
                "drops": rounded(self.occlusion.drops),
            }
        if self.runner_up is not None:
            result["runner_up"] = {
                "label": self.runner_up.label,
                "prob": round(self.runner_up.prob, decimals),
                "saliency": rounded(self.runner_up.saliency),
            }
        if self.active_units is not None:
            result["active_units"] = {
                "units": self.active_units.units.tolist(),
                "activations": rounded(self.active_units.activations),
            }
            if tiles:
                result["active_units"]["tiles"] = rounded(self.active_units.tiles)
        if self.feature_maps is not None:
            result["feature_maps"] = {
                "block1": rounded(self.feature_maps.block1),
                "block2": rounded(self.feature_maps.block2),
            }
        return result


def architecture_of(model: nn.Module) -> str:
    if isinstance(model, MLP):
        return "mlp"
    if isinstance(model, CNN):
        return "cnn"
    return type(model).__name__


def explain(model: nn.Module, image) -> Explanation:
    """Saliency, occlusion, runner-up and the model's inside for one 28x28 input.

    ``image`` is the model input (28, 28) in [0, 1] or a ``Preprocessed``; a blank
    input (a ``Preprocessed`` marked blank, or no ink at all) gets an Explanation with
    no label and zero saliency rather than a guess.
    """
    _check_model(model)
    blank = image.is_blank if isinstance(image, Preprocessed) else False
    array = as_input(image)
    blank = blank or is_blank(array)
    architecture = architecture_of(model)
    if blank:
        zeros = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        return Explanation(
            architecture,
            array,
            True,
            np.zeros(NUM_CLASSES, dtype=np.float32),
            None,
            None,
            zeros,
            None,
            None,
            None,
            None,
        )
    probs = class_probs(model, array)
    label = int(probs.argmax())
    return Explanation(
        architecture=architecture,
        image=array,
        is_blank=False,
        probs=probs.astype(np.float32),
        label=label,
        saliency=integrated_gradients(model, array, label),
        gradient=input_gradient(model, array, label),
        occlusion=occlusion(model, array, label),
        runner_up=runner_up(model, array),
        active_units=most_active_units(model, array) if isinstance(model, MLP) else None,
        feature_maps=feature_maps(model, array) if isinstance(model, CNN) else None,
    )

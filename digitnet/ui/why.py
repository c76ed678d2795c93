"""The "Why" panel, the dashboard's "Look inside" and the ``explain`` API endpoint.

Self-contained Gradio pieces over ``digitnet.explain``: each ``build_*`` creates its
components inside the caller's ``gr.Blocks`` and returns them (or wires its own event);
the ``*_outputs`` functions are plain functions of plain values, tested directly.
The Why panel runs as its own event when a stroke ends, never in the answer's path: the
CNN's explanation takes ~0.25 s of CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import gradio as gr
import numpy as np
from torch import nn

from digitnet.errors import DigitnetError
from digitnet.explain import (
    TILE_COUNT,
    Explanation,
    explain,
    feature_map_grid,
    first_layer_tiles,
    saliency_overlay,
    tile_grid,
)
from digitnet.model import CNN, MLP
from digitnet.numbers import Reading
from digitnet.predict import preprocess_image_file
from digitnet.preprocess import Preprocessed, canvas_to_mnist
from digitnet.ui.inline_image import inline_image

ACTIVE_TILE_SCALE = 4  # the 8 most active units' 28x28 tiles, each 112 px wide
FEATURE_MAP_COUNT = 16  # strongest channels shown per CNN block
FEATURE_MAP_SCALE = 6  # block 1's 14x14 maps become 84 px, block 2's 7x7 become 42 px
LOOK_INSIDE_TILE_SCALE = 3  # 64 tiles of 28x28 in 8 columns: ~680 px wide
FILTER_SCALE = 24  # the CNN's 3x3 first filters, 72 px each: each weight a clear square
FILTER_GAP = 12  # px of white between filters, so 32 filters read as 32, not one mosaic
FILTER_OUTLINE_RGB = (190, 190, 190)  # a 1-px frame: a filter's near-zero (white) edge ends
OVERLAY_HEIGHT = 270  # px: the 224 px overlays whole, below their labels (two lines narrow)
INSIDE_HEIGHT = 320
LOOK_INSIDE_HEIGHT = 480
EXPLAIN_CONCURRENCY = 2  # explanations at once; two cores serve the answers too

WHY_INTRO = (
    "**Why this answer.** **Red**: ink here made it say its answer. **Blue**: ink here "
    "argued against it. The stronger the colour, the more that pixel counted."
)
# For the curious, folded: how the colours are computed.
WHY_METHOD = (
    "<details><summary>How the colours are found</summary>Integrated gradients over the "
    "28×28 the model sees: each pixel's share of the answer, going from a blank input to "
    "your drawing.</details>"
)
RUNNER_UP_FLOOR = 0.25  # runner-up colour under this share of its strongest pixel is noise
# A colour scale under each map (styled in app.css): what its ends mean, in words.
SCALE_HTML = (
    '<div class="why-scale"><span>argued against</span>'
    '<span class="why-scale-bar" aria-hidden="true"></span><span>made it say so</span></div>'
)
RUNNER_UP_SCALE_HTML = (
    '<div class="why-scale"><span>for the answer</span>'
    '<span class="why-scale-bar" aria-hidden="true"></span><span>for the runner-up</span></div>'
)
WHY_PROMPT = "Draw a digit to see why the model answers what it does."
LOOK_INSIDE_MLP = (
    "### Look inside: what the first layer looks for\n"
    "Each tile is one of the first layer's 512 units (the {count} with the strongest "
    "weights), drawn over the 28×28 input: **red** where ink *excites* the unit, **blue** "
    "where ink *silences* it. A unit fires when your drawing covers its red and avoids its "
    "blue: most look for a stroke in one place, or for ink here but not there."
)
LOOK_INSIDE_CNN = (
    "### Look inside: the CNN's first filters\n"
    "A CNN has no whole-image tiles: its first layer slides {count} small 3×3 filters over "
    "the drawing (below, **red** = positive weight, **blue** = negative). Each finds one "
    "kind of edge or stroke anywhere in the image; the Why panel shows where they fired."
)
LOOK_INSIDE_OTHER = "### Look inside\nNo first-layer view for a {name}."


# ---------------------------------------------------------------------------
# The "Why" panel


@dataclass(frozen=True)
class WhySaliency:
    """The panel's half beside the 28×28 input (:func:`build_why_beside_input`)."""

    overlay: gr.Image
    runner_up_text: gr.Markdown
    runner_up_overlay: gr.Image


@dataclass(frozen=True)
class WhyInside:
    """The panel's half under the input row (:func:`build_why_inside`)."""

    text: gr.Markdown
    image: gr.Image


@dataclass(frozen=True)
class WhyPanel:
    """The panel's two halves, which sit apart on the page but are filled together."""

    saliency: WhySaliency
    inside: WhyInside

    @property
    def outputs(self) -> list:
        """In the order ``why_outputs`` fills them."""
        return [
            self.saliency.overlay,
            self.saliency.runner_up_text,
            self.saliency.runner_up_overlay,
            self.inside.text,
            self.inside.image,
        ]


def pixel_image(label: str, elem_id: str, height: int, inline: bool = True, **kwargs) -> gr.Image:
    """An output image of the panel or Look inside: shown, not edited or downloaded. The
    images come enlarged by whole pixels already; png keeps their colours crisp (webp would
    blur them). ``inline`` images (one per drawing) travel in the answer and write nothing to
    disk; the others (one per model) are cached files."""
    image_class = inline_image if inline else gr.Image
    return image_class(
        label=label,
        elem_id=elem_id,
        height=height,
        interactive=False,
        buttons=[],
        format="png",
        elem_classes=["label-above"],  # app.css: the label above the image, not over it
        **kwargs,
    )


def build_why_beside_input() -> WhySaliency:
    """The panel's saliency half, meant to sit beside the 28×28 input: the overlay for the
    answer, the runner-up's overlay and its line."""
    with gr.Column(scale=4, min_width=280, elem_id="why"):
        gr.Markdown(WHY_INTRO)
        with gr.Row():
            with gr.Column(min_width=140):
                overlay = pixel_image("What made it say its answer", "why_overlay", OVERLAY_HEIGHT)
                gr.HTML(SCALE_HTML, elem_classes=["why-scale-row"])
            with gr.Column(min_width=140):
                runner_up_overlay = pixel_image(
                    "What would make it the runner-up", "why_runner_up_overlay", OVERLAY_HEIGHT
                )
                gr.HTML(RUNNER_UP_SCALE_HTML, elem_classes=["why-scale-row"])
        runner_up_text = gr.Markdown(WHY_PROMPT, elem_id="why_runner_up")
        gr.Markdown(WHY_METHOD, elem_classes=["why-method"])
    return WhySaliency(overlay, runner_up_text, runner_up_overlay)


def build_why_inside() -> WhyInside:
    """The panel's second half: the most active first-layer units or the feature maps."""
    with gr.Column(elem_id="why-inside-column"):
        inside_text = gr.Markdown(elem_id="why_inside_text")
        inside_image = pixel_image("Inside the model", "why_inside", INSIDE_HEIGHT)
    return WhyInside(inside_text, inside_image)


def runner_up_markdown(explanation: Explanation) -> str:
    """The runner-up, its probability and how to read its saliency."""
    second = explanation.runner_up
    return (
        f"Red: ink here made it say {explanation.label}. Blue: ink here argued against.  \n"
        f"**The runner-up and what would change it:** **{second.label}** at "
        f"{100 * second.prob:.1f}% (the answer, **{explanation.label}**, has "
        f"{100 * explanation.probs[explanation.label]:.1f}%). On the right, **red** is where "
        f"ink would tip it to {second.label}, **blue** where ink keeps it "
        f"{explanation.label}."
    )


def inside_markdown(explanation: Explanation) -> str:
    """How to read the picture inside the model; unit numbers folded for the curious."""
    if explanation.active_units is not None:
        units = explanation.active_units
        listed = ", ".join(
            f"#{unit} ({activation:.1f})"
            for unit, activation in zip(units.units.tolist(), units.activations.tolist())
        )
        return (
            f"**Inside the model: the {len(units.units)} first-layer units your drawing "
            f"wakes up most.** Each tile is what one unit looks for: red where ink wakes it, "
            f"blue where ink quiets it.\n\n<details><summary>Unit numbers and how strongly "
            f"each fired</summary>{listed}</details>"
        )
    return (
        f"**Inside the model: what the CNN's filters found in your drawing** (its strongest "
        f"feature maps). Top: edges and strokes its first block found; bottom: parts of "
        f"digits its second block found. Dark: found here.\n\n<details><summary>Which maps"
        f"</summary>The {FEATURE_MAP_COUNT} strongest of block 1's channels (14×14) and of "
        f"block 2's (7×7).</details>"
    )


def inside_image(explanation: Explanation) -> np.ndarray | None:
    """The most active units' tiles (MLP) or the strongest feature maps (CNN), uint8 RGB."""
    if explanation.active_units is not None:
        return tile_grid(explanation.active_units.tiles, columns=4, scale=ACTIVE_TILE_SCALE)
    maps = explanation.feature_maps
    if maps is None:
        return None
    first = feature_map_grid(
        maps.block1[maps.strongest(1, FEATURE_MAP_COUNT)], columns=8, scale=FEATURE_MAP_SCALE
    )
    second = feature_map_grid(
        maps.block2[maps.strongest(2, FEATURE_MAP_COUNT)],
        columns=8,
        scale=2 * FEATURE_MAP_SCALE,  # 7x7 maps as wide as block 1's 14x14
    )
    width = max(first.shape[1], second.shape[1])
    gap = np.full((8, width, 3), 255, dtype=np.uint8)
    return np.concatenate([_pad_width(first, width), gap, _pad_width(second, width)])


def _pad_width(grid: np.ndarray, width: int) -> np.ndarray:
    extra = width - grid.shape[1]
    return np.pad(grid, ((0, 0), (0, extra), (0, 0)), constant_values=255) if extra else grid


def why_outputs(
    model_name: str, model: nn.Module, preprocessed: Preprocessed, lead: str = ""
) -> tuple:
    """The Why panel's values for one preprocessed drawing, in ``WhyPanel.outputs`` order.

    A blank drawing empties the panel and asks for a digit. ``model_name`` is only shown;
    ``lead`` comes first in the panel's words (which digit of a number it explains).
    """
    explanation = explain(model, preprocessed)
    if explanation.is_blank:
        return None, WHY_PROMPT, None, "", None
    inside = inside_markdown(explanation)
    return (
        explanation.overlay(),
        f"{lead}{model_name} answers **{explanation.label}**. " + runner_up_markdown(explanation),
        runner_up_overlay(explanation),
        inside,
        inside_image(explanation),
    )


def why_for_number(
    model_name: str,
    model: nn.Module,
    preprocessed: Preprocessed,
    number: Reading | None,
    digit: object = 0,
) -> tuple:
    """``why_outputs`` for a drawing, or, where it is a number (``number_answer.number_on_pad``),
    for its digit ``digit`` (0 the first; anything else that is not one of its digits: the
    first), which the panel names."""
    if number is None:
        return why_outputs(model_name, model, preprocessed)
    count = len(number.digits)
    index = int(digit) if isinstance(digit, int | float) and 0 <= digit < count else 0
    lead = (
        f"**Digit {index + 1} of {count}** (choose another by clicking its 28×28). "
        if count > 1
        else ""
    )
    return why_outputs(model_name, model, number.digits[index].prediction.preprocessed, lead)


def runner_up_overlay(explanation: Explanation) -> np.ndarray | None:
    """The runner-up's map with its faint background speckle left out: only the pixels
    where ink would matter (at least ``RUNNER_UP_FLOOR`` of the strongest) keep a colour."""
    if explanation.runner_up is None:
        return None
    saliency = np.asarray(explanation.runner_up.saliency, dtype=np.float32)
    strongest = float(np.abs(saliency).max())
    cleaned = np.where(np.abs(saliency) >= RUNNER_UP_FLOOR * strongest, saliency, 0.0)
    return saliency_overlay(explanation.image, cleaned)


def why_for_drawing(
    models: Mapping[str, nn.Module], image: np.ndarray | None, choice: str | None
) -> tuple:
    """``why_outputs`` for a raw drawing (a canvas array; None = cleared) and a model name."""
    name, model = pick_model(models, choice)
    if image is None:
        return None, WHY_PROMPT, None, "", None
    try:
        return why_outputs(name, model, canvas_to_mnist(image))
    except DigitnetError as error:
        raise gr.Error(str(error)) from None


def pick_model(models: Mapping[str, nn.Module], choice: str | None) -> tuple[str, nn.Module]:
    """(name, model) for a model name; the first model when none is given."""
    if not choice:
        choice = next(iter(models))
    if choice not in models:
        raise gr.Error(f"unknown model {choice!r}; choose one of: {', '.join(models)}")
    return choice, models[choice]


# ---------------------------------------------------------------------------
# The dashboard's "Look inside"


@dataclass(frozen=True)
class LookInside:
    text: gr.Markdown
    image: gr.Image

    @property
    def outputs(self) -> list:
        return [self.text, self.image]


def build_look_inside() -> LookInside:
    """The dashboard's Look inside: a line on how to read it, and the tiles or filters."""
    with gr.Column(elem_id="look_inside"):
        text = gr.Markdown(elem_id="look_inside_text")
        image = pixel_image("First layer", "look_inside_tiles", LOOK_INSIDE_HEIGHT, inline=False)
    return LookInside(text, image)


def filter_mosaic(filters: np.ndarray, columns: int = 8) -> np.ndarray:
    """Small filters (K, h, w) as one uint8 RGB image: each coloured like ``tile_grid``
    (red positive, blue negative, scaled by its own largest weight), enlarged by
    FILTER_SCALE, framed in grey, with FILTER_GAP px of white between them."""
    count, height, width = filters.shape
    tile_h, tile_w = height * FILTER_SCALE + 2, width * FILTER_SCALE + 2  # with the frame
    rows = -(-count // columns)
    mosaic = np.full(
        (
            rows * (tile_h + FILTER_GAP) - FILTER_GAP,
            columns * (tile_w + FILTER_GAP) - FILTER_GAP,
            3,
        ),
        255,
        dtype=np.uint8,
    )
    for index, weights in enumerate(filters):
        tile = tile_grid(weights[None], columns=1, scale=FILTER_SCALE, gap=0)
        framed = np.empty((tile_h, tile_w, 3), dtype=np.uint8)
        framed[...] = FILTER_OUTLINE_RGB
        framed[1:-1, 1:-1] = tile
        row, col = divmod(index, columns)
        top, left = row * (tile_h + FILTER_GAP), col * (tile_w + FILTER_GAP)
        mosaic[top : top + tile_h, left : left + tile_w] = framed
    return mosaic


@functools.lru_cache(maxsize=8)  # once per model: the weights never change while serving
def look_inside_outputs(model: nn.Module) -> tuple[str, np.ndarray | None]:
    """(how to read it, uint8 RGB grid): the MLP's 64 strongest first-layer weight tiles,
    or the CNN's first 3x3 filters (it has no whole-image tiles)."""
    if isinstance(model, MLP):
        tiles = first_layer_tiles(model, TILE_COUNT)
        grid = tile_grid(tiles.tiles, columns=8, scale=LOOK_INSIDE_TILE_SCALE)
        return LOOK_INSIDE_MLP.format(count=len(tiles.units)), grid
    if isinstance(model, CNN):
        filters = model.features[0][0].weight.detach().float().cpu().numpy()  # (32, 1, 3, 3)
        return LOOK_INSIDE_CNN.format(count=len(filters)), filter_mosaic(filters[:, 0])
    return LOOK_INSIDE_OTHER.format(name=type(model).__name__), None


# ---------------------------------------------------------------------------
# The ``explain`` API endpoint


def explain_endpoint(
    models: Mapping[str, nn.Module], path: str | None, choice: str | None = None
) -> tuple[np.ndarray, dict]:
    """An image file (and a model name) -> (saliency overlay, the explanation as JSON).

    Anything unusable (no file, not an image, too large, blank, an unknown model) is a
    one-line gr.Error.
    """
    if not path:
        raise gr.Error("No image was sent; upload a PNG or JPEG of a digit.")
    name, model = pick_model(models, choice)
    try:
        explanation = explain(model, preprocess_image_file(path))
    except DigitnetError as error:
        raise gr.Error(str(error)) from None
    result = explanation.to_json(tiles=False)
    result["model"] = name
    return explanation.overlay(), result


def build_explain_api(models: Mapping[str, nn.Module], choice: gr.Component) -> None:
    """An "Explain an image file" accordion whose upload is the ``explain`` API endpoint.

    ``choice`` is the component naming the model (the app's model radio).
    """
    with gr.Accordion("Explain an image file", open=False):
        upload = gr.File(
            label="An image of a digit", file_types=["image"], elem_id="explain_upload"
        )
        with gr.Row():
            overlay = gr.Image(
                label="Saliency: red toward the answer, blue away",
                interactive=False,
                format="png",
            )
            arrays = gr.JSON(label="The explanation's arrays")

    def explain(path: str | None, model_name: str | None = None) -> tuple[np.ndarray, dict]:
        """An image of a digit (and a model name) -> saliency overlay, explanation JSON."""
        return explain_endpoint(models, path, model_name)

    upload.change(
        explain,
        [upload, choice],
        [overlay, arrays],
        api_name="explain",
        concurrency_limit=EXPLAIN_CONCURRENCY,
    )

"""digitnet's drawing app: sketch a digit, see the ten probabilities, what the model sees, and
how the model was trained.

    python app.py                      # http://127.0.0.1:7860
    python app.py --model runs/mlp     # serve another checkpoint (or a tutorial model.pt)

Only UI and wiring live here; everything else is the ``digitnet`` library.
"""

from __future__ import annotations

import os

# Gradio calls home at start-up unless told not to; users opt in by setting these.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from digitnet.checkpoint import SHIPPED_MODELS, load_checkpoint, model_card  # noqa: E402
from digitnet.dashboard import (  # noqa: E402
    DIGITS,
    confusion_figure,
    curves_figure,
    mistake_gallery,
    model_card_markdown,
    per_class_frame,
)
from digitnet.errors import DigitnetError  # noqa: E402
from digitnet.predict import (  # noqa: E402
    Prediction,
    classify_drawing,
    classify_preprocessed,
    preprocess_image_file,
)
from digitnet.ui.why import (  # noqa: E402
    EXPLAIN_CONCURRENCY,
    build_explain_api,
    build_look_inside,
    build_why_panel,
    look_inside_outputs,
    why_for_drawing,
)

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "assets" / "examples"
CANVAS_SIZE = 280  # px; the brush below is scaled to it
BRUSH_RADIUS = 10  # px: strokes ~20 px wide on 280 px, like MNIST's ~2 px strokes on 28 px
STEP_SCALE = 8  # small step images are enlarged by whole pixels so nothing is smoothed
SHIPPED = {name.upper(): name for name in SHIPPED_MODELS}  # radio label -> --model name

# Gradio 6's sketchpad starts, and restarts after "Clear canvas", with no tool selected, so
# the first strokes would do nothing. This clicks the brush until it stays highlighted.
SELECT_BRUSH_JS = """
() => {
  let stable = 0, tries = 0;
  const timer = setInterval(() => {
    tries += 1;
    const root = document.getElementById("pad");
    const buttons = root ? [...root.querySelectorAll(".toolbar-wrap button")] : [];
    // The aria-label is translated, and with no sources or transforms the first tool is the brush.
    const brush = (root && root.querySelector("button[aria-label='Brush']")) || buttons[0];
    const selected = buttons.some((b) => b.classList.contains("highlight"));
    if (brush && !selected) { brush.click(); stable = 0; }
    else if (brush) { stable += 1; }
    if (stable >= 4 || tries > 100) clearInterval(timer);
  }, 150);
}
"""

# The app's Clear button presses the sketchpad's own "Clear canvas" (setting the value from
# Python leaves the editor stuck "processing"); that fires pad.clear, which reselects the brush.
CLEAR_JS = """
() => {
  const root = document.getElementById("pad");
  const buttons = root ? [...root.querySelectorAll("button[aria-label]")] : [];
  const clear = buttons.find((b) => b.getAttribute("aria-label") === "Clear canvas");
  if (clear) clear.click();
}
"""

CSS = """
.pixelated img { image-rendering: pixelated; width: 100% !important; height: 100% !important;
                 object-fit: contain; }
#answer { font-size: 1.25em; min-height: 2.5em; }
"""

INTRO = """# ✍️ digitnet: draw a digit
Draw one digit, 0 to 9, as big or small as you like, anywhere on the canvas. The model answers
after every stroke. Below: **what the model sees** (your drawing cropped, scaled into a 20×20
box and centred by its centre of mass in 28×28, exactly how the MNIST digits it learnt from
were made) and **how it was trained**."""


DASHBOARD_INTRO = """## How the model was trained
The model learnt from labelled MNIST digits and was checked after every epoch (one pass over
them) on digits it never learnt from: the **validation** set (counts in the model card). Loss
is how wrong it is on average (lower is better). When the training digits are augmented
(randomly rotated, thickened and distorted each time, which is what makes the model hold up on
real drawings), training accuracy sits *below* validation. The best epoch's weights are the
ones you are drawing against."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    model: nn.Module
    metadata: dict


def load_models(extra: str | None = None) -> tuple[dict[str, LoadedModel], list[str]]:
    """The shipped MLP and CNN, plus ``extra`` (a checkpoint path) first if given.

    A model that cannot be loaded is skipped with a one-line warning, so the app still
    starts with whatever does load.
    """
    models: dict[str, LoadedModel] = {}
    warnings: list[str] = []
    wanted = ([(f"Custom: {Path(extra).stem}", extra)] if extra else []) + list(SHIPPED.items())
    for name, source in wanted:
        try:
            model, metadata = load_checkpoint(source)
        except DigitnetError as error:
            warnings.append(f"could not load {source}: {error}")
            continue
        models[name] = LoadedModel(name, model, metadata)
    return models, warnings


# ---------------------------------------------------------------------------
# Handlers: plain functions of plain values, tested directly.


def sketch_image(sketch: dict | np.ndarray | None) -> np.ndarray | None:
    """The flattened drawing in a sketchpad value, or None for an empty or cleared canvas."""
    if sketch is None:
        return None
    if isinstance(sketch, dict):
        # An example loaded into the sketchpad arrives as its background, with no composite.
        composite = sketch.get("composite")
        return composite if composite is not None else sketch.get("background")
    return sketch


def answer_text(prediction: Prediction) -> str:
    if prediction.is_blank:
        return "Draw a digit on the canvas ✏️"
    probs = prediction.probs
    best, second = np.argsort(probs)[::-1][:2]
    if prediction.is_unsure:
        return (
            f"Not sure: maybe **{best}** ({100 * probs[best]:.0f}%) "
            f"or **{second}** ({100 * probs[second]:.0f}%)"
        )
    return f"It's a **{best}** ({100 * probs[best]:.1f}% sure)"


def confidences(prediction: Prediction) -> dict[str, float] | None:
    if prediction.is_blank:
        return None
    return {digit: float(p) for digit, p in zip(DIGITS, prediction.probs)}


def probability_frame(prediction: Prediction) -> pd.DataFrame:
    return pd.DataFrame({"digit": DIGITS, "probability": prediction.probs.astype(float)})


def step_images(prediction: Prediction) -> list[np.ndarray | None]:
    """The pipeline as uint8 images, white ink on black as the model sees it."""
    steps = prediction.preprocessed
    if prediction.is_blank:
        return [None, None, None, None]

    def as_uint8(array: np.ndarray, scale: int = 1) -> np.ndarray:
        image = (np.clip(array, 0, 1) * 255).astype(np.uint8)
        return np.kron(image, np.ones((scale, scale), np.uint8)) if scale > 1 else image

    return [
        as_uint8(steps.ink),
        as_uint8(steps.cropped),
        as_uint8(steps.boxed, STEP_SCALE),
        as_uint8(steps.image, STEP_SCALE),
    ]


def compare_text(
    prediction: Prediction, chosen: LoadedModel, models: dict[str, LoadedModel]
) -> str:
    """Every model's answer for the same drawing (preprocessed once; the chosen one is known)."""
    answers = []
    for loaded in models.values():
        answer = (
            prediction
            if loaded is chosen
            else classify_preprocessed(loaded.model, prediction.preprocessed)
        )
        answers.append(f"{loaded.name}: **{answer.label}** ({100 * answer.confidence:.1f}%)")
    return "Every model's answer: " + " · ".join(answers)


def make_handlers(models: dict[str, LoadedModel]):
    """The app's handlers, closed over the models loaded once at start."""
    default = next(iter(models))

    def pick(choice: str | None) -> LoadedModel:
        return models.get(choice or default, models[default])

    def predict_sketch(sketch: dict | None, choice: str | None):
        """Sketchpad value -> answer, probabilities, bar chart, pipeline steps, comparison."""
        loaded = pick(choice)
        image = sketch_image(sketch)
        if image is None:  # a cleared canvas: the same path as a blank drawing
            image = np.full((CANVAS_SIZE, CANVAS_SIZE), 255, np.uint8)
        try:
            prediction = classify_drawing(loaded.model, image)
        except DigitnetError as error:
            raise gr.Error(str(error)) from None
        comparison = "" if prediction.is_blank else compare_text(prediction, loaded, models)
        return (
            answer_text(prediction),
            confidences(prediction),
            probability_frame(prediction),
            *step_images(prediction),
            comparison,
        )

    def classify_file(path: str | None, choice: str | None = None) -> dict[str, float]:
        """Any image file -> the ten label confidences (the ``classify`` API endpoint)."""
        if not path:
            raise gr.Error("No image was sent; upload a PNG or JPEG of a digit.")
        try:
            preprocessed = preprocess_image_file(path)
        except DigitnetError as error:
            raise gr.Error(str(error)) from None
        return confidences(classify_preprocessed(pick(choice).model, preprocessed))

    @functools.lru_cache(maxsize=8)
    def dashboard(choice: str | None):
        """Model card, curves, per-class accuracy, confusion matrix and mistakes of a model."""
        loaded = pick(choice)
        metadata = loaded.metadata
        per_class = per_class_frame(metadata)
        return (
            model_card_markdown(model_card(metadata)),
            curves_figure(metadata),
            per_class,
            confusion_figure(metadata),
            mistake_gallery(metadata),
        )

    return predict_sketch, classify_file, dashboard


# ---------------------------------------------------------------------------


def build_demo(models: dict[str, LoadedModel], warnings: list[str] | None = None) -> gr.Blocks:
    """Wire the page. ``models`` must hold at least one model; the first is the default."""
    predict_sketch, classify_file, dashboard = make_handlers(models)
    names = list(models)
    examples = sorted(EXAMPLES_DIR.glob("*.png")) if EXAMPLES_DIR.is_dir() else []

    with gr.Blocks(title="digitnet: draw a digit") as demo:
        gr.Markdown(INTRO)
        for warning in warnings or []:
            gr.Markdown(f"⚠️ {warning}")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                pad = gr.Sketchpad(
                    label="Draw here",
                    type="numpy",
                    image_mode="L",
                    elem_id="pad",
                    canvas_size=(CANVAS_SIZE, CANVAS_SIZE),
                    fixed_canvas=True,
                    brush=gr.Brush(
                        colors=["#000000"],
                        default_color="#000000",
                        color_mode="fixed",
                        default_size=BRUSH_RADIUS,
                    ),
                    eraser=gr.Eraser(default_size=2 * BRUSH_RADIUS),
                    layers=False,
                    transforms=(),
                )
                with gr.Row():
                    clear = gr.Button("Clear", variant="secondary", elem_id="clear")
                    choice = gr.Radio(names, value=names[0], label="Model", elem_id="choice")
                example_set = None
                if examples:
                    example_set = gr.Examples(
                        [[str(path)] for path in examples],
                        inputs=[pad],
                        label="Or try an example (tricky on purpose)",
                    )
            with gr.Column(scale=1, min_width=300):
                answer = gr.Markdown(
                    "Draw a digit on the canvas ✏️", label="Answer", elem_id="answer"
                )
                label = gr.Label(num_top_classes=10, label="All ten probabilities", elem_id="label")
                bars = gr.BarPlot(
                    x="digit",
                    y="probability",
                    sort=DIGITS,
                    y_lim=[0, 1],
                    label="Probability of each digit",
                    elem_id="bars",
                    height=220,
                )
                comparison = gr.Markdown(label="Every model's answer", elem_id="comparison")

        gr.Markdown(
            "## What the model sees\nYour drawing → cropped to the ink → scaled into a "
            "20×20 box → centred by mass in 28×28 (white ink on black, as in MNIST)."
        )
        with gr.Row():
            step_kwargs = dict(
                interactive=False, height=180, elem_classes=["pixelated"], buttons=[]
            )
            steps = [
                gr.Image(label="1. your drawing (ink)", **step_kwargs),
                gr.Image(label="2. cropped", **step_kwargs),
                gr.Image(label="3. scaled into 20×20", **step_kwargs),
                gr.Image(label="4. centred 28×28: the input", elem_id="input28", **step_kwargs),
            ]
        why = build_why_panel()  # issue 10: filled after each answer (why_event below)

        gr.Markdown(DASHBOARD_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                curves = gr.Plot(label="Loss and accuracy per epoch", elem_id="curves")
                per_class = gr.BarPlot(
                    x="digit",
                    y="accuracy",
                    sort=DIGITS,
                    y_lim=[0, 100],
                    label="Validation accuracy per digit (%)",
                    height=220,
                    elem_id="per_class",
                )
            with gr.Column(scale=1):
                card = gr.Markdown(elem_id="card")
        with gr.Row(equal_height=False):
            confusion = gr.Plot(label="Confusion matrix", elem_id="confusion")
            mistakes = gr.Gallery(
                label="Most confident mistakes: predicted (true)",
                columns=5,
                height=300,
                elem_id="mistakes",
                allow_preview=False,
            )
        look_inside = build_look_inside()  # issue 10

        with gr.Accordion("Classify an image file", open=False):
            upload = gr.File(label="An image of a digit", file_types=["image"], elem_id="upload")
            upload_label = gr.Label(num_top_classes=10, label="Answer")
        plain_models = {name: loaded.model for name, loaded in models.items()}
        build_explain_api(plain_models, choice)  # issue 10: the "explain" endpoint

        sketch_outputs = [answer, label, bars, *steps, comparison]
        dashboard_outputs = [card, curves, per_class, confusion, mistakes]
        # The Why panel runs as its own event after each answer, never in the answer's path.
        why_event = dict(
            fn=lambda sketch, name: why_for_drawing(plain_models, sketch_image(sketch), name),
            inputs=[pad, choice],
            outputs=why.outputs,
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=EXPLAIN_CONCURRENCY,
        )
        look_inside_event = dict(
            fn=lambda name: look_inside_outputs(plain_models.get(name, plain_models[names[0]])),
            inputs=choice,
            outputs=look_inside.outputs,
            api_visibility="private",
        )
        pad.change(
            predict_sketch,
            [pad, choice],
            sketch_outputs,
            api_name="predict",
            show_progress="hidden",
            trigger_mode="always_last",
            concurrency_limit=4,
        ).then(**why_event)
        choice.change(
            predict_sketch,
            [pad, choice],
            sketch_outputs,
            api_visibility="private",
            show_progress="hidden",
        ).then(**why_event)
        choice.change(**look_inside_event)
        demo.load(**look_inside_event)
        choice.change(dashboard, choice, dashboard_outputs, api_visibility="private")
        upload.change(
            classify_file, [upload, choice], upload_label, api_name="classify", concurrency_limit=4
        )
        if example_set is not None:
            # Loading an example into the sketchpad fires no change event: answer it here.
            example_set.load_input_event.then(
                predict_sketch,
                [pad, choice],
                sketch_outputs,
                api_visibility="private",
                show_progress="hidden",
            ).then(**why_event)
        clear.click(None, None, None, api_visibility="private", js=CLEAR_JS)
        pad.clear(None, None, None, js=SELECT_BRUSH_JS, api_visibility="private")
        demo.load(dashboard, choice, dashboard_outputs, api_visibility="private")
        demo.load(None, None, None, js=SELECT_BRUSH_JS, api_visibility="private")
    demo.queue(default_concurrency_limit=4, max_size=256)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the digitnet drawing app.")
    parser.add_argument(
        "--model",
        default=os.environ.get("DIGITNET_MODEL"),
        help="serve this checkpoint (PATH for PATH.safetensors + PATH.json, "
        "or a tutorial model.pt) beside the shipped MLP and CNN; "
        "default: $DIGITNET_MODEL",
    )
    parser.add_argument(
        "--host",
        default=None,
        help="address to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1, "
        "or 0.0.0.0 on a Hugging Face Space)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to listen on (default: $PORT, else $GRADIO_SERVER_PORT, else 7860)",
    )
    return parser.parse_args(argv)


def server_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict:
    """``launch()``'s server_name/server_port, only where the user or the platform chose them.

    What is left out, Gradio reads from GRADIO_SERVER_NAME and GRADIO_SERVER_PORT (its own
    convention, used by Spaces and Docker images), defaulting to 127.0.0.1:7860. Order:
    --host/--port, then PORT (Heroku-style hosts), then GRADIO_SERVER_*, then Gradio's default.
    """
    settings = {}
    if args.host:
        settings["server_name"] = args.host
    elif not environ.get("GRADIO_SERVER_NAME") and environ.get("SPACE_ID"):
        settings["server_name"] = "0.0.0.0"  # a Space must listen on every interface
    if args.port is not None:
        settings["server_port"] = args.port
    elif environ.get("PORT"):
        if not environ["PORT"].isdigit():
            raise DigitnetError(
                f"PORT={environ['PORT']!r} is not a port number; set it to e.g. 7860"
            )
        settings["server_port"] = int(environ["PORT"])
    return settings


def launch(demo: gr.Blocks, **kwargs):
    """Launch with the page's theme and styles (Gradio 6 takes them in launch())."""
    return demo.launch(
        css=CSS, theme=gr.themes.Default(), show_error=True, ssr_mode=False, **kwargs
    )


def serve_in_background(
    models: dict[str, LoadedModel], warnings: list[str] | None = None
) -> tuple[gr.Blocks, str]:
    """Serve on 127.0.0.1 and a free port without blocking (tests, the load script).

    Returns the demo (``demo.close()`` stops it) and its URL.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = build_demo(models, warnings)
    _, url, _ = launch(
        demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    return demo, url


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # one small forward pass per request; parallelism is requests
    models, warnings = load_models(args.model)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not models:
        print(
            "error: no model could be loaded; train one with "
            "'python -m digitnet train --data ... --out assets/mlp'",
            file=sys.stderr,
        )
        return 2
    try:
        settings = server_settings(args, os.environ)
    except DigitnetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    launch(build_demo(models, warnings), **settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

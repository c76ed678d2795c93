"""The Draw tab: the pad, the answer as you draw (from the browser), and the server's check.

While the pen moves, the page answers by itself (``static/pad.js``): the label, the bars and
the 28x28 come from the browser every frame. When a stroke ends, the server runs the Python
pipeline on the same strokes, fills the pipeline strip and every model's answer, and counts
any disagreement with the browser. Where the browser cannot answer (no workers, weights
missing, a JS error), the server's answer is what shows, after each stroke.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from digitnet.dashboard import DIGITS
from digitnet.errors import DigitnetError
from digitnet.number_answer import number_on_pad, number_sentence
from digitnet.number_images import read_image
from digitnet.numbers import Reading, read_strokes
from digitnet.pad_value import PadDrawing, parse_pad_value
from digitnet.predict import (
    NOT_A_LABEL,
    Prediction,
    answer_sentence,
    classify_preprocessed,
    preprocess_image_file,
)
from digitnet.ui.charts import (
    bars_value,
    input_view,
    input_view_value,
    number_view_value,
    probability_bars,
)
from digitnet.ui.inline_image import inline_image
from digitnet.ui.models import LoadedModel
from digitnet.ui.pad import PROMPT, digit_pad
from digitnet.ui.session import ModelLookup, read_pad, visitor_error
from digitnet.ui.static_files import served_path

STEP_SCALE = 8  # small step images are enlarged by whole pixels so nothing is smoothed
# The page's probabilities are within this of Python's (tests/test_pad_browser.py measures it).
PARITY_TOLERANCE = 1e-3
STEP_HEIGHT = 190  # px: a step's label above it, then a 160 px image
LOG = logging.getLogger("digitnet.app")

# Browser-only listeners: the pad's JS computes the outputs (see static/pad.js).
LIVE_OUTPUTS_JS = "(choice) => globalThis.digitnetPads?.[{pad!r}]?.liveOutputs(choice)"
SET_CHOICE_JS = "(choice) => {{ globalThis.digitnetPads?.[{pad!r}]?.setChoice(choice); }}"

HELP = """Draw one digit, 0 to 9 (or a number: digits side by side), as big or small as you
like, anywhere on the pad. The answer updates **while you draw**: the models run in your
browser. After each stroke the server runs the same pipeline in Python and checks the
browser's answer (*Checked on the server*, under the bars)."""

PIPELINE_HELP = """### What the model sees
Checked on the server after each stroke: your drawing → cropped to the ink → scaled into a
20×20 box → centred by mass in 28×28 (white ink on black), exactly how the MNIST digits the
models learnt from were made."""


# ---------------------------------------------------------------------------
# Plain functions of plain values, tested directly.


def answer_text(prediction: Prediction) -> str:
    return answer_sentence(prediction, PROMPT)


def label_value(prediction: Prediction) -> dict | None:
    """The ``classify`` API's answer: the label (``not a digit`` when the model refuses the
    drawing) and all ten digits' confidences, most likely first."""
    if prediction.is_blank:
        return None
    order = np.argsort(prediction.probs, kind="stable")[::-1]
    return {
        "label": str(order[0]) if prediction.is_digit else NOT_A_LABEL,
        "confidences": [
            {"label": str(digit), "confidence": float(prediction.probs[digit])} for digit in order
        ],
    }


def confidences(prediction: Prediction) -> dict[str, float] | None:
    if prediction.is_blank:
        return None
    return {digit: float(p) for digit, p in zip(DIGITS, prediction.probs)}


def number_outputs(number: Reading) -> list:
    """A number's answer, label, bars and 28x28s, as pad.js's ``numberOutputs`` shows them:
    the number in words, each digit's top probability, no bars, each digit's 28x28."""
    label = {
        f"digit {k + 1}: {digit.label}": digit.confidence for k, digit in enumerate(number.digits)
    }
    return [number_sentence(number), label, None, number_view_value(number)]


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


@dataclass
class ParityTally:
    """One browser session's checks: drawings the server checked, and disagreements."""

    checked: int = 0
    disagreements: int = 0


class ParityLog:
    """Every session's checks in this process, for the operator (and the tests)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.checked = 0
        self.disagreements = 0

    def record(self, disagreeing: list[str]) -> None:
        with self._lock:
            self.checked += 1
            self.disagreements += bool(disagreeing)
        if disagreeing:
            LOG.warning("browser and server disagree on %s", "; ".join(disagreeing))


def disagreements(drawing: PadDrawing, answers: dict[str, Prediction]) -> list[str]:
    """The models whose browser answer differs from the server's: blank or not, or the digit.

    Two digits whose server probabilities are within PARITY_TOLERANCE are a tie both sides
    may break either way (the page computes in float32): no disagreement. Ties are common
    where a model refuses a drawing, nearly uniform over the ten (a number, read whole).
    """
    found = []
    for name, browser in drawing.browser_answers.items():
        server = answers.get(name)
        if server is None:
            continue
        browser_label = None if browser is None else int(np.argmax(browser))
        if browser_label == server.label:
            continue
        if browser_label is not None and server.label is not None:
            margin = float(server.probs[server.label] - server.probs[browser_label])
            if margin <= PARITY_TOLERANCE:
                continue
        found.append(f"{name}: browser {browser_label}, server {server.label}")
    return found


def comparison_text(answers: dict[str, Prediction], tally: ParityTally | None) -> str:
    """Every model's answer from the server, and how the browser's answers compared: folded
    under "Checked on the server" (a check for the curious), open once they disagreed."""
    chosen = next(iter(answers.values()), None)
    if chosen is None or chosen.is_blank:
        return ""
    parts = [f"{name}: **{a.label}** ({100 * a.confidence:.1f}%)" for name, a in answers.items()]
    text = "Every model's answer, checked on the server: " + " · ".join(parts)
    summary, opened = "Checked on the server", ""
    if tally is not None and tally.checked:
        agreed = tally.checked - tally.disagreements
        text += (
            f"  \nThe browser's answers agreed with the server's on {agreed} of "
            f"{tally.checked} drawings this session."
        )
        if tally.disagreements:
            summary, opened = "⚠️ The browser and the server disagreed", " open"
        else:
            summary += " ✓"
    return f"<details{opened}><summary>{summary}</summary>\n\n{text}\n\n</details>"


@dataclass(frozen=True)
class DrawHandlers:
    """The Draw tab's handlers, closed over the models loaded once at start."""

    predict: Callable  # (pad value, choice, tally) -> the answer outputs
    recheck: Callable  # the same for another model choice: the same drawing, not counted again
    classify: Callable  # (image file, choice) -> the ten confidences
    read: Callable  # (pad value, choice) -> the number drawn: {"text", "confidence", "digits"}
    read_image: Callable  # (image file, choice) -> the number in it, as ``read``
    pick_example: Callable  # (gr.SelectData) -> the pad value for that example
    parity: ParityLog


def make_api_only_handlers(pick: Callable, examples: dict[str, Path]) -> tuple[Callable, ...]:
    """The answers programs ask for, which the page never triggers: ``classify`` (an image
    file), ``read`` (a pad value holding a number) and ``read_image`` (an image of a number).
    ``pick(choice, request)`` finds the model (a session's own runs too)."""

    def classify(
        path: str | None, choice: str | None = None, request: gr.Request | None = None
    ) -> dict[str, float]:
        """Any image file -> the ten label confidences (the ``classify`` API endpoint)."""
        if not path:
            raise gr.Error("No image was sent; upload a PNG or JPEG of a digit.")
        try:
            preprocessed = preprocess_image_file(path)
        except DigitnetError as error:
            raise gr.Error(str(error)) from None
        return label_value(classify_preprocessed(pick(choice, request).model, preprocessed))

    def read(value, choice: str | None = None, request: gr.Request | None = None) -> dict:
        """Pad value -> the number drawn (the ``read`` API endpoint): ``{"text", "confidence",
        "digits": [{"label", "confidence", "box"}, ...]}``, boxes in pad units; a blank pad
        has empty text."""
        try:
            drawing = parse_pad_value(value, frozenset(examples))
            if drawing.example:
                raise DigitnetError(
                    'read takes strokes, not an example; send {"strokes": [[[x, y], ...]]} '
                    "(or an image file to read_image)"
                )
            return read_strokes(pick(choice, request).model, drawing.strokes).as_dict()
        except DigitnetError as error:
            raise visitor_error(error) from None

    def read_image_file(
        path: str | None, choice: str | None = None, request: gr.Request | None = None
    ) -> dict:
        """Any image file of a number -> the number, as ``read`` (boxes in the image's pixels;
        the ``read_image`` API endpoint)."""
        if not path:
            raise gr.Error("No image was sent; upload a PNG or JPEG of a number.")
        try:
            return read_image(pick(choice, request).model, path).as_dict()
        except DigitnetError as error:
            raise visitor_error(error) from None

    return classify, read, read_image_file


def make_draw_handlers(
    models: ModelLookup | dict[str, LoadedModel], examples: dict[str, Path]
) -> DrawHandlers:
    """The tab's handlers; ``models`` finds a session's own runs too (see ModelLookup)."""
    lookup = models if isinstance(models, ModelLookup) else ModelLookup(models)
    models = lookup.models
    pick = lookup.find
    parity = ParityLog()

    def predict(
        value,
        choice: str | None,
        tally: ParityTally | None = None,
        count: bool = True,
        request: gr.Request | None = None,
    ):
        """Pad value -> answer, label, bars, 28x28, pipeline steps, every model's answer.

        With ``count``, a value carrying the browser's answers is a check that is counted.
        """
        loaded = pick(choice, request)
        # A session's own run answers beside the shipped models.
        pool = models if loaded.name in models else {loaded.name: loaded, **models}
        drawing, preprocessed = read_pad(value, examples)
        # The chosen model first: comparison_text lists it first.
        order = [loaded.name] + [name for name in pool if name != loaded.name]
        answers = {name: classify_preprocessed(pool[name].model, preprocessed) for name in order}
        chosen = answers[loaded.name]
        tally = tally if isinstance(tally, ParityTally) else ParityTally()
        skip_live = False
        if drawing.browser_answered:
            disagreeing = disagreements(drawing, answers)
            both_blank = chosen.is_blank and not any(
                probs is not None for probs in drawing.browser_answers.values()
            )
            # A check needs an answer from both sides: a page whose models had not answered
            # yet ({"answers": {}}) checked nothing, and a cleared pad is no drawing.
            compared = any(name in answers for name in drawing.browser_answers)
            if count and compared and not both_blank:
                parity.record(disagreeing)
                tally = ParityTally(tally.checked + 1, tally.disagreements + bool(disagreeing))
            # The browser already shows its answer; the server's only replaces a wrong one.
            skip_live = loaded.name in drawing.browser_answers and not disagreeing
        number = None
        if not skip_live and drawing.strokes and not drawing.example:
            number = number_on_pad(loaded.model, drawing.strokes)  # as the page splits it
        if skip_live:
            live = [gr.skip()] * 4
        elif number is not None:
            live = number_outputs(number)
        else:
            live = [
                answer_text(chosen),
                confidences(chosen),
                None if chosen.is_blank else bars_value({n: a.probs for n, a in answers.items()}),
                None if chosen.is_blank else input_view_value(preprocessed.image),
            ]
        return (
            *live,
            *step_images(chosen),
            comparison_text(answers, tally if drawing.browser_answered else None),
            tally,
        )

    classify, read, read_image_file = make_api_only_handlers(pick, examples)

    def pick_example(event: gr.SelectData) -> dict:
        names = list(examples)
        index = event.index if isinstance(event.index, int) else 0
        return {"example": names[index], "strokes": []}

    def recheck(
        value,
        choice: str | None,
        tally: ParityTally | None = None,
        request: gr.Request | None = None,
    ):
        """Another model chosen: its answer to the drawing the server last saw.

        A pad blank to the server has nothing to recheck, and its outputs are left alone:
        this reply can land after the person has begun drawing (a click, then a stroke at
        once, on a busy server), and a blank answer would then overwrite the drawing's live
        one, which the page does not paint again until the ink changes.
        """
        outputs = predict(value, choice, tally, count=False, request=request)
        drawing = parse_pad_value(value, frozenset(examples))
        if not drawing.strokes and not drawing.example:
            return tuple(gr.skip() for _ in outputs)
        return outputs

    return DrawHandlers(predict, recheck, classify, read, read_image_file, pick_example, parity)


# ---------------------------------------------------------------------------
# Layout and wiring


@dataclass(frozen=True)
class DrawSlots:
    """What other modules build into the tab, each called where it shows."""

    under_answer: Callable[[], Any] | None = None  # under the answer: Right / No, it's a …
    beside_input: Callable[[], Any] | None = None  # beside the 28×28 input: the Why panel
    under_input: Callable[[], Any] | None = None  # right under that row: "Inside the model"


@dataclass(frozen=True)
class DrawTab:
    """The Draw tab's components, for other tabs to wire to (e.g. a panel on stroke end)."""

    pad: gr.HTML  # digit_pad
    choice: gr.Radio
    answer: gr.Markdown
    label: gr.Label
    bars: gr.HTML  # probability_bars
    view: gr.HTML  # input_view
    steps: list[gr.Image]
    comparison: gr.Markdown
    tally: gr.State
    handlers: DrawHandlers
    under_answer: Any = None  # what DrawSlots.under_answer built
    beside_input: Any = None  # what DrawSlots.beside_input built
    under_input: Any = None  # what DrawSlots.under_input built

    @property
    def answer_outputs(self) -> list:
        """What ``handlers.predict`` fills, in order."""
        return [
            self.answer,
            self.label,
            self.bars,
            self.view,
            *self.steps,
            self.comparison,
            self.tally,
        ]


def build_draw_tab(
    models: ModelLookup | dict[str, LoadedModel],
    browser_models: dict[str, Path],
    examples: dict[str, Path],
    slots: DrawSlots = DrawSlots(),
) -> DrawTab:
    """The tab's layout and events; call inside ``gr.Blocks``. ``models`` is not empty.

    The answer column puts what a person acts on first: the model choice, the answer, then
    what ``slots.under_answer`` builds (the "Right" / "No, it's a …" buttons), then the ten
    probabilities, every model's bars and the server's check. ``slots.beside_input`` builds
    columns beside the 28×28 input, under the pad and the answer (the Why panel);
    ``slots.under_input`` what goes right under that row (the Why panel's "Inside the model").

    ``models`` finds a session's own runs (trained in the app) by their choice name too;
    the browser has no weights for those, so the pad answers them through the server.
    """
    handlers = make_draw_handlers(models, examples)
    names = list(models.models if isinstance(models, ModelLookup) else models)
    with gr.Row(equal_height=False, elem_id="draw-row"):
        with gr.Column(scale=1, min_width=300, elem_id="pad-column"):
            pad = digit_pad(
                models=browser_models,
                examples=examples,
                default_choice=names[0],
                label="Drawing",
            )
        # What a person acts on comes first, so the buttons stay on a laptop's first screen
        # however tall the ten probabilities grow once a digit is drawn.
        with gr.Column(scale=1, min_width=300, elem_id="answer-column"):
            choice = gr.Radio(names, value=names[0], label="Model", elem_id="choice")
            answer = gr.Markdown(PROMPT, label="Answer", elem_id="answer")
            extra = slots.under_answer() if slots.under_answer is not None else None
            label = gr.Label(
                num_top_classes=10,
                label="All ten probabilities",
                elem_id="label",
                show_label=False,
            )
            bars = probability_bars(label="Every model's probabilities", elem_id="bars")
            # A developer's check, not a learner's: folded (comparison_text) unless they differ.
            comparison = gr.Markdown(label="The server's check", elem_id="comparison")
    # The 28x28 the model sees, and beside it whatever explains it (the Why panel).
    with gr.Row(equal_height=False, elem_id="input-row"):
        with gr.Column(scale=1, min_width=130, elem_id="input28-column"):
            view = input_view(
                caption="The 28×28 the model sees", label="Model input", elem_id="input28"
            )
        beside = slots.beside_input() if slots.beside_input is not None else None
    below = slots.under_input() if slots.under_input is not None else None
    gr.Markdown(HELP, elem_id="help")
    gr.Markdown(PIPELINE_HELP)
    steps = build_pipeline_steps()
    tab = DrawTab(
        pad,
        choice,
        answer,
        label,
        bars,
        view,
        steps,
        comparison,
        gr.State(ParityTally()),
        handlers,
        under_answer=extra,
        beside_input=beside,
        under_input=below,
    )
    example_gallery = build_example_gallery(examples)
    with gr.Accordion("Classify an image file", open=False):
        upload = gr.File(label="An image of a digit", file_types=["image"], elem_id="upload")
        upload_label = gr.JSON(label="Answer")
    _wire(tab, example_gallery, upload, upload_label)
    return tab


def build_pipeline_steps() -> list[gr.Image]:
    """The four images of the pipeline, left to right, sent inside the answer (nothing is
    written to disk per drawing)."""
    with gr.Row():
        # png: the steps are enlarged by whole pixels, and webp would blur them.
        step_kwargs = dict(
            interactive=False,
            height=STEP_HEIGHT,
            format="png",
            elem_classes=["pixelated", "label-above"],
            buttons=[],
        )
        return [
            inline_image(label="1. your drawing (ink)", elem_id="step-ink", **step_kwargs),
            inline_image(label="2. cropped", elem_id="step-cropped", **step_kwargs),
            inline_image(label="3. scaled into 20×20", elem_id="step-boxed", **step_kwargs),
            inline_image(label="4. centred 28×28: the input", elem_id="step-input", **step_kwargs),
        ]


def build_example_gallery(examples: dict[str, Path]) -> gr.Gallery | None:
    """The example drawings to try, or None when there are none."""
    if not examples:
        return None
    return gr.Gallery(
        [(served_path(path), path.stem) for path in examples.values()],
        label="Or try an example (tricky on purpose)",
        columns=5,
        rows=1,
        height=None,
        object_fit="contain",
        allow_preview=False,
        elem_id="examples",
    )


def _wire(
    tab: DrawTab, example_gallery: gr.Gallery | None, upload: gr.File, upload_label: gr.JSON
) -> None:
    handlers, pad, choice = tab.handlers, tab.pad, tab.choice
    pad.input(
        None,
        [choice],
        [tab.answer, tab.label, tab.bars, tab.view],
        js=LIVE_OUTPUTS_JS.format(pad=pad.elem_id),
        api_visibility="private",
        show_progress="hidden",
        queue=False,
        trigger_mode="always_last",
    )
    pad.change(
        handlers.predict,
        [pad, choice, tab.tally],
        tab.answer_outputs,
        api_name="predict",
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_limit=4,
    )
    choice.change(
        None, [choice], None, js=SET_CHOICE_JS.format(pad=pad.elem_id), api_visibility="private"
    )
    choice.change(
        handlers.recheck,
        [pad, choice, tab.tally],
        tab.answer_outputs,
        api_visibility="private",
        show_progress="hidden",
    )
    if example_gallery is not None:
        example_gallery.select(handlers.pick_example, None, pad, api_visibility="private")
    upload.change(
        handlers.classify, [upload, choice], upload_label, api_name="classify", concurrency_limit=4
    )
    # Numbers: API-only endpoints (no trigger on the page), named by the handlers' parameters
    # and this output's label.
    number = gr.JSON(label="number", visible=False, elem_id="number-read")
    for handler, source, name in (
        (handlers.read, pad, "read"),
        (handlers.read_image, upload, "read_image"),
    ):
        gr.on([], handler, [source, choice], number, api_name=name, concurrency_limit=4)

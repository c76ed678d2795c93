"""The "How it was trained" tab: a model's curves, per-digit accuracy, confusion and mistakes.

Everything comes from the checkpoint's metadata (``digitnet.dashboard``), so any run, the
shipped ones or one trained in the app, shows the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from digitnet.checkpoint import model_card
from digitnet.dashboard import (
    DIGITS,
    accuracy_axis_range,
    confusion_figure,
    curves_figure,
    mistake_gallery,
    model_card_markdown,
    per_class_frame,
)
from digitnet.ui.models import LoadedModel

# A chart or table narrower than this is unreadable: a row of them wraps on a phone instead.
MIN_CHART_WIDTH = 320
MISTAKES_HEIGHT = 360  # px: three rows of thumbnails and captions; more scroll

INTRO = """## How the model was trained
The model learnt from labelled MNIST digits and was checked after every epoch (one pass over
them) on digits it never learnt from: the **validation** set (counts in the model card). Loss
is how wrong it is on average (lower is better). When the training digits are augmented
(randomly rotated, thickened and distorted each time, which is what makes the model hold up on
real drawings), training accuracy sits *below* validation. The best epoch's weights are the
ones you are drawing against."""


def make_dashboard_handler(models: dict[str, LoadedModel], resolve=None) -> Callable:
    """``resolve(choice, request)`` finds a session's own runs (see ``draw_tab.Resolver``)."""
    default = next(iter(models))

    def dashboard(choice: str | None, request: gr.Request | None = None):
        """Model card, curves, per-class accuracy, confusion matrix and mistakes of a model."""
        own = resolve(choice, request) if resolve is not None else None
        return dashboard_of(own.metadata) if own is not None else shipped(choice)

    @functools.lru_cache(maxsize=8)  # shipped models only: a run is private to its session
    def shipped(choice: str | None):
        return dashboard_of(models.get(choice or default, models[default]).metadata)

    def dashboard_of(metadata: dict):
        return (
            model_card_markdown(model_card(metadata)),
            curves_figure(metadata),
            per_class_bars(metadata),
            confusion_figure(metadata),
            mistake_gallery(metadata),
        )

    return dashboard


def per_class_plot(elem_id: str) -> gr.BarPlot:
    """Validation accuracy per digit, filled by ``per_class_bars`` (here and the Train tab)."""
    return gr.BarPlot(
        x="digit",
        y="accuracy",
        sort=DIGITS,
        y_lim=[0, 100],
        x_title="digit",
        y_title="accuracy (%)",
        label="Validation accuracy per digit",
        height=220,
        min_width=MIN_CHART_WIDTH,
        elem_id=elem_id,
    )


def per_class_bars(metadata: dict) -> gr.BarPlot:
    """``per_class_plot``'s value for a model, on a y range that shows the differences."""
    frame = per_class_frame(metadata)
    return gr.BarPlot(value=frame, y_lim=accuracy_axis_range(frame["accuracy"]))


def confusion_and_mistakes(confusion_id: str, mistakes_id: str) -> tuple[gr.Plot, gr.Gallery]:
    """A row: the confusion matrix (``confusion_figure``) beside the most confident mistakes
    (``mistake_gallery``), here and on the Train tab."""
    with gr.Row(equal_height=False):
        confusion = gr.Plot(
            label="Confusion matrix",
            min_width=MIN_CHART_WIDTH,
            elem_id=confusion_id,
            elem_classes=["label-above"],  # app.css: not over the figure's title
        )
        # Thumbnails at the images' own size (app.css), however few: two mistakes stretched
        # to fill the row were huge and blurry. PNG keeps the pixels crisp; webp blurs them.
        mistakes = gr.Gallery(
            label="Most confident mistakes",
            columns=5,
            fit_columns=False,
            height=MISTAKES_HEIGHT,
            object_fit="contain",
            format="png",
            allow_preview=False,
            buttons=[],
            min_width=MIN_CHART_WIDTH,
            elem_id=mistakes_id,
            elem_classes=["mistakes"],
        )
    return confusion, mistakes


@dataclass(frozen=True)
class DashboardTab:
    choice: gr.Radio
    outputs: list
    handler: Callable


def build_dashboard_tab(models: dict[str, LoadedModel], resolve=None) -> DashboardTab:
    """The tab's layout and events; call inside ``gr.Blocks``. ``models`` is not empty."""
    handler = make_dashboard_handler(models, resolve)
    names = list(models)
    gr.Markdown(INTRO)
    choice = gr.Radio(names, value=names[0], label="Model", elem_id="dashboard-choice")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            curves = gr.Plot(
                label="Loss and accuracy per epoch", elem_id="curves", elem_classes=["label-above"]
            )
            per_class = per_class_plot(elem_id="per_class")
        with gr.Column(scale=1):
            card = gr.Markdown(elem_id="card")
    confusion, mistakes = confusion_and_mistakes("confusion", "mistakes")
    outputs = [card, curves, per_class, confusion, mistakes]
    choice.change(handler, choice, outputs, api_visibility="private")
    return DashboardTab(choice, outputs, handler)

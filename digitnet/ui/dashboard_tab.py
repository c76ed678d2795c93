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
    curves_figure,
    mistake_gallery,
    model_card_markdown,
    reliability_figure,
)
from digitnet.ui.models import LoadedModel
from digitnet.ui.run_figures import (
    confusion_and_mistakes,
    confusion_plot,
    encoded_plot,
    per_class_bars,
    per_class_plot,
)
from digitnet.ui.session import ModelLookup

INTRO = """## How the model was trained
The model learnt from labelled MNIST digits and was checked after every epoch (one pass over
them) on digits it never learnt from: the **validation** set (counts in the model card). Loss
is how wrong it is on average (lower is better). When the training digits are augmented
(randomly rotated, thickened and distorted each time, which is what makes the model hold up on
real drawings), training accuracy sits *below* validation. The best epoch's weights are the
ones you are drawing against."""


RELIABILITY_HELP = """**Honest probabilities.** Each dot gathers drawings the model was about
equally sure of (bigger dots, more drawings): across, how sure it said it was; up, how often it
was right. On the dashed line, "90% sure" means right 90% of the time. The drawings are the
validation digits drawn as on a canvas, which the model never trained on. Training with label
smoothing leaves a model *less* sure than it should be; a temperature fitted after training
moves the dots onto the line (the title gives the calibration error before and after). A
drawing it is much less sure of than usual gets "That doesn't look like a digit"."""


def make_dashboard_handler(models: ModelLookup | dict[str, LoadedModel]) -> Callable:
    """The dashboard of a model choice, a session's own runs included (see ModelLookup)."""
    lookup = models if isinstance(models, ModelLookup) else ModelLookup(models)
    default = next(iter(lookup.models))

    def dashboard(choice: str | None, request: gr.Request | None = None):
        """Model card, curves, per-class accuracy, confusion matrix and mistakes of a model."""
        own = lookup.own_run(choice, request)
        return dashboard_of(own.metadata) if own is not None else shipped(choice)

    @functools.lru_cache(maxsize=8)  # shipped models only: a run is private to its session
    def shipped(choice: str | None):
        return dashboard_of(lookup.models.get(choice or default, lookup.models[default]).metadata)

    def dashboard_of(metadata: dict):
        return (
            model_card_markdown(model_card(metadata), metadata),
            encoded_plot(curves_figure(metadata)),
            per_class_bars(metadata),
            confusion_plot(metadata),
            mistake_gallery(metadata),
            encoded_plot(reliability_figure(metadata)),
        )

    return dashboard


@dataclass(frozen=True)
class DashboardTab:
    choice: gr.Radio
    outputs: list
    handler: Callable


def build_dashboard_tab(models: ModelLookup | dict[str, LoadedModel]) -> DashboardTab:
    """The tab's layout and events; call inside ``gr.Blocks``. ``models`` is not empty."""
    handler = make_dashboard_handler(models)
    names = list(models.models if isinstance(models, ModelLookup) else models)
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
    with gr.Row():
        reliability = gr.Plot(
            label="How sure it says it is, against how often it is right",
            elem_id="reliability",
            elem_classes=["label-above"],
        )
        gr.Markdown(RELIABILITY_HELP, elem_id="reliability-help")
    outputs = [card, curves, per_class, confusion, mistakes, reliability]
    choice.change(handler, choice, outputs, api_visibility="private")
    return DashboardTab(choice, outputs, handler)

"""Fine-tuning on the stored drawings, a panel of the "Your drawings" tab and the ``finetune``
API endpoint.

A fine-tune is a job of the app's
:class:`~digitnet.training_service.TrainingService`: it queues behind
other visitors' runs, under the same caps, and its result is the session's own run, which
joins the Draw tab's model choice like a Train-tab run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from digitnet.errors import DigitnetError
from digitnet.finetune import (
    MIN_DRAWINGS,
    FinetuneConfig,
    drawings_from_store,
    trained_on_drawings,
)
from digitnet.jobs import FinetuneRequest, JobSnapshot
from digitnet.store import DrawingStore, StoreError
from digitnet.training_service import TrainingService
from digitnet.ui.live_job import follow_job, status_markdown
from digitnet.ui.models import LoadedModel
from digitnet.ui.session import ModelChoiceOutputs, ModelLookup, session_of, visitor_error


def readiness_text(count: int) -> str:
    """The drawings counted before anyone presses Start: how many, and how many more."""
    if count < MIN_DRAWINGS:
        more = MIN_DRAWINGS - count
        return (
            f"**{count} of {MIN_DRAWINGS} drawings**: draw {more} more (and press *Right* or "
            f"*No, it's a …* on the Draw tab) to fine-tune."
        )
    return f"**{count:,} drawings**: enough to fine-tune."


def readiness(store: DrawingStore | None) -> tuple[str, dict]:
    """The count line, and Start enabled only when a fine-tune can start."""
    count = store.count() if store is not None else 0
    return readiness_text(count), gr.Button(interactive=count >= MIN_DRAWINGS)


def finetune_request(
    store: DrawingStore | None, loaded: LoadedModel, epochs: object
) -> FinetuneRequest:
    """What to fine-tune, on the store's drawings as they are now; one line if refused."""
    if store is None:
        raise StoreError("fine-tuning needs the drawings database, which could not be opened")
    try:
        settings = FinetuneConfig(epochs=int(float(epochs)))
    except (TypeError, ValueError):
        raise DigitnetError(f"epochs must be a whole number, got {epochs!r}") from None
    # A fine-tuned base's own training drawings train again, never measure it.
    split = drawings_from_store(
        store, settings, trained_before=trained_on_drawings(loaded.metadata)
    )
    return FinetuneRequest(loaded.name, loaded.model, loaded.metadata, split, settings)


def before_after_markdown(metadata: dict) -> str:
    """A fine-tuned run's before and after as a table, each figure with its 95% interval."""
    section = metadata.get("finetune")
    if not section:
        return ""

    def figure(measured: dict) -> str:
        if measured.get("accuracy") is None:
            return "–"
        return (
            f"{100 * measured['accuracy']:.1f}% "
            f"[{100 * measured['low']:.1f}–{100 * measured['high']:.1f}]"
        )

    before, after = section["before"], section["after"]
    change = section["change_points"]
    rows = [
        ("held-out drawings", "held_out"),
        ("MNIST validation", "mnist_validation"),
    ]
    lines = [
        f"**{metadata.get('run', 'The run')}**, fine-tuned from **{section['base_model']}** "
        f"on {section['drawings']['train_count']} drawings (95% intervals):",
        "",
        "| measured on | of | before | after | change |",
        "|---|---|---|---|---|",
    ]
    for title, key in rows:
        lines.append(
            f"| {title} | {after[key]['total']} | {figure(before[key])} | "
            f"{figure(after[key])} | {change[key]:+.1f} points |"
        )
    return "\n".join(lines)


HELD_OUT_SERIES, MNIST_SERIES = "your drawings (held out)", "MNIST validation"
FINETUNE_COLOURS = {HELD_OUT_SERIES: "#d62728", MNIST_SERIES: "#ff7f0e"}


def finetune_frame(snapshot: JobSnapshot) -> pd.DataFrame:
    """The fine-tune's measurements as curves: accuracy (%) on the held-out drawings and on
    MNIST validation, at epoch 0 (the model it started from) and after each epoch. From the
    first measurement on, both series are present (see ``curve_frames`` for why that matters).
    """
    rows = [
        {"epoch": report.epoch, "measured on": series, "accuracy": 100 * accuracy.value}
        for report in snapshot.measurements
        for series, accuracy in (
            (HELD_OUT_SERIES, report.measurement.held_out),
            (MNIST_SERIES, report.measurement.mnist_validation),
        )
        if accuracy.total
    ]
    return pd.DataFrame(rows, columns=["epoch", "measured on", "accuracy"])


def finetune_plot() -> gr.LinePlot:
    return gr.LinePlot(
        x="epoch",
        y="accuracy",
        color="measured on",
        color_map=FINETUNE_COLOURS,
        label="Accuracy (%) before fine-tuning (epoch 0) and after each epoch",
        x_title="epoch (0: the model it started from)",
        y_title="% right",
        elem_id="finetune-curve",
    )


def finetune_log(snapshot: JobSnapshot) -> str:
    """The fine-tune's measurements so far, one line each, then where it is, as plain text
    (the status line's leading emoji and Markdown would show as they are in a text box)."""
    status = re.sub(r"^\W+\s", "", status_markdown(snapshot)).replace("*", "")
    return "\n".join([*snapshot.notes, status])


@dataclass(frozen=True)
class FinetuneHandlers:
    """The panel's handlers, plain functions (tested without a server)."""

    finetune: Callable  # (base, epochs, request) -> streams the panel's outputs
    stop: Callable  # (request) -> the progress line
    bases: Callable  # (request) -> the dropdown of models to start from


def make_finetune_handlers(
    store: DrawingStore | None,
    lookup: ModelLookup,
    service: TrainingService,
    targets: ModelChoiceOutputs,
) -> FinetuneHandlers:
    """``finetune`` fills :meth:`FinetunePanel.outputs`, then ``targets``' outputs."""
    targets_skip = [gr.skip()] * len(targets.outputs)  # they change only when a run is done

    async def finetune(base: str | None, epochs: float, request: gr.Request):
        """Fine-tune a model on the drawings mixed with MNIST; streams progress; the first
        output is a JSON summary with the held-out and MNIST accuracy before and after."""
        session = session_of(request)
        try:
            choices = lookup.session_models(request)
            if base not in choices:
                raise DigitnetError(
                    f"no model named {str(base)[:40]!r} to start from; "
                    f"choose one of {', '.join(choices)}"
                )
            job = service.submit_finetune(session, finetune_request(store, choices[base], epochs))
        except DigitnetError as error:
            raise visitor_error(error) from None
        async with aclosing(follow_job(service, job)) as snapshots:
            async for snapshot in snapshots:
                if not snapshot.finished:
                    log, curve = finetune_log(snapshot), curve_update(snapshot)
                    yield [snapshot.summary(), log, curve, gr.skip(), *targets_skip]
        table = before_after_markdown(snapshot.record.metadata) if snapshot.record else ""
        # Hashing the models' web files for their URLs takes a moment: not on the event loop.
        updates = await asyncio.to_thread(targets.updates, service.runs(session), snapshot.record)
        yield [snapshot.summary(), finetune_log(snapshot), curve_update(snapshot), table, *updates]

    def stop(request: gr.Request) -> str:
        name = service.stop(session_of(request))
        return f"Stopping {name}; what it learnt so far is kept." if name else "Nothing to stop."

    def bases(request: gr.Request):
        return gr.Dropdown(choices=list(lookup.session_models(request)))

    return FinetuneHandlers(finetune, stop, bases)


def curve_update(snapshot: JobSnapshot):
    """The curve's new value, or a skip while nothing is measured yet (queued, loading)."""
    frame = finetune_frame(snapshot)
    if frame.empty:
        return gr.skip()
    epochs = max(report.epochs for report in snapshot.measurements)
    return gr.LinePlot(value=frame, x_lim=[0, epochs])


@dataclass(frozen=True)
class FinetunePanel:
    base: gr.Dropdown
    epochs: gr.Slider
    start: gr.Button
    stop: gr.Button
    log: gr.Textbox
    curve: gr.LinePlot
    before_after: gr.Markdown
    summary: gr.JSON
    ready: gr.Markdown | None = None  # how many drawings there are, before Start is pressed

    @property
    def outputs(self) -> list[gr.Component]:
        """What ``finetune`` fills, in order, before the model choice and the pad."""
        return [self.summary, self.log, self.curve, self.before_after]


def build_finetune_panel(models: dict[str, LoadedModel]) -> FinetunePanel:
    """The panel's layout; call inside the tab. Wire it with :func:`wire_finetune_panel`."""
    defaults = FinetuneConfig()
    gr.Markdown(
        f"### Fine-tune on the drawings\nStarts from the chosen model and trains a few epochs "
        f"on the drawings mixed with the MNIST sample (so it keeps reading MNIST), holding out "
        f"{defaults.held_out_fraction:.0%} of the drawings to measure on. Needs at least "
        f"{MIN_DRAWINGS} labelled drawings. It waits its turn behind other training, and the "
        f"result is a run of yours (`tuned-N`) to draw against, like the Train tab's."
    )
    ready = gr.Markdown(elem_id="finetune-ready")
    with gr.Row():
        # Custom values pass through to the handler, which names the models one may start
        # from (the session's runs too), where the dropdown's own check would not.
        base = gr.Dropdown(
            list(models),
            value=next(iter(models)),
            label="Start from",
            allow_custom_value=True,
            elem_id="finetune-base",
        )
        epochs = gr.Slider(
            1, 10, value=defaults.epochs, step=1, label="Epochs", elem_id="finetune-epochs"
        )
        start = gr.Button("Start fine-tune", variant="primary", elem_id="finetune-start")
        stop = gr.Button("Stop", elem_id="finetune-stop")
    with gr.Row(equal_height=False):
        log = gr.Textbox(label="Progress", lines=6, elem_id="finetune-log")
        curve = finetune_plot()
    before_after = gr.Markdown(label="Before and after", elem_id="finetune-before-after")
    with gr.Accordion("The fine-tune in numbers (for programs)", open=False):
        summary = gr.JSON(label="Summary", elem_id="finetune-summary")
    return FinetunePanel(base, epochs, start, stop, log, curve, before_after, summary, ready)


def wire_finetune_panel(
    panel: FinetunePanel, handlers: FinetuneHandlers, targets: ModelChoiceOutputs
):
    """The ``finetune`` endpoint and the stop button; returns the fine-tune's event, so the
    tab can refresh its views once it is done."""
    finished = panel.start.click(
        handlers.finetune,
        [panel.base, panel.epochs],
        [*panel.outputs, *targets.outputs],
        api_name="finetune",
        concurrency_limit=None,  # the training service queues; followers only wait
        trigger_mode="once",
        # No spinner or red "Error" badge over the log and the chart: a refusal ("17 more")
        # is an expected "not yet", said once in a message; the log shows the progress.
        show_progress="hidden",
    )
    # The Train tab's ``stop`` endpoint stops a fine-tune too: both are the session's job.
    panel.stop.click(
        handlers.stop, None, panel.log, concurrency_limit=None, api_visibility="private"
    )
    return finished

"""The Train tab: train the MLP or the CNN live, watch its curves, then draw against it.

The knobs are generated from the configs' field metadata (help, range, choices), so a new
config field appears here by itself. The work is :class:`digitnet.jobs.TrainingService`; this
module wires it to Gradio: a streaming ``train`` endpoint, ``stop`` and ``runs``, and
:func:`resolve_model`, through which the drawing handlers find a session's own runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from digitnet.dashboard import (
    confusion_figure,
    mistake_gallery,
    progress_frame,
)
from digitnet.errors import DigitnetError
from digitnet.evaluate import format_per_class_table
from digitnet.jobs import (
    CANCELLED,
    FAILED,
    MEASURING,
    PREPARING,
    QUEUED,
    RUN_COLUMNS,
    Job,
    JobSnapshot,
    RunRecord,
)
from digitnet.knobs import (
    DEFAULT_PRESET,
    MIN_TRAIN_SIZE,
    PRESETS,
    knob_fields,
    knob_help,
    knob_text,
)
from digitnet.training_service import TrainingService
from digitnet.ui.dashboard_tab import (
    MIN_CHART_WIDTH,
    confusion_and_mistakes,
    per_class_bars,
    per_class_plot,
)
from digitnet.ui.pad import pad_models

UPDATE_SECONDS = 0.25  # a follower looks at its job this often: 4 redraws a second at most
IDLE_REDRAW_SECONDS = 1.0  # and redraws a waiting job this often, so its clock moves
SLIDER_SPAN = 200  # a bounded knob narrower than this is a slider; a wider one a number box
TYPED_KNOBS = ("lr",)  # a learning rate spans decades, which a linear slider cannot pick
TRAIN_SIZE = "train_size"
SPLIT_COLOURS = {"train": "#1f77b4", "validation": "#ff7f0e"}  # as the dashboard's figures
CURVE_MIN_WIDTH = 280  # px: the two live curves and their legends fit side by side, or stack
LOCAL_SESSION = "local"  # a handler called directly, with no browser session
# Knobs by group, in the order they show; augmentation knobs and any new field find their own.
OPEN_GROUPS = {
    "Model": ("architecture", "hidden_sizes", "cnn_channels", "cnn_hidden", "dropout"),
    "Training": ("epochs", "batch_size", TRAIN_SIZE, "optimizer", "lr", "schedule"),
}
CLOSED_GROUPS = {
    "Optimiser details": ("momentum", "warmup_fraction", "weight_decay", "label_smoothing"),
    "Augmentation": (),  # every field whose help starts with "augmentation"
    "Data and seed": ("shuffle", "val_fraction", "seed"),
}

INTRO = """## Train it yourself
Pick a preset (or turn the knobs), press **Start** and watch the network learn: the loss falls
and the accuracy climbs, on the digits it trains on and on **validation** digits it never sees.
When the run ends it is yours: pick it under **Model** on the *Draw* tab and draw against it.
Runs are private to this browser tab."""

PRESET_NOTES = {
    "digitnet's recipe": "AdamW, one-cycle learning rate, label smoothing and augmentation: "
    "the shipped model's recipe, 15 epochs (about a minute).",
    "tiny and fast": "one hidden layer of 256 and light augmentation: 95% in seconds.",
    "the original tutorial": "plain SGD, lr 0.01, batch 100, no shuffling, no augmentation, "
    "as the tutorial this project started from (20 of its 100 epochs).",
}


def session_of(request: gr.Request | None) -> str:
    """The browser session (or API client) a request comes from."""
    return getattr(request, "session_hash", None) or LOCAL_SESSION


def resolve_model(
    service: TrainingService | None, choice: str | None, request: gr.Request | None
) -> RunRecord | None:
    """The session's own run called ``choice``, or None when ``choice`` names no run of its.

    The drawing handlers look here before the shipped models. Another session's run is
    never found. A run evicted from disk is a one-line error, not a silent other model.
    """
    if service is None or not choice:
        return None
    record = service.find_run(session_of(request), choice)
    if record is not None and record.evicted:
        raise gr.Error(
            f"{choice} was removed to make room (this server keeps its last "
            f"{service.keep_runs} runs); train it again"
        )
    return record


# ---------------------------------------------------------------------------
# What the tab shows, from a job's snapshot: plain functions, tested directly


def status_markdown(snapshot: JobSnapshot) -> str:
    """One line: where the run is, with the epoch, the epoch time and an ETA."""
    name = f"**{snapshot.name}**"
    if snapshot.state == QUEUED:
        if snapshot.position == 0:
            return f"⏳ {name} starts in a moment."
        runs = "run is" if snapshot.position == 1 else "runs are"
        return (
            f"⏳ {name} waits its turn: {snapshot.position} {runs} ahead of yours "
            f"(this server trains one at a time)."
        )
    if snapshot.state == PREPARING:
        return f"⏳ {name}: loading the digits…"
    if snapshot.state == CANCELLED:
        return f"✖️ {name} was cancelled ({snapshot.stop_reason or 'stopped'})."
    if snapshot.state == FAILED:
        return f"❌ {name} failed: {snapshot.error}"
    if snapshot.record is not None:
        return done_markdown(snapshot.record)
    step, epochs = snapshot.last_step, snapshot.epochs
    parts = [name]
    if step is not None:
        parts.append(f"epoch {step.epoch}/{step.epochs}")
        parts.append(f"step {step.step}/{step.total_steps}")
    if epochs:
        parts.append(f"last epoch {epochs[-1].seconds:.1f} s")
        validated = [e for e in epochs if e.val_accuracy is not None]
        if validated:
            parts.append(f"validation {100 * validated[-1].val_accuracy:.1f}%")
    if snapshot.state == MEASURING:
        ended = f"stopped ({snapshot.stop_reason})" if snapshot.stop_reason else "trained"
        return f"⏱️ {' · '.join(parts)} · {ended}; measuring it on canvas-like drawings and saving…"
    if snapshot.stop_reason:
        return f"🛑 {' · '.join(parts)} · stopping ({snapshot.stop_reason})…"
    if step is not None:
        parts.append(f"ETA {step.eta_seconds:.0f} s")
    return "🏋️ " + " · ".join(parts)


def done_markdown(record: RunRecord) -> str:
    summary = record.summary()
    drawings = summary["drawing_accuracy"]
    stopped = (
        f" Stopped ({summary['stop_reason']}) after epoch {summary['epochs']}; it keeps "
        f"epoch {summary['best_epoch']}'s weights."
        if summary["stopped"]
        else ""
    )
    return (
        f"✅ **{record.name}** is ready: validation **{100 * summary['val_accuracy']:.1f}%**"
        + (f", canvas-like drawings **{100 * drawings:.1f}%**" if drawings is not None else "")
        + f", trained in {summary['seconds']:.0f} s.{stopped} Pick **{record.name}** under "
        f"*Model* on the *Draw* tab and draw against it."
    )


def curve_frames(snapshot: JobSnapshot) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss, accuracy) frames of the live curves, train against validation.

    Each frame names both splits from its first update on: a split with no point yet gets
    one empty (NaN) row. Gradio 6.31 fixes a plot's colours from the splits present when it
    first draws and ignores splits that arrive later, so without that row the validation
    line, whose first point comes only when the first epoch ends, is never drawn.
    """
    frame = progress_frame(snapshot.reports)
    return tuple(
        with_every_split(frame[frame.metric == metric].reset_index(drop=True), metric)
        for metric in ("loss", "accuracy")
    )


def with_every_split(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``frame`` with a NaN row (which draws nothing) for each split it lacks."""
    missing = [split for split in SPLIT_COLOURS if split not in set(frame.split)]
    if not missing:
        return frame
    empty = pd.DataFrame(
        [{"epoch": 0.0, "metric": metric, "split": split, "value": math.nan} for split in missing]
    )
    return pd.concat([frame, empty], ignore_index=True) if len(frame) else empty


def runs_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    return pd.DataFrame([record.table_row() for record in records], columns=RUN_COLUMNS)


def per_digit_markdown(metadata: dict) -> str:
    """The per-digit precision, recall and F1 table, as the CLI prints it."""
    validation = metadata.get("metrics", {}).get("validation")
    if not validation:
        return ""
    return "```\n" + format_per_class_table(validation) + "\n```"


async def follow_job(service: TrainingService, job: Job) -> AsyncIterator[JobSnapshot]:
    """A job's snapshots as it goes, one per change (and one every IDLE_REDRAW_SECONDS while
    nothing changes, so a page that missed an update catches up), then its finished one.

    Closing it early (the page closed, the client went away; use ``contextlib.aclosing``)
    cancels the job. A failed job is a one-line gr.Error.
    """
    seen, shown_at = -1, 0.0
    try:
        while not (snapshot := job.snapshot()).finished:
            if snapshot.version != seen or time.monotonic() - shown_at > IDLE_REDRAW_SECONDS:
                seen, shown_at = snapshot.version, time.monotonic()
                yield snapshot
            await asyncio.sleep(UPDATE_SECONDS)
    finally:
        if not job.finished:
            service.cancel(job, "the page was closed")
    if snapshot.state == FAILED:
        raise gr.Error(snapshot.error, print_exception=False)
    yield snapshot


@dataclass(frozen=True)
class SessionModels:
    """Where a session's finished runs (trained or fine-tuned) go: the Draw tab's model
    choice, holding the ``shipped`` models, and its pad, holding their web files."""

    choice: gr.Radio | None = None
    shipped: Sequence[str] = ()
    pad: gr.HTML | None = None
    pad_browser_models: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def outputs(self) -> list[gr.Component]:
        return [component for component in (self.choice, self.pad) if component is not None]

    def updates(self, records: Sequence[RunRecord], new: RunRecord | None = None) -> list:
        """The outputs' values once ``new`` has joined the session's ``records``."""
        values = []
        if self.choice is not None:
            names = [*self.shipped, *(r.name for r in records if not r.evicted)]
            values.append(gr.Radio(choices=names))
        if self.pad is not None:
            if new is not None and new.web_model is not None:
                gr.set_static_paths([new.web_model])  # this one file, at an unguessable path
            browser = {**self.pad_browser_models, **browser_runs(records)}
            values.append(gr.HTML(models=pad_models(browser)))
        return values


def curve_plot(label: str, y_title: str, elem_id: str, **kwargs) -> gr.LinePlot:
    """A live curve of ``curve_frames`` rows: the value by epoch, train against validation.

    No ``height``: Gradio 6.31 gives a fixed height to the chart alone and clips the legend
    below it, and without the legend nobody can tell which line is the validation one.
    """
    return gr.LinePlot(
        x="epoch",
        y="value",
        color="split",
        label=label,
        x_title="epoch",
        y_title=y_title,
        color_map=SPLIT_COLOURS,
        elem_id=elem_id,
        **kwargs,
    )


def browser_runs(records: Sequence[RunRecord]) -> dict[str, Path]:
    """The runs the browser can run, by name: their web models."""
    return {
        record.name: record.web_model
        for record in records
        if not record.evicted and record.web_model is not None and record.web_model.is_file()
    }


def servable(path: Path) -> Path:
    """Gradio serves files from the working folder and the temp folder; copy others there."""
    resolved = path.resolve()
    for root in (Path.cwd(), Path(tempfile.gettempdir())):
        if resolved.is_relative_to(root.resolve()):
            return resolved
    copy = Path(tempfile.mkdtemp(prefix="digitnet-run-")) / path.name
    shutil.copyfile(path, copy)
    return copy


# ---------------------------------------------------------------------------
# The knobs, generated from field metadata


def knob_component(field: dataclasses.Field, value: object, max_epochs: int) -> gr.Component:
    """The input for one config field: its help and range as the info line."""
    meta = field.metadata
    common = dict(label=field.name, info=knob_help(field), elem_id=f"knob-{field.name}")
    if meta["choices"]:
        return gr.Radio(list(meta["choices"]), value=value, **common)
    if isinstance(value, bool):
        return gr.Checkbox(value=value, **common)
    if isinstance(value, (tuple, list)):
        return gr.Textbox(value=knob_text(value), max_lines=1, **common)
    low, high = meta["low"], meta["high"]
    if field.name == "epochs":
        high = min(high, max_epochs)
        common["info"] = f"{meta['help']}, at most {max_epochs} here"
    whole = isinstance(value, int)
    if (
        low is not None
        and high is not None
        and high - low <= SLIDER_SPAN
        and field.name not in TYPED_KNOBS
    ):
        step = 1 if whole else 10 ** math.floor(math.log10((high - low) / 50))
        minimum = low + step if meta["low_open"] else low
        maximum = high - step if meta["high_open"] else high
        return gr.Slider(minimum, maximum, value=value, step=step, **common)
    return gr.Number(value=value, precision=0 if whole else None, **common)


def train_size_component(max_train_size: int) -> gr.Slider:
    return gr.Slider(
        MIN_TRAIN_SIZE,
        max_train_size,
        value=max_train_size,
        step=10,
        label=TRAIN_SIZE,
        info="digits to train on: the first N of the training split (500, 2,000...), or "
        "all of it when N is larger",
        elem_id=f"knob-{TRAIN_SIZE}",
    )


def grouped_fields() -> dict[str, list[dataclasses.Field]]:
    """Every knob field in its group, in the order the tab shows them."""
    fields = {f.name: f for f in knob_fields()}
    groups: dict[str, list] = {}
    for group, names in {**OPEN_GROUPS, **CLOSED_GROUPS}.items():
        groups[group] = [fields.pop(name) for name in names if name in fields]
    for name in list(fields):
        if fields[name].metadata["help"].startswith("augmentation"):
            groups["Augmentation"].append(fields.pop(name))
    groups["More"] = list(fields.values())  # a field added later shows up here by itself
    return groups


# ---------------------------------------------------------------------------
# Wiring


@dataclass
class TrainTab:
    """The tab's components, by name, for the app and tests."""

    knobs: dict[str, gr.Component]
    preset: gr.Radio
    start: gr.Button
    stop: gr.Button
    summary: gr.JSON
    status: gr.Markdown
    loss: gr.LinePlot
    accuracy: gr.LinePlot
    per_class: gr.BarPlot
    per_digit: gr.Markdown
    confusion: gr.Plot
    mistakes: gr.Gallery
    runs: gr.Dataframe
    download: gr.DownloadButton


def build_train_tab(
    service: TrainingService,
    demo: gr.Blocks,
    targets: SessionModels | None = None,
) -> TrainTab:
    """Lay out the Train tab inside the current ``gr.Tab`` and wire its events.

    ``targets`` (the Draw tab's model choice and pad) get each finished run of the
    session; ``demo.unload`` cancels a closed session's job.
    """
    preset_values = PRESETS[DEFAULT_PRESET]
    gr.Markdown(INTRO)
    gr.Markdown(f"This server allows {service.caps.describe()}.", elem_id="train-caps")
    knobs: dict[str, gr.Component] = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            preset = gr.Radio(
                list(PRESETS),
                value=DEFAULT_PRESET,
                label="Preset",
                info=PRESET_NOTES[DEFAULT_PRESET],
                elem_id="train-preset",
            )
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
            for group, fields in grouped_fields().items():
                if not fields:  # "More": no field is left over today
                    continue
                with gr.Accordion(group, open=group in OPEN_GROUPS):
                    for field in fields:
                        knobs[field.name] = knob_component(
                            field, preset_values[field.name], service.caps.max_epochs
                        )
                    if group == "Training":
                        knobs[TRAIN_SIZE] = train_size_component(service.caps.max_train_size)
        with gr.Column(scale=2, min_width=320):
            status = gr.Markdown("Press **Start** to train.", elem_id="train-status")
            with gr.Row():  # side by side on a laptop, one above the other on a phone
                loss = curve_plot(
                    "Loss (cross-entropy)", "loss", "train-loss", min_width=CURVE_MIN_WIDTH
                )
                accuracy = curve_plot(
                    "Accuracy (%)",
                    "% correct",
                    "train-accuracy",
                    y_lim=[0, 100],
                    min_width=CURVE_MIN_WIDTH,
                )
            with gr.Accordion("Run summary (what the train API returns)", open=False):
                summary = gr.JSON(label="Summary", elem_id="train-summary")
            download = gr.DownloadButton(
                "Download the checkpoint", visible=False, elem_id="train-download"
            )
    gr.Markdown("### Your run, measured on the validation digits")
    with gr.Row(equal_height=False):
        per_class = per_class_plot(elem_id="train-per-class")
        with gr.Column(min_width=MIN_CHART_WIDTH):  # a Markdown's own min_width is ignored
            per_digit = gr.Markdown(elem_id="train-per-digit")
    confusion, mistakes = confusion_and_mistakes("train-confusion", "train-mistakes")
    gr.Markdown("### Your runs\nEvery run of this tab, to compare recipes side by side.")
    runs = gr.Dataframe(
        value=runs_frame([]),
        headers=RUN_COLUMNS,
        interactive=False,
        wrap=True,
        elem_id="train-runs",
    )

    tab = TrainTab(
        knobs=knobs,
        preset=preset,
        start=start,
        stop=stop,
        summary=summary,
        status=status,
        loss=loss,
        accuracy=accuracy,
        per_class=per_class,
        per_digit=per_digit,
        confusion=confusion,
        mistakes=mistakes,
        runs=runs,
        download=download,
    )
    _wire(tab, service, demo, targets or SessionModels())
    return tab


def _wire(
    tab: TrainTab,
    service: TrainingService,
    demo: gr.Blocks,
    targets: SessionModels,
) -> None:
    dashboard = [tab.per_class, tab.per_digit, tab.confusion, tab.mistakes]
    outputs = [tab.summary, tab.status, tab.loss, tab.accuracy, *dashboard, tab.runs]
    outputs += [tab.download, *targets.outputs]
    knob_names = [name for name in tab.knobs if name != TRAIN_SIZE]

    def progress(snapshot: JobSnapshot, first: bool) -> list:
        loss, accuracy = curve_frames(snapshot)
        epochs = snapshot.last_step.epochs if snapshot.last_step else None
        x_lim = [0, epochs] if epochs else None
        values = [
            snapshot.summary(),
            status_markdown(snapshot),
            gr.LinePlot(value=loss, x_lim=x_lim),
            gr.LinePlot(value=accuracy, x_lim=x_lim),
        ]
        if first:  # the last run's dashboard goes: it would be mistaken for this one's
            values += [None, "", None, [], gr.skip(), gr.DownloadButton(visible=False)]
        else:
            values += [gr.skip()] * 6
        return values + [gr.skip()] * (len(outputs) - len(values))

    def finished(snapshot: JobSnapshot, session: str) -> list:
        record = snapshot.record
        metadata = record.metadata
        loss, accuracy = curve_frames(snapshot)
        records = service.runs(session)
        values = [
            snapshot.summary(),
            status_markdown(snapshot),
            loss,
            accuracy,
            per_class_bars(metadata),
            per_digit_markdown(metadata),
            confusion_figure(metadata),
            mistake_gallery(metadata),
            runs_frame(records),
            gr.DownloadButton(
                f"Download {record.name} (.safetensors + .json, zipped)",
                value=str(servable(record.download)),
                visible=True,
            ),
        ]
        return values + targets.updates(records, record)

    async def train(request: gr.Request, **values):
        """Train on the given knobs; stream progress; the first output is a JSON summary."""
        session = session_of(request)
        try:
            job = await asyncio.to_thread(service.submit, session, values)
        except DigitnetError as error:
            raise gr.Error(str(error), print_exception=False) from None
        first = True
        async with aclosing(follow_job(service, job)) as snapshots:
            async for snapshot in snapshots:
                if not snapshot.finished:
                    yield progress(snapshot, first)
                    first = False
        if snapshot.record is None:  # cancelled
            yield progress(snapshot, first)
            return
        # The figures take a moment to draw; the event loop keeps serving meanwhile.
        yield await asyncio.to_thread(finished, snapshot, session)

    def stop(request: gr.Request) -> str:
        """Stop your run (it keeps its best weights so far), or take it off the queue."""
        name = service.stop(session_of(request))
        return f"🛑 Stopping **{name}**…" if name else "Nothing is training for you."

    def list_runs(request: gr.Request) -> pd.DataFrame:
        """Your finished runs: name, key knobs, accuracies and seconds."""
        return runs_frame(service.runs(session_of(request)))

    def apply_preset(name: str) -> list:
        values = PRESETS.get(name, PRESETS[DEFAULT_PRESET])
        note = gr.Radio(info=PRESET_NOTES.get(name, ""))
        return [note] + [knob_text(values[knob]) for knob in knob_names]

    def end_session(request: gr.Request) -> None:
        service.end_session(session_of(request))

    tab.start.click(
        train,
        inputs_kwargs=tab.knobs,
        outputs=outputs,
        api_name="train",
        # Raw values: the knobs are parsed and checked by digitnet.jobs, one message each,
        # where a slider's own check would say "Value 200 is greater than maximum value 100".
        preprocess=False,
        concurrency_limit=None,  # the service queues; followers only wait
        trigger_mode="once",
        show_progress="minimal",
    )
    tab.stop.click(stop, None, tab.status, api_name="stop", concurrency_limit=None)
    tab.preset.change(
        apply_preset,
        tab.preset,
        [tab.preset] + [tab.knobs[name] for name in knob_names],
        api_visibility="private",
    )
    demo.load(list_runs, None, tab.runs, api_name="runs")
    demo.unload(end_session)

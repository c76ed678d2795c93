"""The Train tab: train the MLP or the CNN live, watch its curves, then draw against it.

The knobs are generated from the configs' field metadata (help, range, choices), so a new
config field appears here by itself. The work is
:class:`digitnet.training_service.TrainingService`; this module wires it to Gradio: a
streaming ``train`` endpoint, ``stop`` and ``runs``. A finished
run joins the session's models (:class:`~digitnet.ui.session.ModelChoiceOutputs`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from digitnet.dashboard import progress_frame
from digitnet.errors import DigitnetError
from digitnet.evaluate import format_per_class_table
from digitnet.jobs import (
    RUN_COLUMNS,
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
from digitnet.ui.live_job import follow_job, status_markdown
from digitnet.ui.run_figures import (
    MIN_CHART_WIDTH,
    confusion_and_mistakes,
    confusion_plot,
    mistake_files,
    per_class_bars,
    per_class_plot,
)
from digitnet.ui.session import ModelChoiceOutputs, session_of
from digitnet.ui.setup_link import (
    SetupLinkPanel,
    build_copy_link,
    build_link_notes,
    wire_setup_link,
)
from digitnet.ui.static_files import servable, served_folder

SLIDER_SPAN = 200  # a bounded knob narrower than this is a slider; a wider one a number box
TYPED_KNOBS = ("lr",)  # a learning rate spans decades, which a linear slider cannot pick
TRAIN_SIZE = "train_size"
SPLIT_COLOURS = {"train": "#1f77b4", "validation": "#ff7f0e"}  # as the dashboard's figures
CURVE_MIN_WIDTH = 280  # px: the two live curves and their legends fit side by side, or stack
# Knobs by group, in the order they show: what a first run turns open, the rest folded.
# Augmentation knobs and any new field find their own group.
OPEN_GROUPS = {
    "Model": ("architecture", "hidden_sizes", "cnn_channels", "cnn_hidden"),
    "Training": ("epochs", "lr"),  # then train_size
}
CLOSED_GROUPS = {
    "How it learns (advanced)": (
        "batch_size",
        "optimizer",
        "schedule",
        "momentum",
        "warmup_fraction",
        "weight_decay",
        "label_smoothing",
        "dropout",
    ),
    "Augmentation": (),  # every field whose help starts with "augmentation"
    "Data and seed": ("shuffle", "val_fraction", "seed"),
}

INTRO = """## Train it yourself
Pick a preset (or turn the knobs), press **Start** and watch the network learn: the loss falls
and the accuracy climbs, on the digits it trains on and on **validation** digits it never sees.
When the run ends it is yours: pick it under **Model** on the *Draw* tab and draw against it.
Runs are private to this browser tab."""

# Each knob in a learner's words, with one short sentence; the config name (what the API and
# the CLI call it) follows the label, so a program's author still finds it.
PLAIN_KNOBS = {
    "architecture": (
        "Kind of network",
        "MLP: layers of units; CNN: small filters slid over the image.",
    ),
    "hidden_sizes": (
        "Layers and their sizes",
        "One number per hidden layer: its units, e.g. 512, 512.",
    ),
    "cnn_channels": (
        "Filters per block",
        "How many patterns each of the CNN's two blocks looks for.",
    ),
    "cnn_hidden": ("Units before the answer", "The CNN's last layer, before the ten answers."),
    "dropout": (
        "Dropout",
        "Share of units switched off at random while training, so none is relied on.",
    ),
    "epochs": ("Epochs", "How many times it goes through all its training digits."),
    "batch_size": ("Digits per step", "How many digits it looks at before each small correction."),
    "optimizer": ("Optimiser", "The rule that turns mistakes into changes of the weights."),
    "lr": (
        "Learning rate",
        "How big each correction is: too big and it jumps about, too small and it crawls.",
    ),
    "schedule": (
        "Learning-rate schedule",
        "constant, cosine (slows to a stop) or onecycle (speeds up, then slows).",
    ),
    "momentum": ("Momentum", "How much of the last step SGD carries into the next."),
    "warmup_fraction": ("Warm-up share", "Share of the steps onecycle spends speeding up."),
    "weight_decay": ("Weight decay", "A pull of every weight towards zero, against memorising."),
    "label_smoothing": ("Label smoothing", "Teaches it to be a little less than 100% sure."),
    "shuffle": ("Shuffle", "Deal the digits in a new order every epoch."),
    "augment": (
        "Vary the digits",
        "Rotate, zoom, shift and thicken training digits a little, as people draw.",
    ),
    "nondigit_fraction": (
        "Not-a-digit examples",
        "Letters, shapes and scribbles mixed in, taught to get no answer (0: off).",
    ),
    "val_fraction": (
        "Held-out share",
        "Share of each digit kept aside to measure on, never learnt from.",
    ),
    "seed": ("Seed", "Fixes the dice: the same seed and knobs train the same network."),
}

PRESET_NOTES = {
    "digitnet's recipe": "AdamW, one-cycle learning rate, label smoothing and augmentation: "
    "the shipped model's recipe, 15 epochs (about a minute).",
    "tiny and fast": "one hidden layer of 256 and light augmentation: about 95% in seconds "
    "with the MLP (the CNN takes minutes).",
    "the original tutorial": "plain SGD, lr 0.01, batch 100, no shuffling, no augmentation, "
    "as the tutorial this project started from (20 of its 100 epochs).",
}


# ---------------------------------------------------------------------------
# What the tab shows, from a job's snapshot: plain functions, tested directly


def curve_frames(snapshot: JobSnapshot) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss, accuracy) frames of the live curves, train against validation.

    Each frame names both splits from its first update on: a split with no point yet gets
    one empty (NaN) row. Gradio 6.31 fixes a plot's colours from the splits present when it
    first draws and ignores splits that arrive later, so without that row the validation
    line, whose first point comes only when the first epoch ends, is never drawn.
    """
    return _frames_of_reports(snapshot.reports)


# Every page following one training asks for the same frames at each update: a room of 20
# on one run would otherwise build them 20 times over on the event loop. The reports are
# frozen dataclasses, so the tuple of them is the key; the frames must not be changed.
@functools.lru_cache(maxsize=64)
def _frames_of_reports(reports: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = progress_frame(reports)
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


# ---------------------------------------------------------------------------
# The knobs, generated from field metadata


def knob_label(name: str) -> str:
    """A knob's label: its plain name, then the config name the API and CLI use."""
    plain = PLAIN_KNOBS.get(name, (None, None))[0]
    return f"{plain} · {name}" if plain else name


def knob_info(field: dataclasses.Field) -> str:
    """One short sentence a learner reads; the field's own help where none is written."""
    return PLAIN_KNOBS.get(field.name, (None, None))[1] or knob_help(field)


def knob_component(field: dataclasses.Field, value: object, max_epochs: int) -> gr.Component:
    """The input for one config field: its plain label and one sentence of help."""
    meta = field.metadata
    common = dict(label=knob_label(field.name), info=knob_info(field), elem_id=f"knob-{field.name}")
    if meta["choices"]:
        return gr.Radio(list(meta["choices"]), value=value, **common)
    if isinstance(value, bool):
        return gr.Checkbox(value=value, **common)
    if isinstance(value, (tuple, list)):
        return gr.Textbox(value=knob_text(value), max_lines=1, **common)
    low, high = meta["low"], meta["high"]
    if field.name == "epochs":
        high = min(high, max_epochs)
        common["info"] = f"{knob_info(field)} At most {max_epochs} here."
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
        label=f"Digits to learn from · {TRAIN_SIZE}",
        info="The first N digits of the training split, or all of them when it has fewer "
        "(the status says how many it learnt from).",
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
    setup_link: SetupLinkPanel | None = None  # the knobs from a link, and a link to them

    @property
    def train_outputs(self) -> list[gr.Component]:
        """What ``train`` fills, in order, before the model choice and the pad."""
        dashboard = [self.per_class, self.per_digit, self.confusion, self.mistakes]
        return [
            self.summary,
            self.status,
            self.loss,
            self.accuracy,
            *dashboard,
            self.runs,
            self.download,
        ]


def build_train_tab(
    service: TrainingService,
    demo: gr.Blocks,
    targets: ModelChoiceOutputs | None = None,
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
            link_notes = build_link_notes()  # what a link set that could not be used
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", elem_id="train-stop")  # not red: nothing may be running
            # Right under Start: on a phone the knobs below are a long scroll, and a run
            # that shows nothing where it was started looks as if it never began.
            status = gr.Markdown(
                "Press **Start** to train.", label="Status", elem_id="train-status"
            )
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
            setup_link = build_copy_link(link_notes)
        with gr.Column(scale=2, min_width=320):
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
            with gr.Accordion("The run in numbers (for programs)", open=False):
                summary = gr.JSON(label="Summary", elem_id="train-summary")
            download = gr.DownloadButton(
                "Download the checkpoint", visible=False, elem_id="train-download"
            )
    gr.Markdown("### Your run, measured on the validation digits")
    with gr.Row(equal_height=False):
        per_class = per_class_plot(elem_id="train-per-class")
        with gr.Column(min_width=MIN_CHART_WIDTH):  # a Markdown's own min_width is ignored
            per_digit = gr.Markdown(
                label="Per-digit precision, recall and F1", elem_id="train-per-digit"
            )
    confusion, mistakes = confusion_and_mistakes("train-confusion", "train-mistakes")
    gr.Markdown("### Your runs\nEvery run of this tab, to compare recipes side by side.")
    runs = gr.Dataframe(
        value=runs_frame([]),
        headers=RUN_COLUMNS,
        interactive=False,
        wrap=True,
        label="Your runs",
        show_label=False,  # the heading above says it
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
        setup_link=setup_link,
    )
    _wire(tab, service, demo, targets or ModelChoiceOutputs())
    wire_setup_link(setup_link, demo, preset, knobs, service.caps, PRESET_NOTES)
    return tab


@dataclass(frozen=True)
class TrainHandlers:
    """The tab's handlers, plain functions of the service (tested without a server)."""

    train: Callable  # (request, **knob values) -> streams the outputs of ``train_outputs``
    stop: Callable  # (request) -> the status line
    list_runs: Callable  # (request) -> the session's runs as a table
    apply_preset: Callable  # (preset name) -> the preset's note, then each knob's value
    end_session: Callable  # (request) -> None: the page closed


def make_train_handlers(
    service: TrainingService, knob_names: Sequence[str], targets: ModelChoiceOutputs
) -> TrainHandlers:
    """``train`` fills the tab's :meth:`TrainTab.train_outputs`, then ``targets``' outputs."""
    targets_skip = [gr.skip()] * len(targets.outputs)  # they change only when a run is done

    def progress(snapshot: JobSnapshot, first: bool, axes: bool) -> list:
        """With ``axes``, the curves' x range too: an update of a component's settings costs
        Gradio a copy of its config for the session, so it goes once, values after that."""
        loss, accuracy = curve_frames(snapshot)
        if axes:
            x_lim = [0, snapshot.last_step.epochs]
            loss = gr.LinePlot(value=loss, x_lim=x_lim)
            accuracy = gr.LinePlot(value=accuracy, x_lim=x_lim)
        values = [snapshot.summary(), status_markdown(snapshot), loss, accuracy]
        if first:  # the last run's dashboard goes: it would be mistaken for this one's
            values += [None, "", None, [], gr.skip(), gr.DownloadButton(visible=False)]
        else:
            values += [gr.skip()] * 6
        return values + targets_skip

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
            confusion_plot(metadata),
            mistake_files(metadata, served_folder(record.download.parent)),
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
        first, axes_sent = True, False
        async with aclosing(follow_job(service, job)) as snapshots:
            async for snapshot in snapshots:
                if not snapshot.finished:
                    axes = not axes_sent and snapshot.last_step is not None
                    yield progress(snapshot, first, axes)
                    first, axes_sent = False, axes_sent or axes
        if snapshot.record is None:  # cancelled
            yield progress(snapshot, first, False)
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

    return TrainHandlers(train, stop, list_runs, apply_preset, end_session)


def _wire(
    tab: TrainTab,
    service: TrainingService,
    demo: gr.Blocks,
    targets: ModelChoiceOutputs,
) -> None:
    knob_names = [name for name in tab.knobs if name != TRAIN_SIZE]
    handlers = make_train_handlers(service, knob_names, targets)
    tab.start.click(
        handlers.train,
        inputs_kwargs=tab.knobs,
        outputs=[*tab.train_outputs, *targets.outputs],
        api_name="train",
        # Raw values: the knobs are parsed and checked by digitnet.jobs, one message each,
        # where a slider's own check would say "Value 200 is greater than maximum value 100".
        preprocess=False,
        concurrency_limit=None,  # the service queues; followers only wait
        trigger_mode="once",
        show_progress="minimal",
    )
    tab.stop.click(handlers.stop, None, tab.status, api_name="stop", concurrency_limit=None)
    # A visitor's pick only: a page opened from a link sets the preset and then its own knobs.
    tab.preset.input(
        handlers.apply_preset,
        tab.preset,
        [tab.preset] + [tab.knobs[name] for name in knob_names],
        api_visibility="private",
    )
    demo.load(handlers.list_runs, None, tab.runs, api_name="runs")
    demo.unload(handlers.end_session)

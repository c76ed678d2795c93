"""Your drawings (issue 9's app side): the saving switch and "Right" / "No, it's a …" under
the answer, the "Your drawings" tab (gallery, delete, counts, accuracy on real drawings,
fine-tune) and the ``save_drawing`` and ``finetune`` API endpoints.

Handlers are plain functions of plain values (tested directly); the ``build_*`` functions
only create and wire components. Saves run on their own events and queue slots
(:data:`SAVE_QUEUE`), never the answer's, so saving never holds up the next answer. A
fine-tune is a job of the app's :class:`~digitnet.jobs.TrainingService`: it queues behind
other visitors' runs, under the same caps, and its result is the session's own run.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from types import MappingProxyType

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image
from torch import nn

from digitnet.data import Digits
from digitnet.drawing_data import Accuracy, accuracy_of, save_image_file
from digitnet.errors import DigitnetError
from digitnet.finetune import (
    MIN_DRAWINGS,
    FinetuneConfig,
    drawings_from_store,
    trained_on_drawings,
)
from digitnet.jobs import FinetuneRequest, JobSnapshot
from digitnet.predict import Prediction, classify_preprocessed, predict_probs
from digitnet.preprocess import digits_to_inputs
from digitnet.store import (
    SOURCE_API,
    SOURCE_APP,
    DrawingStore,
    StoreError,
    drawing_png,
    open_store,
    resolve_db_path,
)
from digitnet.training_service import TrainingService
from digitnet.ui.draw_tab import preprocess_pad_value
from digitnet.ui.models import LoadedModel
from digitnet.ui.pad import PadDrawing, parse_pad_value
from digitnet.ui.train_tab import (
    SessionModels,
    follow_job,
    session_of,
    status_markdown,
)

DIGIT_LABELS = [str(digit) for digit in range(10)]
ALL = "all"
RIGHT, WRONG = "right", "wrong"
GALLERY_ROWS = 60  # newest drawings shown; the filters reach older ones
SAVE_QUEUE = "drawings-save"  # saves' own queue slots, apart from the answer's
SAVE_CONCURRENCY = 4  # the store serialises writes anyway; more only waits
SPACE_ENV = "SPACE_ID"  # set by Hugging Face Spaces
API_SAVING_ENV = "DIGITNET_API_SAVING"  # "1": save_drawing takes drawings even on a Space
STROKE_DECIMALS = 1  # pad units are 0-280: a tenth is far finer than the brush

# The feedback buttons read the pad's drawing in the page as it is now: the value Gradio
# holds is sent a moment after the pen lifts, and a quick click must not save the one before.
FRESH_PAD_JS = (
    "(pad, choice, keep) => [globalThis.digitnetPads?.[{pad!r}]?.value() ?? pad, choice, keep]"
)

KEPT = (
    "Kept when you press Right or No, it's a …: the 28×28 input the model saw, a small PNG "
    "and the strokes of your drawing, the model, its ten probabilities, its answer and your "
    "label, with the time and this page's session id (no name, no address). Stored in {path} "
    "on the machine running this app and shown in its Your drawings tab to everyone using it; "
    "only this page's session can delete its rows."
)
NOTHING_DRAWN = "Draw a digit first, then tell the model whether it was right."


# ---------------------------------------------------------------------------
# The store and the switch


@dataclass(frozen=True)
class AppStore:
    """The drawings store the app opened, or None with the one-line reason saving is off."""

    path: Path
    store: DrawingStore | None
    warning: str | None

    @property
    def saving(self) -> bool:
        return self.store is not None


def open_app_store(path: str | Path | None = None) -> AppStore:
    """Open ``path`` (else ``$DIGITNET_DB``, else runs/drawings.sqlite) for the app.

    A corrupt, foreign or read-only database does not stop the app: it starts with saving
    switched off and this one-line warning naming the file and what to do.
    """
    resolved = resolve_db_path(path)
    try:
        return AppStore(resolved, open_store(resolved), None)
    except DigitnetError as error:
        return AppStore(resolved, None, f"Saving drawings is off: {error}")


def saving_default(environ: Mapping[str, str]) -> bool:
    """On when run locally; off on a Hugging Face Space, where visitors are strangers."""
    return not environ.get(SPACE_ENV)


def api_saving(environ: Mapping[str, str]) -> bool:
    """Whether ``save_drawing`` keeps drawings: the API has no switch, so it follows the
    switch's default (off on a Space, where strangers could fill everyone's gallery and
    fine-tunes) unless the server's owner sets ``DIGITNET_API_SAVING=1``."""
    return saving_default(environ) or environ.get(API_SAVING_ENV) == "1"


def saving_switch(app_store: AppStore, environ: Mapping[str, str]) -> gr.Checkbox:
    """The visible opt-in switch, saying what is kept (disabled when saving is off)."""
    if not app_store.saving:
        return gr.Checkbox(
            value=False,
            interactive=False,
            label="Keep my drawings (off: the drawings database could not be opened)",
            info=app_store.warning,
            elem_id="keep-drawings",
        )
    return gr.Checkbox(
        value=saving_default(environ),
        label="Keep my drawings when I confirm or correct an answer",
        info=KEPT.format(path=app_store.path),
        elem_id="keep-drawings",
    )


# ---------------------------------------------------------------------------
# Confirm or correct


def pad_strokes(strokes: list[np.ndarray]) -> list[list[list[float]]]:
    """The pad's strokes as compact JSON-able lists (as the pad sends them, rounded)."""
    return [np.round(stroke, STROKE_DECIMALS).tolist() for stroke in strokes]


@dataclass(frozen=True)
class Feedback:
    """The components under an answer."""

    switch: gr.Checkbox
    right: gr.Button
    wrong: list[gr.Button]  # digits 0-9
    status: gr.Markdown


def build_feedback(app_store: AppStore, environ: Mapping[str, str]) -> Feedback:
    """ "Right ✓" and "No, it's a …" 0-9, a status line, and the saving switch."""
    # Real buttons, with borders and room for a finger (app.css): a bare row of 0-9 under the
    # bars read as the chart's axis.
    with gr.Column(elem_id="feedback"):  # not a Group: it strips the buttons' borders
        with gr.Row(equal_height=True, elem_id="right-row"):
            right = gr.Button("Right ✓", variant="primary", elem_id="right", scale=0)
            gr.Markdown("or, if not: **No, it's a …**", elem_id="wrong-label")
        with gr.Row(elem_id="wrong-digits"):
            wrong = [
                gr.Button(digit, variant="secondary", min_width=26, elem_id=f"wrong-{digit}")
                for digit in DIGIT_LABELS
            ]
    status = gr.Markdown(elem_id="feedback-status")
    switch = saving_switch(app_store, environ)
    return Feedback(switch, right, wrong, status)


# A session's model by its choice name (shipped, or the session's own run).
ModelPicker = Callable[[str | None, "gr.Request | None"], LoadedModel]


def shown_label(drawing: PadDrawing, model_name: str, answer: Prediction) -> int:
    """What "Right" confirms: the digit the page showed (the browser's answer for the
    model), else the server's. They differ only on a near tie, and the person saw the page's.
    """
    probs = drawing.browser_answers.get(model_name)
    return int(np.argmax(probs)) if probs is not None else answer.label


def drawing_key(drawing: PadDrawing) -> str:
    """What tells one drawing from another: its strokes as saved (or the example's name)."""
    if drawing.example:
        return f"example:{drawing.example}"
    return json.dumps(pad_strokes(drawing.strokes), separators=(",", ":"))


class KeptDrawings:
    """Each session's last kept drawing: its key, row id and label.

    A person who presses Right, then "No, it's a 9" for the same drawing, corrects one row
    rather than keeping the drawing twice; pressing the same button again keeps nothing new.
    And the status line ("Kept as a 7") is cleared once the pad holds another drawing.
    """

    SESSIONS = 10_000  # the oldest sessions are forgotten first; a row is never lost by it

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: OrderedDict[str, tuple[str, int, int]] = OrderedDict()

    def last(self, session: str) -> tuple[str, int, int] | None:
        with self._lock:
            return self._last.get(session)

    def remember(self, session: str, key: str, row_id: int, label: int) -> None:
        with self._lock:
            self._last[session] = (key, row_id, label)
            self._last.move_to_end(session)
            while len(self._last) > self.SESSIONS:
                self._last.popitem(last=False)

    def is_last(self, session: str, key: str) -> bool:
        last = self.last(session)
        return last is not None and last[0] == key


def make_saver(
    app_store: AppStore,
    examples: dict[str, Path],
    pick: ModelPicker,
    kept: KeptDrawings | None = None,
) -> Callable[[int | None], Callable]:
    """``saver(label)``: the handler of the "Right" (label None) or "No, it's a LABEL" button.

    The server reads the drawing again from the pad's strokes and runs the chosen model on
    it, so what is stored is exactly what the server would answer, not what a page claims.
    The same drawing confirmed or corrected again replaces its row (see :class:`KeptDrawings`).
    """
    kept = kept if kept is not None else KeptDrawings()

    def saver(label: int | None):
        def save(value, choice: str | None, enabled: bool, request: gr.Request = None) -> str:
            if not enabled:
                return "Not kept: saving is switched off (the switch below)."
            if app_store.store is None:
                return "Not kept: the drawings database could not be opened (see the warning)."
            drawing, preprocessed = preprocess_pad_value(value, examples)
            if preprocessed.is_blank:
                return NOTHING_DRAWN
            session, key = session_of(request), drawing_key(drawing)
            loaded = pick(choice, request)
            if choice and loaded.name != choice:
                raise gr.Error(
                    f"{str(choice)[:40]} is no longer here (the server restarted, or the run "
                    f"was removed); choose another model and draw again",
                    print_exception=False,
                )
            answer = classify_preprocessed(loaded.model, preprocessed)
            said = shown_label(drawing, loaded.name, answer)  # the answer the person saw
            true_label = said if label is None else label
            last = kept.last(session)
            again = last is not None and last[0] == key
            if again and last[2] == true_label:
                return f"Already kept as a **{true_label}** (drawing #{last[1]})."
            try:
                if again:  # a correction of the drawing just kept: one row, the new label
                    app_store.store.delete(last[1], session=session)
                saved = app_store.store.save(
                    preprocessed.image,
                    true_label,
                    session=session,
                    source=SOURCE_APP,
                    model=loaded.name,
                    probs=answer.probs,
                    predicted=said,
                    strokes=pad_strokes(drawing.strokes) if drawing.strokes else None,
                    png=drawing_png(preprocessed),
                )
            except DigitnetError as error:
                raise gr.Error(str(error), print_exception=False) from None
            kept.remember(session, key, saved.id, true_label)
            verdict = "right" if true_label == said else f"wrong (it said {said})"
            changed = f"Changed from a {last[2]} to " if again else "Kept as "
            return (
                f"{changed}a **{true_label}**, {loaded.name} was {verdict}: drawing "
                f"#{saved.id}, {saved.count} in the store. Thank you!"
            )

        return save

    return saver


def wire_feedback(
    feedback: Feedback,
    pad: gr.HTML,
    choice: gr.Radio,
    app_store: AppStore,
    examples: dict[str, Path],
    pick: ModelPicker,
) -> None:
    """Each button saves on its own event and queue slots (:data:`SAVE_QUEUE`).

    The status line goes blank when the pad sends another drawing: "Kept as a 7" under a
    freshly drawn 4 would read as being about the 4.
    """
    kept = KeptDrawings()
    saver = make_saver(app_store, examples, pick, kept)

    def clear_stale(value, request: gr.Request = None):
        try:
            drawing = parse_pad_value(value, frozenset(examples))
        except DigitnetError:
            return gr.skip()  # the answer's own event says what is wrong with the value
        return gr.skip() if kept.is_last(session_of(request), drawing_key(drawing)) else ""

    pad.change(
        clear_stale,
        pad,
        feedback.status,
        queue=False,
        api_visibility="private",
        show_progress="hidden",
    )
    for label, button in [(None, feedback.right), *enumerate(feedback.wrong)]:
        button.click(
            saver(label),
            [pad, choice, feedback.switch],
            feedback.status,
            js=FRESH_PAD_JS.format(pad=pad.elem_id),
            api_visibility="private",
            concurrency_id=SAVE_QUEUE,
            concurrency_limit=SAVE_CONCURRENCY,
            show_progress="hidden",
        )


# ---------------------------------------------------------------------------
# The save_drawing endpoint


def save_drawing_file(
    store: DrawingStore | None, path: str | None, label: object, session: str, enabled: bool = True
) -> dict:
    """An image file and a label 0-9 -> ``{"id", "count"}``; one-line StoreError otherwise."""
    if store is None:
        raise StoreError("saving drawings is off on this server (its database could not open)")
    if not enabled:
        raise StoreError(
            f"saving drawings through the API is off on this server (a Hugging Face Space); "
            f"its owner can set {API_SAVING_ENV}=1"
        )
    if not path:
        raise StoreError("no image was sent; send a PNG or JPEG of one digit and a label 0-9")
    saved = save_image_file(store, path, label, session=session, source=SOURCE_API)
    return {"id": saved.id, "count": saved.count}


# ---------------------------------------------------------------------------
# The tab's views


def gallery_items(
    store: DrawingStore, digit: str | None, outcome: str | None
) -> tuple[list[tuple[Image.Image, str]], list[int]]:
    """The newest matching drawings as (picture, caption), and their row ids in order."""
    rows = store.list_drawings(
        digit=None if digit in (None, ALL) else int(digit),
        correct={RIGHT: True, WRONG: False}.get(outcome or ALL),
        limit=GALLERY_ROWS,
    )
    items, ids = [], []
    for row in rows:
        picture = Image.open(BytesIO(row.png)) if row.png else Image.fromarray(255 - row.pixels)
        # Short enough to read under a thumbnail: the true label first, then the model's.
        said = ""
        if row.predicted is not None:
            mark = "✓" if row.predicted == row.label else "✗"
            said = f" · {row.model or 'model'}: {row.predicted} {mark}"
        items.append((picture, f"#{row.id}: {row.label}{said}"))
        ids.append(row.id)
    return items, ids


def counts_frame(store: DrawingStore) -> pd.DataFrame:
    """One row: how many drawings of each digit, then all of them (wide, as the table above)."""
    counts = store.counts_per_digit()
    return pd.DataFrame([counts + [sum(counts)]], columns=DIGIT_LABELS + ["all"])


def cell(correct: int, total: int) -> str:
    """``92% [81–97] of 25``: an accuracy with its 95% Wilson interval, or a dash."""
    if total == 0:
        return "–"
    accuracy = Accuracy(correct, total)
    low, high = accuracy.interval
    return f"{100 * accuracy.value:.0f}% [{100 * low:.0f}–{100 * high:.0f}] of {total}"


class AnswerCache:
    """Each model's answer to each stored drawing, computed once.

    A row's pixels never change and neither do a model's weights, so after a new drawing only
    that drawing is run through each model; 1,800 drawings through the CNN take ~3 s here,
    too long to repeat every time the tab is shown. Models are held weakly: a run removed to
    make room takes its answers with it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._answers: weakref.WeakKeyDictionary[nn.Module, dict[int, int]] = (
            weakref.WeakKeyDictionary()
        )

    def answers(self, model: nn.Module, ids: np.ndarray, digits: Digits) -> np.ndarray:
        """``model``'s digit for each drawing (``ids[i]`` is ``digits``' row i)."""
        with self._lock:
            known = self._answers.setdefault(model, {})
            missing = [row for row, drawing_id in enumerate(ids) if int(drawing_id) not in known]
        if missing:
            inputs = digits_to_inputs(digits.images[missing])
            found = predict_probs(model, inputs).argmax(axis=1)
            with self._lock:
                known.update(zip((int(ids[row]) for row in missing), found.tolist()))
        return np.array([known[int(drawing_id)] for drawing_id in ids], dtype=np.int64)


def accuracy_frame(
    store: DrawingStore, models: Mapping[str, LoadedModel], cache: AnswerCache | None = None
) -> pd.DataFrame:
    """Every model's accuracy on the labelled drawings: overall and per true digit.

    A fine-tuned model is measured only on drawings it did not train on (its row says so):
    measured on its own training drawings, it would flatter itself.
    """
    cache = cache if cache is not None else AnswerCache()
    columns = ["model", "overall", *DIGIT_LABELS]
    ids = store.drawing_ids()
    digits = store.labelled_digits(ids=ids)
    if len(digits) == 0 or len(digits) != len(ids):  # none yet, or a row deleted meanwhile
        return pd.DataFrame(columns=columns)
    rows = []
    for name, loaded in models.items():
        trained = trained_on_drawings(loaded.metadata)
        keep = ~np.isin(ids, np.asarray(trained, dtype=np.int64))
        if not keep.any():
            continue
        answered = cache.answers(loaded.model, ids, digits)
        result = accuracy_of(answered[keep], digits.labels[keep])
        label = f"{name} (drawings it did not train on)" if len(trained) else name
        rows.append(
            [
                label,
                cell(result.overall.correct, result.overall.total),
                *[cell(a.correct, a.total) for a in result.per_digit],
            ]
        )
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------
# Fine-tuning, as a job of the training service


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


# ---------------------------------------------------------------------------
# The tab


@dataclass(frozen=True)
class DrawingsTab:
    """What the app and tests may reach."""

    refresh: gr.Button
    base: gr.Dropdown
    finetune_summary: gr.JSON


def build_drawings_tab(
    app_store: AppStore,
    models: dict[str, LoadedModel],
    service: TrainingService,
    targets: SessionModels,
    tab: gr.Tab | None = None,
    environ: Mapping[str, str] = MappingProxyType({}),
) -> DrawingsTab:
    """The "Your drawings" tab's content (call inside ``tab``) and the ``save_drawing`` and
    ``finetune`` endpoints. A fine-tune starts from a shipped model or one of the session's
    runs, and its result goes to ``targets`` like a Train-tab run. Selecting ``tab``
    refreshes it."""
    store = app_store.store
    api_enabled = api_saving(environ)
    answers = AnswerCache()  # every session's table reads the same answers

    def require_store() -> DrawingStore:
        if store is None:
            raise gr.Error(app_store.warning or "saving drawings is off", print_exception=False)
        return store

    def session_models(request: gr.Request | None) -> dict[str, LoadedModel]:
        runs = [r for r in service.runs(session_of(request)) if not r.evicted]
        return {**models, **{r.name: LoadedModel(r.name, r.model, r.metadata) for r in runs}}

    def show(digit: str, outcome: str, request: gr.Request):
        try:
            current = require_store()
            items, ids = gallery_items(current, digit, outcome)
            table = accuracy_frame(current, session_models(request), answers)
            # The gallery changed: a drawing picked before may no longer be on screen.
            return items, ids, counts_frame(current), table, None
        except DigitnetError as error:
            raise gr.Error(str(error), print_exception=False) from None

    def bases(request: gr.Request):
        names = list(session_models(request))
        return gr.Dropdown(choices=names)

    def remember(ids: list[int], event: gr.SelectData) -> int | None:
        index = event.index
        return ids[index] if isinstance(index, int) and index < len(ids) else None

    def delete(selected: int | None, request: gr.Request) -> str:
        if selected is None:
            return "Click a drawing in the gallery first."
        try:
            deleted = require_store().delete(selected, session=session_of(request))
        except DigitnetError as error:
            raise gr.Error(str(error), print_exception=False) from None
        if deleted == 0:
            return f"Drawing #{selected} is not one of this session's; only those can be deleted."
        return f"Deleted drawing #{selected}."

    def save_api(path: str | None, label: object, request: gr.Request) -> dict:
        """An image file of one digit and its label 0-9 -> the new row's id and the count."""
        try:
            return save_drawing_file(store, path, label, session_of(request), api_enabled)
        except DigitnetError as error:
            raise gr.Error(str(error), print_exception=False) from None

    targets_skip = [gr.skip()] * len(targets.outputs)  # they change only when a run is done

    async def finetune(base: str | None, epochs: float, request: gr.Request):
        """Fine-tune a model on the drawings mixed with MNIST; streams progress; the first
        output is a JSON summary with the held-out and MNIST accuracy before and after."""
        session = session_of(request)
        try:
            choices = session_models(request)
            if base not in choices:
                raise DigitnetError(
                    f"no model named {str(base)[:40]!r} to start from; "
                    f"choose one of {', '.join(choices)}"
                )
            loaded = choices[base]
            job = service.submit_finetune(session, finetune_request(store, loaded, epochs))
        except DigitnetError as error:
            raise gr.Error(str(error), print_exception=False) from None
        async with aclosing(follow_job(service, job)) as snapshots:
            async for snapshot in snapshots:
                if not snapshot.finished:
                    yield [
                        snapshot.summary(),
                        finetune_log(snapshot),
                        curve_update(snapshot),
                        gr.skip(),
                        *targets_skip,
                    ]
        table = before_after_markdown(snapshot.record.metadata) if snapshot.record else ""
        # Hashing the models' web files for their URLs takes a moment: not on the event loop.
        updates = await asyncio.to_thread(targets.updates, service.runs(session), snapshot.record)
        yield [snapshot.summary(), finetune_log(snapshot), curve_update(snapshot), table, *updates]

    def curve_update(snapshot: JobSnapshot):
        frame = finetune_frame(snapshot)
        if frame.empty:  # nothing measured yet (queued, loading): keep what is shown
            return gr.skip()
        epochs = max(report.epochs for report in snapshot.measurements)
        return gr.LinePlot(value=frame, x_lim=[0, epochs])

    def stop(request: gr.Request) -> str:
        name = service.stop(session_of(request))
        return f"Stopping {name}; what it learnt so far is kept." if name else "Nothing to stop."

    if app_store.warning:
        gr.Markdown(f"⚠️ {app_store.warning}")
    gr.Markdown(
        "## Your drawings\nEvery drawing kept when someone pressed **Right** or "
        "**No, it's a …** on the Draw tab, with its true label. The table measures every "
        "model on them: **accuracy on real drawings**, the most honest figure here, each "
        "with its 95% interval (wide while few drawings back it)."
    )
    with gr.Row():
        digit = gr.Dropdown([ALL, *DIGIT_LABELS], value=ALL, label="Digit", elem_id="dfilt")
        outcome = gr.Radio([ALL, RIGHT, WRONG], value=ALL, label="The model was")
        refresh = gr.Button("Refresh", elem_id="drawings-refresh")
    gallery = gr.Gallery(
        label="Drawings: #id: the true digit · the model: what it said (✓ right, ✗ wrong)",
        columns=6,
        height=420,
        object_fit="contain",  # the whole digit, never cropped to fill the tile
        allow_preview=False,
        elem_id="drawings-gallery",
    )
    ids = gr.State([])
    selected = gr.State(None)
    with gr.Row():
        delete_button = gr.Button("Delete the selected drawing (this session's only)")
        delete_status = gr.Markdown()
    # Full width, one above the other: eleven columns of "92% [81–97] of 25" need the room.
    counts = gr.Dataframe(label="Drawings per digit", elem_id="drawings-counts")
    accuracy = gr.Dataframe(
        label="Accuracy on real drawings, per true digit: % right [95% interval] of how many",
        elem_id="drawings-accuracy",
        wrap=True,
    )
    defaults = FinetuneConfig()
    gr.Markdown(
        f"### Fine-tune on the drawings\nStarts from the chosen model and trains a few epochs "
        f"on the drawings mixed with the MNIST sample (so it keeps reading MNIST), holding out "
        f"{defaults.held_out_fraction:.0%} of the drawings to measure on. Needs at least "
        f"{MIN_DRAWINGS} labelled drawings. It waits its turn behind other training, and the "
        f"result is a run of yours (`tuned-N`) to draw against, like the Train tab's."
    )
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
        stop_button = gr.Button("Stop", elem_id="finetune-stop")
    with gr.Row(equal_height=False):
        log = gr.Textbox(label="Progress", lines=6, elem_id="finetune-log")
        curve = finetune_plot()
    before_after = gr.Markdown(elem_id="finetune-before-after")
    with gr.Accordion("Summary (what the finetune API returns)", open=False):
        summary = gr.JSON(label="Summary", elem_id="finetune-summary")
    with gr.Accordion("Save a drawing file (the save_drawing API)", open=False):
        # A File and a Textbox pass anything through, so a non-image or a label like
        # "seven" reaches the store's checks and gets its one-line message (an Image or
        # a Number would fail first, in Gradio's preprocessing, with several lines).
        upload = gr.File(label="An image of one digit", file_types=["image"])
        upload_label = gr.Textbox(label="Its label (0-9)", max_lines=1)
        upload_button = gr.Button("Save it")
        upload_result = gr.JSON(label="Saved")

    view_outputs = [gallery, ids, counts, accuracy, selected]
    private = dict(api_visibility="private")
    refresh.click(show, [digit, outcome], view_outputs, **private)
    digit.change(show, [digit, outcome], view_outputs, **private)
    outcome.change(show, [digit, outcome], view_outputs, **private)
    refresh.click(bases, None, base, **private)
    gallery.select(remember, ids, selected, **private)
    delete_button.click(delete, selected, delete_status, **private).then(
        show, [digit, outcome], view_outputs, **private
    )
    upload_button.click(
        save_api,
        [upload, upload_label],
        upload_result,
        api_name="save_drawing",
        concurrency_id=SAVE_QUEUE,
        concurrency_limit=SAVE_CONCURRENCY,
    )
    start.click(
        finetune,
        [base, epochs],
        [summary, log, curve, before_after, *targets.outputs],
        api_name="finetune",
        concurrency_limit=None,  # the training service queues; followers only wait
        trigger_mode="once",
        show_progress="minimal",
    ).then(show, [digit, outcome], view_outputs, **private).then(bases, None, base, **private)
    # The Train tab's ``stop`` endpoint stops a fine-tune too: both are the session's job.
    stop_button.click(stop, None, log, concurrency_limit=None, **private)
    if tab is not None:
        tab.select(show, [digit, outcome], view_outputs, **private)
        tab.select(bases, None, base, **private)
    return DrawingsTab(refresh, base, summary)

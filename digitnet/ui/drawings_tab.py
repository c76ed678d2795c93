"""The "Your drawings" tab: the kept drawings (gallery, delete, counts), every model's accuracy
on them, the fine-tune panel (:mod:`digitnet.ui.finetune_panel`) and the ``save_drawing``
API endpoint.

What is kept, and who sees which drawings, is the server's
:class:`~digitnet.ui.drawing_policy.SavingPolicy`; the Right / No buttons that keep them
are :mod:`digitnet.ui.feedback`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from io import BytesIO

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from digitnet.drawing_data import Accuracy, AnswerCache, accuracy_of
from digitnet.errors import DigitnetError
from digitnet.finetune import trained_on_drawings
from digitnet.store import NOT_A_DIGIT_TEXT, DrawingStore, label_text
from digitnet.training_service import TrainingService
from digitnet.ui.drawing_policy import VISITOR_STORE_WARNING, AppStore, SavingPolicy
from digitnet.ui.feedback import DIGIT_LABELS, SAVE_CONCURRENCY, SAVE_QUEUE
from digitnet.ui.finetune_panel import (
    build_finetune_panel,
    make_finetune_handlers,
    readiness,
    wire_finetune_panel,
)
from digitnet.ui.models import LoadedModel
from digitnet.ui.session import ModelChoiceOutputs, ModelLookup, session_of, visitor_error

ALL = "all"
RIGHT, WRONG = "right", "wrong"
LABELS = [*DIGIT_LABELS, NOT_A_DIGIT_TEXT]  # the true labels a drawing may have
GALLERY_ROWS = 60  # newest drawings shown; the filters reach older ones
INTRO = (
    "## Your drawings\nEvery drawing kept when someone pressed **Right**, "
    "**No, it's a …** or **Not a digit** on the Draw tab, with its true label. The table "
    "measures every model on them: **accuracy on real drawings**, the most honest figure "
    "here, each with its 95% interval (wide while few drawings back it). A model is right "
    "on a digit when it gives that digit, and on a non-digit when it refuses it."
)


def gallery_items(
    store: DrawingStore, digit: str | None, outcome: str | None, session: str | None = None
) -> tuple[list[tuple[Image.Image, str]], list[int]]:
    """The newest matching drawings (of ``session`` only, unless None) as (picture, caption),
    and their row ids in order."""
    rows = store.list_drawings(
        digit=None if digit in (None, ALL) else digit,  # "7" or "not a digit"
        correct={RIGHT: True, WRONG: False}.get(outcome or ALL),
        session=session,
        limit=GALLERY_ROWS,
    )
    items, ids = [], []
    for row in rows:
        picture = (
            Image.open(BytesIO(row.png), formats=["PNG"])
            if row.png
            else Image.fromarray(255 - row.pixels)
        )
        # Short enough to read under a thumbnail: the true label first, then the model's.
        said = ""
        if row.predicted is not None:
            mark = "✓" if row.predicted == row.label else "✗"
            said = f" · {row.model or 'model'}: {label_text(row.predicted)} {mark}"
        items.append((picture, f"#{row.id}: {label_text(row.label)}{said}"))
        ids.append(row.id)
    return items, ids


def counts_frame(store: DrawingStore) -> pd.DataFrame:
    """One row: how many drawings of each digit, of non-digits, then all of them (wide, as
    the table above)."""
    counts = store.counts_per_label()
    return pd.DataFrame([counts + [sum(counts)]], columns=LABELS + ["all"])


TRUE_DIGIT = "true digit"  # the accuracy table's first column
ALL_DRAWINGS = "all"  # its first row: every drawing, whatever its digit


def cell(correct: int, total: int) -> str:
    """``92% [81–97] of 25``: an accuracy with its 95% Wilson interval, or a dash."""
    if total == 0:
        return "–"
    accuracy = Accuracy(correct, total)
    low, high = accuracy.interval
    return f"{100 * accuracy.value:.0f}% [{100 * low:.0f}–{100 * high:.0f}] of {total}"


def accuracy_frame(
    store: DrawingStore, models: Mapping[str, LoadedModel], cache: AnswerCache | None = None
) -> pd.DataFrame:
    """Every model's accuracy on the labelled drawings: a row for all of them, then one per
    true digit, and a column per model (ten rows fit a phone; ten columns did not).

    A fine-tuned model is measured only on drawings it did not train on (its column says so):
    measured on its own training drawings, it would flatter itself.
    """
    cache = cache if cache is not None else AnswerCache()
    rows = [ALL_DRAWINGS, *LABELS]
    ids = store.drawing_ids()
    digits = store.labelled_digits(ids=ids)
    if len(digits) == 0 or len(digits) != len(ids):  # none yet, or a row deleted meanwhile
        return pd.DataFrame(columns=[TRUE_DIGIT])
    columns = {TRUE_DIGIT: rows}
    for name, loaded in models.items():
        trained = trained_on_drawings(loaded.metadata)
        keep = ~np.isin(ids, np.asarray(trained, dtype=np.int64))
        if not keep.any():
            continue
        answered = cache.answers(loaded.model, ids, digits)
        result = accuracy_of(answered[keep], digits.labels[keep])
        label = f"{name} (drawings it did not train on)" if len(trained) else name
        columns[label] = [
            cell(result.overall.correct, result.overall.total),
            *[cell(a.correct, a.total) for a in result.per_label],
        ]
    return pd.DataFrame(columns)


# ---------------------------------------------------------------------------
# Handlers


@dataclass(frozen=True)
class DrawingsHandlers:
    """The tab's handlers, plain functions (tested without a server)."""

    show: Callable  # (digit, outcome, request) -> gallery, ids, counts, accuracy, selection
    remember: Callable  # (ids, gr.SelectData) -> the selected row id
    delete: Callable  # (selected id, request) -> the status line
    save_api: Callable  # (image file, label, request) -> {"id", "count"}


def make_drawings_handlers(
    app_store: AppStore, lookup: ModelLookup, policy: SavingPolicy
) -> DrawingsHandlers:
    store = app_store.store
    answers = AnswerCache()  # every session's table reads the same answers

    def require_store() -> DrawingStore:
        if store is None:
            raise gr.Error(VISITOR_STORE_WARNING, print_exception=False)
        return store

    def show(digit: str, outcome: str, request: gr.Request = None):
        try:
            current = require_store()
            whose = policy.gallery_session(session_of(request))
            items, ids = gallery_items(current, digit, outcome, session=whose)
            table = accuracy_frame(current, lookup.session_models(request), answers)
            # The gallery changed: a drawing picked before may no longer be on screen.
            return items, ids, counts_frame(current), table, None
        except DigitnetError as error:
            raise visitor_error(error) from None

    def remember(ids: list[int], event: gr.SelectData) -> int | None:
        index = event.index
        return ids[index] if isinstance(index, int) and index < len(ids) else None

    def delete(selected: int | None, request: gr.Request = None) -> str:
        if selected is None:
            return "Click a drawing in the gallery first."
        try:
            deleted = require_store().delete(selected, session=session_of(request))
        except DigitnetError as error:
            raise visitor_error(error) from None
        if deleted == 0:
            return f"Drawing #{selected} is not one of this session's; only those can be deleted."
        return f"Deleted drawing #{selected}."

    def save_api(path: str | None, label: object, request: gr.Request = None) -> dict:
        """An image file and its label (0-9 or "not a digit") -> the new row's id and the
        count."""
        try:
            return policy.save_api_file(store, path, label, session_of(request))
        except DigitnetError as error:
            raise visitor_error(error) from None

    return DrawingsHandlers(show, remember, delete, save_api)


# ---------------------------------------------------------------------------
# Layout and wiring


@dataclass(frozen=True)
class DrawingsTab:
    """What the app and tests may reach."""

    refresh: gr.Button
    base: gr.Dropdown
    finetune_summary: gr.JSON


@dataclass(frozen=True)
class DrawingsView:
    digit: gr.Dropdown
    outcome: gr.Radio
    refresh: gr.Button
    gallery: gr.Gallery
    ids: gr.State
    selected: gr.State
    delete: gr.Button
    delete_status: gr.Markdown
    counts: gr.Dataframe
    accuracy: gr.Dataframe

    @property
    def inputs(self) -> list[gr.Component]:
        return [self.digit, self.outcome]

    @property
    def outputs(self) -> list[gr.Component]:
        """What ``show`` fills, in order."""
        return [self.gallery, self.ids, self.counts, self.accuracy, self.selected]


def build_drawings_view() -> DrawingsView:
    """The filters, the gallery with its delete button, and the two tables."""
    with gr.Row():
        digit = gr.Dropdown([ALL, *LABELS], value=ALL, label="Digit", elem_id="dfilt")
        outcome = gr.Radio([ALL, RIGHT, WRONG], value=ALL, label="The model was")
        refresh = gr.Button("Refresh", elem_id="drawings-refresh")
    gallery = gr.Gallery(
        label="Drawings: #id: the true label · the model: what it said (✓ right, ✗ wrong)",
        columns=6,
        height=420,
        object_fit="contain",  # the whole digit, never cropped to fill the tile
        allow_preview=False,
        elem_id="drawings-gallery",
    )
    ids, selected = gr.State([]), gr.State(None)
    with gr.Row():
        delete = gr.Button("Delete the selected drawing (this session's only)")
        delete_status = gr.Markdown()
    # Full width, one above the other: eleven columns of "92% [81–97] of 25" need the room.
    counts = gr.Dataframe(label="Drawings per label", elem_id="drawings-counts")
    accuracy = gr.Dataframe(
        label="Accuracy on real drawings, per true label: % right [95% interval] of how many "
        "(a non-digit is right when the model refuses it)",
        elem_id="drawings-accuracy",
        wrap=True,
    )
    return DrawingsView(
        digit, outcome, refresh, gallery, ids, selected, delete, delete_status, counts, accuracy
    )


def build_save_file_api(handlers: DrawingsHandlers) -> None:
    """The ``save_drawing`` endpoint, behind an accordion of its own."""
    with gr.Accordion("Save a drawing from an image file", open=False):
        # A File and a Textbox pass anything through, so a non-image or a label like
        # "seven" reaches the store's checks and gets its one-line message (an Image or
        # a Number would fail first, in Gradio's preprocessing, with several lines).
        upload = gr.File(label="An image of one digit", file_types=["image"])
        upload_label = gr.Textbox(label="Its label (0-9, or not a digit)", max_lines=1)
        upload_button = gr.Button("Save it")
        upload_result = gr.JSON(label="Saved")
    upload_button.click(
        handlers.save_api,
        [upload, upload_label],
        upload_result,
        api_name="save_drawing",
        concurrency_id=SAVE_QUEUE,
        concurrency_limit=SAVE_CONCURRENCY,
    )


def build_drawings_tab(
    app_store: AppStore,
    lookup: ModelLookup,
    service: TrainingService,
    targets: ModelChoiceOutputs,
    policy: SavingPolicy,
    tab: gr.Tab | None = None,
) -> DrawingsTab:
    """The "Your drawings" tab's content (call inside ``tab``) and the ``save_drawing`` and
    ``finetune`` endpoints. A fine-tune starts from a shipped model or one of the session's
    runs, and its result goes to ``targets`` like a Train-tab run. Selecting ``tab``
    refreshes it."""
    handlers = make_drawings_handlers(app_store, lookup, policy)
    finetune = make_finetune_handlers(app_store.store, lookup, service, targets)
    if app_store.warning:
        gr.Markdown(f"⚠️ {VISITOR_STORE_WARNING}")
    gr.Markdown(INTRO)
    view = build_drawings_view()
    panel = build_finetune_panel(lookup.models)
    build_save_file_api(handlers)

    private = dict(api_visibility="private")
    show = dict(fn=handlers.show, inputs=view.inputs, outputs=view.outputs, **private)
    bases = dict(fn=finetune.bases, inputs=None, outputs=panel.base, **private)
    ready = dict(
        fn=lambda: readiness(app_store.store),
        inputs=None,
        outputs=[panel.ready, panel.start],
        **private,
    )
    view.refresh.click(**show)
    view.digit.change(**show)
    view.outcome.change(**show)
    view.refresh.click(**bases)
    view.refresh.click(**ready)
    view.gallery.select(handlers.remember, view.ids, view.selected, **private)
    deleted = view.delete.click(handlers.delete, view.selected, view.delete_status, **private)
    deleted.then(**show).then(**ready)
    wire_finetune_panel(panel, finetune, targets).then(**show).then(**bases).then(**ready)
    if tab is not None:
        tab.select(**show)
        tab.select(**bases)
        tab.select(**ready)
    return DrawingsTab(view.refresh, panel.base, panel.summary)

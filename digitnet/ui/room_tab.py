"""Room mode in the page: the Room tab (the leaderboard, the room's drawings, the operator's
panel), the publish form under the Train tab, the room's endpoints, and the poll that keeps
every open page up to date (the leaderboard, and the room's model in its model choice).

The work is :class:`digitnet.room.Room`; this module shows it. Every text a visitor typed (a
nickname) is escaped here: it shows as typed, never as HTML. For a view of its own (a
projector's), :func:`render_leaderboard_html` and :func:`render_counts_html` take
``Room.leaderboard_rows()`` and ``Room.digit_counts()``, and :class:`RoomView` caches them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path

import gradio as gr

from digitnet.errors import DigitnetError
from digitnet.finetune import FinetuneConfig
from digitnet.leaderboard import NICKNAME_MAX, TEST_SET
from digitnet.room import OPERATOR_TOKEN_ENV, ROOM_ENV, Room, RoomSettings
from digitnet.room_store import KIND_ROOM
from digitnet.training_service import TrainingService
from digitnet.ui.drawing_policy import AppStore
from digitnet.ui.models import LoadedModel
from digitnet.ui.rest_api import SESSIONS_KEPT
from digitnet.ui.session import (
    ModelChoiceOutputs,
    SharedModels,
    hide_paths,
    session_of,
    visitor_error,
)
from digitnet.ui.static_files import serve_files

POLL_SECONDS = 3.0  # how often each open page asks whether the room changed (a cheap no)
INTRO = f"""## The room
Everyone's published runs, **best validation first**, measured three ways: on the validation
digits each run held out, on MNIST's 10,000 test digits (no run trains on them), and on **the
room's own drawings** (the ones people here confirmed on the *Draw* tab, each run measured only
on drawings it never trained on, with a 95% interval). Publish a run of yours under the *Train*
tab. It updates by itself every {POLL_SECONDS:.0f} s."""
PUBLISH_HELP = (
    "### Publish to the room's leaderboard\nPick one of your runs and a nickname (at most "
    f"{NICKNAME_MAX} characters; everyone in the room sees it). The *Room* tab shows it "
    "beside everyone else's."
)


# ---------------------------------------------------------------------------
# What the room looks like: plain functions of its rows and counts (tested directly)


def percent(value: float | None, decimals: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{decimals}f}%"


def room_cell(row: dict) -> str:
    """``92% [81–97] of 25``: the room's drawings, or a dash when there are none to measure."""
    if not row.get("room_count"):
        return "–"
    low, high = row["room_interval"]
    return (
        f"{100 * row['room_accuracy']:.0f}% [{100 * low:.0f}–{100 * high:.0f}] "
        f"of {row['room_count']:,}"
    )


def render_leaderboard_html(rows: list[dict], large: bool = False) -> str:
    """The leaderboard as an HTML table, every text escaped (a nickname ``<b>bob</b>`` shows
    as typed). ``large``: type sizes for a projector."""
    classes = "room-board large" if large else "room-board"
    if not rows:
        return (
            f'<div class="{classes} room-empty">No run published yet: train one on the '
            f"<em>Train</em> tab, then publish it there.</div>"
        )
    head = "".join(
        f"<th>{escape(title)}</th>"
        for title in (
            "",
            "who",
            "run · entry",
            "knobs",
            "validation",
            f"{TEST_SET}",
            "the room's drawings",
            "seconds",
        )
    )
    body = []
    for rank, row in enumerate(rows, start=1):
        who = ("🏠 " if row.get("kind") == KIND_ROOM else "") + row["nickname"]
        run = f"{row['run']} · #{row['entry']}"
        if row.get("run_gone"):
            run += " (its files are gone)"
        knobs = row.get("knobs") or ""
        if row.get("train_digits"):
            knobs += f" · {row['train_digits']:,} digits"
        seconds = row.get("train_seconds")
        cells = [
            str(rank),
            who,
            run,
            knobs,
            percent(row.get("val_accuracy"), 2),
            percent(row.get("test_accuracy"), 2),
            room_cell(row),
            "–" if seconds is None else f"{seconds:.0f}",
        ]
        body.append(
            f'<tr data-entry="{int(row["entry"])}">'
            + "".join(f"<td>{escape(str(cell))}</td>" for cell in cells)
            + "</tr>"
        )
    # In a box of its own that scrolls sideways on a phone, rather than crushing 8 columns.
    return (
        f'<div class="room-scroll"><table class="{classes}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def render_counts_html(counts: Mapping[str, int], large: bool = False) -> str:
    """The room's drawings per label as a one-row table, with the total."""
    classes = "room-counts large" if large else "room-counts"
    labels = [*counts, "all"]
    values = [*counts.values(), sum(counts.values())]
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    cells = "".join(f"<td>{int(value):,}</td>" for value in values)
    return (
        f'<div class="room-scroll"><table class="{classes}"><tr>{head}</tr>'
        f"<tr>{cells}</tr></table></div>"
    )


def status_text(status: dict) -> str:
    """The room's model in one line, for the Room tab."""
    state, name = status["state"], status.get("room_model")
    if state == "failed":
        return f"The room's fine-tune failed: {status.get('error')}"
    job = status.get("job") or {}
    if state in ("queued", "preparing"):
        wait = f" ({job['position']} ahead)" if job.get("position") else ""
        return f"The room's fine-tune is waiting its turn{wait}."
    if state in ("training", "measuring"):
        epochs = f" epoch {job.get('epoch')}/{job.get('epochs')}" if job.get("epochs") else ""
        return f"The room's fine-tune is {state}{epochs}…"
    if state == "saving":
        return "The room's fine-tune is done; measuring and keeping it…"
    if name:
        return f"The room's model, {name}, is in everyone's model choice on the Draw tab."
    return "No room's model yet: the operator fine-tunes one on the room's drawings."


# ---------------------------------------------------------------------------
# The room for the page: cached renders, shared models, handlers


def open_room(
    app_store: AppStore,
    service: TrainingService,
    bases: Mapping[str, LoadedModel],
    environ: Mapping[str, str],
) -> Room | None:
    """The server's room, or None when room mode is off (or there is no drawings database
    to keep it in)."""
    settings = RoomSettings.from_environ(environ)
    if not settings.enabled or app_store.store is None:
        return None
    return Room(app_store.store, service, settings, bases)


class RoomView:
    """What every open page shows of the room, rendered once per change of the room (a room
    of 20 pages polling must not render it 20 times), and the room's model for their pads."""

    def __init__(self, room: Room):
        self.room = room
        self._lock = threading.Lock()
        self._rendered: dict[bool, tuple[tuple, dict]] = {}  # by size: (key, what is shown)
        self._served: set[Path] = set()

    def shown(self, large: bool = False) -> tuple[tuple, dict]:
        """(the room's key, {"board", "counts", "status"}): the leaderboard and the counts as
        HTML (``large``: for a projector) and the room's model's line. A page that has seen
        this key has nothing new to show."""
        key = self.room.key()
        with self._lock:
            if key != self._rendered.get(large, (None,))[0]:
                room = self.room
                self._rendered[large] = (
                    key,
                    {
                        "board": render_leaderboard_html(room.leaderboard_rows(), large),
                        "counts": render_counts_html(room.digit_counts(), large),
                        "status": status_text(room.finetune_status()),
                    },
                )
            return self._rendered[large]

    def shared_models(self) -> SharedModels:
        """The room's model as every session's shared model (and its web file, served)."""

        def models() -> dict[str, LoadedModel]:
            model = self.room.room_model()
            return {} if model is None else {model.name: LoadedModel(*_named(model))}

        def web_files() -> dict[str, Path]:
            model = self.room.room_model()
            if model is None or model.web_model is None:
                return {}
            with self._lock:
                if model.web_model not in self._served:
                    serve_files([model.web_model])  # that one file, unguessable name
                    self._served.add(model.web_model)
            return {model.name: model.web_model}

        return SharedModels(models, web_files)


def _named(model) -> tuple:
    return model.name, model.model, model.metadata


@dataclass(frozen=True)
class RoomHandlers:
    """The room's handlers, plain functions (tested without a server)."""

    publish: Callable  # (run, nickname, request) -> the new entry's row
    publish_from_page: Callable  # (run, nickname, request) -> the status line (HTML)
    leaderboard: Callable  # () -> {"rows": [...], ...}
    room_counts: Callable  # () -> {"counts": {...}, "total": n}
    room_model: Callable  # (request) -> the fine-tune's status, then ``targets``' outputs
    remove_entry: Callable  # (entry_id, token) -> what was removed
    room_finetune: Callable  # (token, base, epochs) -> the fine-tune's status
    operator_line: Callable  # (action, entry_id, token, base, epochs) -> a line (HTML)


def make_room_handlers(room: Room, targets: ModelChoiceOutputs | None = None) -> RoomHandlers:
    """``room_model`` also fills ``targets`` (the Draw tab's model choice and pad) with the
    session's models, the room's model included: a program's session may then draw with it."""
    targets = targets or ModelChoiceOutputs()

    def publish(run: str, nickname: str, request: gr.Request = None) -> dict:
        """Publish one of this session's runs (by name, e.g. run-1) under a nickname;
        returns its leaderboard row."""
        try:
            return room.publish(session_of(request), run, nickname)
        except DigitnetError as error:
            raise visitor_error(error) from None

    def publish_from_page(run: str, nickname: str, request: gr.Request = None) -> str:
        try:
            row = room.publish(session_of(request), run, nickname)
        except DigitnetError as error:
            return f'<p class="room-line">⚠️ {escape(hide_paths(str(error)))}</p>'
        rank = next(
            (i for i, r in enumerate(room.leaderboard_rows(), 1) if r["entry"] == row["entry"]),
            None,
        )
        where = f", number {rank} by validation" if rank else ""
        return (
            f'<p class="room-line">✅ {escape(row["run"])} is on the leaderboard as '
            f"<strong>{escape(row['nickname'])}</strong> (entry {row['entry']}{where}).</p>"
        )

    def leaderboard() -> dict:
        """Every published run, best validation first."""
        rows = room.leaderboard_rows()
        return {"rows": rows, "test_set": TEST_SET, "room_drawings": room_total()}

    def room_total() -> int:
        return sum(room.digit_counts().values())

    def room_counts() -> dict:
        """The room's drawings per label (0-9, not a digit) and in all."""
        counts = room.digit_counts()
        return {"counts": counts, "total": sum(counts.values())}

    def room_model(request: gr.Request = None) -> list:
        """The room's model: its name once the operator's fine-tune is done, or its progress;
        then the Draw tab's model choice and pad with it added."""
        runs = room.service.runs(session_of(request))
        return [room.finetune_status(), *targets.updates(runs)]

    def remove_entry(entry_id: float, token: str) -> dict:
        """The operator removes a leaderboard entry (needs the operator's token)."""
        try:
            return room.remove(entry_id, token)
        except DigitnetError as error:
            raise visitor_error(error) from None

    def room_finetune(token: str, base: str, epochs: float) -> dict:
        """The operator fine-tunes a shipped model on the room's drawings; returns at once,
        with the fine-tune's status (``room_model`` follows it)."""
        try:
            return room.start_finetune(token, base, epochs)
        except DigitnetError as error:
            raise visitor_error(error) from None

    def operator_line(action: str, entry_id, token: str, base: str, epochs) -> str:
        try:
            if action == "remove":
                removed = room.remove(entry_id, token)
                text = f"Removed entry {removed['removed']} ({removed['nickname']})."
            else:
                room.start_finetune(token, base, epochs)
                text = "The room's fine-tune is queued; the line above follows it."
        except DigitnetError as error:
            text = f"⚠️ {hide_paths(str(error))}"
        return f'<p class="room-line">{escape(text)}</p>'

    return RoomHandlers(
        publish,
        publish_from_page,
        leaderboard,
        room_counts,
        room_model,
        remove_entry,
        room_finetune,
        operator_line,
    )


# ---------------------------------------------------------------------------
# Layout and wiring


@dataclass(frozen=True)
class PublishForm:
    """The publish form under the Train tab."""

    run: gr.Dropdown
    nickname: gr.Textbox
    button: gr.Button
    status: gr.HTML


def build_publish_form() -> PublishForm:
    """Lay out the publish form (call inside the Train tab); :func:`wire_room` wires it."""
    gr.Markdown(PUBLISH_HELP)
    with gr.Row(equal_height=True):
        # Any value passes through to the handler, which names the runs one may publish.
        run = gr.Dropdown([], label="Run", allow_custom_value=True, elem_id="publish-run", scale=1)
        nickname = gr.Textbox(
            label="Nickname", max_lines=1, max_length=NICKNAME_MAX, elem_id="publish-nickname"
        )
        button = gr.Button("Publish", variant="primary", elem_id="publish-button", scale=0)
    status = gr.HTML(elem_id="publish-status")
    return PublishForm(run, nickname, button, status)


@dataclass(frozen=True)
class RoomTab:
    """The Room tab's components, by name, for the app and tests."""

    board: gr.HTML
    counts: gr.HTML
    status: gr.Markdown
    token: gr.Textbox
    entry: gr.Number
    remove: gr.Button
    base: gr.Radio
    epochs: gr.Slider
    finetune: gr.Button
    operator_status: gr.HTML


def build_room_tab(view: RoomView, base_names: list[str]) -> RoomTab:
    """Lay out the Room tab (call inside its ``gr.Tab``); :func:`wire_room` wires it."""
    gr.Markdown(INTRO)
    _, shown = view.shown()
    board = gr.HTML(shown["board"], elem_id="room-leaderboard")
    gr.Markdown("### The room's drawings\nConfirmed on the *Draw* tab by everyone here, per label.")
    counts = gr.HTML(shown["counts"], elem_id="room-counts")
    status = gr.Markdown(shown["status"], elem_id="room-model-status")
    with gr.Accordion("For the room's operator", open=False, elem_id="room-operator"):
        gr.Markdown(
            f"Needs the token the operator set in `{OPERATOR_TOKEN_ENV}` (room mode: "
            f"`{ROOM_ENV}`). Remove a leaderboard entry by its number, or fine-tune a model "
            f"on the room's drawings: the room's model joins everyone's model choice."
        )
        token = gr.Textbox(
            label="Operator token", type="password", max_lines=1, elem_id="room-token"
        )
        with gr.Row():
            entry = gr.Number(label="Entry", precision=0, minimum=1, elem_id="room-entry")
            remove = gr.Button("Remove the entry", elem_id="room-remove")
        with gr.Row():
            base = gr.Radio(base_names, value=base_names[0], label="Start from")
            epochs = gr.Slider(
                1, 10, value=FinetuneConfig().epochs, step=1, label="Epochs", elem_id="room-epochs"
            )
            finetune = gr.Button("Fine-tune the room's model", elem_id="room-finetune")
        operator_status = gr.HTML(elem_id="room-operator-status")
    return RoomTab(
        board, counts, status, token, entry, remove, base, epochs, finetune, operator_status
    )


def build_room_api(handlers: RoomHandlers, targets: ModelChoiceOutputs) -> None:
    """The room's endpoints, with named parameters and results (no trigger on the page)."""
    with gr.Column(visible=False):
        run = gr.Textbox(label="Run")
        nickname = gr.Textbox(label="Nickname")
        entry = gr.JSON(label="Entry")
        board = gr.JSON(label="Leaderboard")
        counts = gr.JSON(label="The room's drawings")
        model = gr.JSON(label="The room's model")
        entry_id = gr.Number(label="Entry number", precision=0)
        token = gr.Textbox(label="Operator token")
        removed = gr.JSON(label="Removed")
        base = gr.Textbox(label="Start from")
        epochs = gr.Number(label="Epochs", precision=0)
    api = dict(concurrency_limit=4)
    gr.on([], handlers.publish, [run, nickname], entry, api_name="publish", **api)
    gr.on([], handlers.leaderboard, None, board, api_name="leaderboard", **api)
    gr.on([], handlers.room_counts, None, counts, api_name="room_counts", **api)
    outputs = [model, *targets.outputs]
    gr.on([], handlers.room_model, None, outputs, api_name="room_model", **api)
    gr.on([], handlers.remove_entry, [entry_id, token], removed, api_name="remove_entry", **api)
    gr.on([], handlers.room_finetune, [token, base, epochs], model, api_name="room_finetune")


def wire_room(
    demo: gr.Blocks,
    view: RoomView,
    tab: RoomTab,
    form: PublishForm | None,
    targets: ModelChoiceOutputs,
) -> None:
    """The poll (a ``gr.Timer`` at the page's root, so it ticks whichever tab shows), the
    publish form, the operator's buttons and the room's endpoints."""
    handlers = make_room_handlers(view.room, targets)
    build_room_api(handlers, targets)
    private = dict(api_visibility="private")
    seen = gr.State({"key": None, "runs": None, "model": None})
    outputs = [tab.board, tab.counts, tab.status, seen, *targets.outputs]
    if form is not None:
        outputs.append(form.run)

    def poll(last: dict, request: gr.Request = None) -> list:
        """What changed for this page since it last asked: gr.skip() for the rest."""
        key, shown = view.shown()
        session = session_of(request)
        now = dict(last)
        values = [gr.skip()] * 3
        if last.get("key") != key:
            values = [shown["board"], shown["counts"], shown["status"]]
            now["key"] = key
        model = view.room.room_model()
        name = model.name if model is not None else None
        choice = [gr.skip()] * len(targets.outputs)
        if last.get("model") != name:
            choice = targets.updates(view.room.service.runs(session))
            now["model"] = name
        values += [now, *choice]
        if form is not None:
            runs = view.room.publishable_runs(session)
            unchanged = runs == last.get("runs")
            newest = runs[0] if runs else None
            values.append(gr.skip() if unchanged else gr.Dropdown(choices=runs, value=newest))
            now["runs"] = runs
        return values

    timer = gr.Timer(POLL_SECONDS)
    timer.tick(poll, seen, outputs, show_progress="hidden", queue=False, **private)
    demo.load(poll, seen, outputs, show_progress="hidden", queue=False, **private)
    if form is not None:
        published = form.button.click(
            handlers.publish_from_page,
            [form.run, form.nickname],
            form.status,
            concurrency_limit=4,
            **private,
        )
        published.then(poll, seen, outputs, show_progress="hidden", queue=False, **private)
    for button, action in ((tab.remove, "remove"), (tab.finetune, "finetune")):
        button.click(
            lambda *values, action=action: handlers.operator_line(action, *values),
            [tab.entry, tab.token, tab.base, tab.epochs],
            tab.operator_status,
            **private,
        ).then(poll, seen, outputs, show_progress="hidden", queue=False, **private)


def build_room_rest_blocks(room: Room) -> dict[str, gr.Blocks]:
    """``leaderboard`` and ``room_counts`` for REST calls without a session, each a small
    Blocks shaped as the page's (see :mod:`digitnet.ui.rest_api`)."""
    handlers = make_room_handlers(room)
    apps = {}
    for name, fn, label in (
        ("leaderboard", handlers.leaderboard, "Leaderboard"),
        ("room_counts", handlers.room_counts, "The room's drawings"),
    ):
        with gr.Blocks(analytics_enabled=False) as apps[name]:
            result = gr.JSON(label=label)
            gr.on([], fn, None, result, api_name=name, concurrency_limit=4)
        apps[name].queue(max_size=256)
        apps[name].state_session_capacity = SESSIONS_KEPT
    return apps

"""digitnet's drawing app: draw a digit, see the ten probabilities change as you draw, what
the model sees, and how the model was trained.

    python app.py                      # http://127.0.0.1:7860
    python app.py --model runs/mlp     # serve another checkpoint (or a tutorial model.pt)

Only wiring lives here: each tab is a module of ``digitnet.ui``, everything else is the
``digitnet`` library.
"""

from __future__ import annotations

import os

# Gradio calls home at start-up unless told not to; users opt in by setting these.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from digitnet.errors import DigitnetError  # noqa: E402
from digitnet.number_answer import number_on_pad  # noqa: E402
from digitnet.room import Room, RoomSettings  # noqa: E402
from digitnet.service_settings import service_from_environ  # noqa: E402
from digitnet.storage import RUNS_ENV, Storage, storage_of  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402
from digitnet.ui import models as ui_models  # noqa: E402
from digitnet.ui.charts import PAGE_CSS, selected_digit_js  # noqa: E402
from digitnet.ui.dashboard_tab import build_dashboard_tab  # noqa: E402
from digitnet.ui.draw_tab import DrawSlots, build_draw_tab  # noqa: E402
from digitnet.ui.drawing_policy import AppStore, SavingPolicy, open_app_store  # noqa: E402
from digitnet.ui.drawings_tab import build_drawings_tab  # noqa: E402
from digitnet.ui.feedback import build_feedback, make_feedback_handlers, wire_feedback  # noqa: E402
from digitnet.ui.models import LoadedModel, export_for_browser  # noqa: E402
from digitnet.ui.present import PRESENT_CSS, build_present_view  # noqa: E402
from digitnet.ui.rest_api import build_rest_blocks, mount_rest_apps  # noqa: E402
from digitnet.ui.room_tab import (  # noqa: E402
    RoomView,
    build_publish_form,
    build_room_rest_blocks,
    build_room_tab,
    open_room,
    wire_room,
)
from digitnet.ui.session import (  # noqa: E402
    ModelChoiceOutputs,
    ModelLookup,
    SharedModels,
    hide_paths,
    read_pad,
)
from digitnet.ui.setup_link import LINK_CSS  # noqa: E402
from digitnet.ui.static_files import STATIC_DIR, page_css, serve_files  # noqa: E402
from digitnet.ui.train_tab import build_train_tab  # noqa: E402
from digitnet.ui.why import (  # noqa: E402
    EXPLAIN_CONCURRENCY,
    WhyPanel,
    build_explain_api,
    build_look_inside,
    build_why_beside_input,
    build_why_inside,
    look_inside_outputs,
    why_for_number,
)

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "assets" / "examples"
# The models exported for the browser at start (git-ignored; written only when they change).
WEB_DIR = Path(os.environ.get("DIGITNET_WEB_DIR") or HERE / "runs" / "web")
SHIPPED = dict(ui_models.SHIPPED)  # model choice -> --model name
LOG = logging.getLogger("digitnet.app")

TITLE = "# ✍️ digitnet: draw a digit"

# A bounded disk on a server that strangers share. Gradio stores every upload before any
# handler sees it, so the cap is Gradio's own (refused with 413 as the body streams in): a
# drawing's PNG is a few KB, a phone photo a few MB.
MAX_UPLOAD = "5mb"
# Gradio's cache (uploads, a run's download): every 10 minutes, files older than an hour go.
DELETE_CACHE = (600, 3600)  # (how often, how old), seconds


def load_models(extra: str | None = None) -> tuple[dict[str, LoadedModel], list[str]]:
    """The shipped MLP and CNN, plus ``extra`` (a checkpoint path) first if given.

    A model that cannot be loaded is skipped with a one-line warning.
    """
    return ui_models.load_models(extra, SHIPPED)


def example_files() -> dict[str, Path]:
    """The example drawings by file name (NAME-DIGIT.png)."""
    if not EXAMPLES_DIR.is_dir():
        return {}
    return {path.name: path for path in sorted(EXAMPLES_DIR.glob("*.png"))}


def build_demo(
    models: dict[str, LoadedModel],
    warnings: list[str] | None = None,
    web_dir: Path | None = None,
    training: TrainingService | None = None,
    app_store: AppStore | None = None,
    environ: Mapping[str, str] | None = None,
    room: Room | None = None,
) -> gr.Blocks:
    """Wire the page. ``models`` must hold at least one model; the first is the default.

    ``training`` serves the Train tab and fine-tunes (default: runs/app with the default
    caps); ``app_store`` keeps drawings (default: ``$DIGITNET_DB``, else the default of
    ``digitnet.storage``); ``environ`` holds the operator's settings (default: os.environ);
    ``room`` is the room mode's leaderboard and model (default: as ``environ`` says).
    """
    environ = os.environ if environ is None else environ
    training = training if training is not None else TrainingService()
    app_store = app_store if app_store is not None else open_app_store()
    room = room if room is not None else open_room(app_store, training, models, environ)
    room_view = RoomView(room) if room is not None else None
    shared = room_view.shared_models() if room_view is not None else SharedModels()
    lookup = ModelLookup(models, training, shared)
    policy = SavingPolicy(environ)
    examples = example_files()
    browser_models, export_warnings = export_for_browser(models, web_dir or WEB_DIR)
    for warning in export_warnings:
        LOG.warning(warning)
    # Served as they are, these files and no others: the pipeline the pad runs (its other JS
    # and CSS are inlined in the page), the exported models, the examples.
    serve_files([STATIC_DIR / "pipeline.js", *browser_models.values(), *examples.values()])
    notice = storage_of(app_store.path, environ).notice
    with gr.Blocks(title="digitnet: draw a digit", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(TITLE, elem_id="title")
        for warning in [*(warnings or []), *([notice] if notice else [])]:
            gr.Markdown(f"⚠️ {hide_paths(warning)}")
        # On a phone the four tab names take two lines rather than hide behind a menu.
        with gr.Tabs(overflow_behavior="wrap", elem_id="tabs"):
            with gr.Tab("Draw", id="draw", elem_id="draw-tab"):
                slots = DrawSlots(
                    under_answer=lambda: build_feedback(app_store, policy),
                    beside_input=build_why_beside_input,
                    under_input=build_why_inside,
                )
                draw = build_draw_tab(lookup, browser_models, examples, slots)
                build_explain_api({name: m.model for name, m in models.items()}, draw.choice)
                build_present_view(demo, app_store, *presenter_room(room_view))  # ?view=present
            with gr.Tab("How it was trained", id="dashboard", elem_id="dashboard-tab"):
                dashboard = build_dashboard_tab(lookup)
                look_inside = build_look_inside()
            with gr.Tab("Train", id="train", elem_id="train-tab"):
                targets = ModelChoiceOutputs(
                    draw.choice, list(models), draw.pad, browser_models, shared
                )
                build_train_tab(training, demo, targets)
                publish = build_publish_form() if room_view is not None else None
            with gr.Tab("Your drawings", id="drawings", elem_id="drawings-tab") as tab:
                build_drawings_tab(app_store, lookup, training, targets, policy, tab)
            if room_view is not None:
                with gr.Tab("Room", id="room", elem_id="room-tab"):
                    room_tab = build_room_tab(room_view, list(models))
        if room_view is not None:
            wire_room(demo, room_view, room_tab, publish, targets)
        feedback = make_feedback_handlers(app_store, examples, lookup, policy)
        wire_feedback(draw.under_answer, draw.pad, draw.choice, feedback)
        why = WhyPanel(saliency=draw.beside_input, inside=draw.under_input)
        _wire_panels(demo, lookup, examples, draw, why, dashboard, look_inside)
    demo.queue(default_concurrency_limit=4, max_size=256)
    # The answer endpoints again, each a Blocks of its own, for REST calls without a session
    # (see digitnet.ui.rest_api); launch() puts them beside the page.
    demo.sessionless_blocks = build_rest_blocks(
        draw.handlers, {name: m.model for name, m in models.items()}, list(models)
    )
    if room is not None:
        demo.sessionless_blocks.update(build_room_rest_blocks(room))
    return demo


def presenter_room(room_view: RoomView | None) -> tuple:
    """The presenter view's leaderboard (large) and the room's drawings per label, or
    (None, None) where room mode is off."""
    if room_view is None:
        return None, None

    def board() -> str:
        return room_view.shown(large=True)[1]["board"]

    def drawings() -> list[int]:
        return list(room_view.room.digit_counts().values())

    return board, drawings


def _wire_panels(demo, lookup: ModelLookup, examples, draw, why, dashboard, look_inside) -> None:
    """What follows the Draw tab's drawing and model: the Why panel, the dashboard's model
    and its Look inside."""

    def follow_choice(choice: str | None, request: gr.Request):
        """The dashboard shows the model chosen for drawing, the session's runs included."""
        return gr.Radio(choices=list(lookup.session_models(request)), value=choice)

    def why_for_pad(value, choice: str | None, digit: float | None, request: gr.Request):
        """The Why panel for the pad's drawing (for a number: the digit chosen in the input
        view, else its first): its own event, never the answer's."""
        drawing, preprocessed = read_pad(value, examples)
        loaded = lookup.find(choice, request)
        number = None
        if drawing.strokes and not drawing.example:
            number = number_on_pad(loaded.model, drawing.strokes)
        return why_for_number(loaded.name, loaded.model, preprocessed, number, digit)

    def look_inside_of(choice: str | None, request: gr.Request):
        return look_inside_outputs(lookup.find(choice, request).model)

    private = dict(api_visibility="private")
    draw.choice.change(follow_choice, draw.choice, dashboard.choice, queue=False, **private)
    # On stroke end (the pad's change), as events of their own: the answer never waits.
    # Which digit of a number to explain: the input view's choice, read in the page.
    digit = gr.Number(0, precision=0, visible=False, elem_id="why-digit")
    why_event = dict(
        fn=why_for_pad,
        inputs=[draw.pad, draw.choice, digit],
        js=selected_digit_js(draw.view.elem_id, 2),
        outputs=why.outputs,
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_limit=EXPLAIN_CONCURRENCY,
        concurrency_id="why",
        **private,
    )
    draw.pad.change(**why_event)
    draw.choice.change(**why_event)
    draw.view.select(**why_event)  # a digit's 28x28 clicked
    dashboard.choice.change(look_inside_of, dashboard.choice, look_inside.outputs, **private)
    demo.load(look_inside_of, dashboard.choice, look_inside.outputs, **private)
    demo.load(dashboard.handler, dashboard.choice, dashboard.outputs, **private)


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
        "--db",
        default=None,
        help="the drawings database (SQLite) that keeps confirmed and corrected drawings "
        "(default: $DIGITNET_DB, else drawings.sqlite in a Space's persistent storage /data, "
        "else runs/drawings.sqlite)",
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


SESSION_CAPACITY = 1_000  # page sessions whose state Gradio keeps (~310 MB at most)


def launch(demo: gr.Blocks, **kwargs):
    """Launch with the page's theme and styles (Gradio 6 takes them in launch()), the upload
    cap, and the session-less answer endpoints beside the page (``build_demo``'s)."""
    served = dict(show_error=True, ssr_mode=False, max_file_size=MAX_UPLOAD)
    # A page session's state is ~310 KB (one entry per component); Gradio keeps 10,000 by
    # default (~3 GB), so a script opening sessions could fill a small server's memory. Runs,
    # drawings and the saving switch live in the server's own stores, not in session state.
    kwargs.setdefault("state_session_capacity", SESSION_CAPACITY)
    sessionless = getattr(demo, "sessionless_blocks", None)
    if sessionless:
        kwargs["app_kwargs"] = mount_rest_apps(sessionless, **served).app_kwargs()
    css = page_css("app.css", "room.css", *PAGE_CSS, *LINK_CSS, *PRESENT_CSS)
    return demo.launch(css=css, theme=gr.themes.Default(), **served, **kwargs)


def serve_in_background(
    models: dict[str, LoadedModel],
    warnings: list[str] | None = None,
    training: TrainingService | None = None,
    app_store: AppStore | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[gr.Blocks, str]:
    """Serve on 127.0.0.1 and a free port without blocking (tests, the load script).

    Returns the demo (``demo.close()`` stops it) and its URL.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = build_demo(models, warnings, training=training, app_store=app_store, environ=environ)
    _, url, _ = launch(
        demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    return demo, url


def log_storage(storage: Storage) -> None:
    """Where drawings and runs are kept and whether they survive a restart, for the operator."""
    print(f"digitnet: {storage.log_line}", file=sys.stderr)
    if storage.notice:
        print(f"warning: {storage.notice}", file=sys.stderr)


def announce_when_ready(training: TrainingService) -> None:
    """Tell the operator (and scripts/room_sim.py, which waits for this line) when the Train
    tab's worker has warmed up: runs start at once from then on."""
    began = time.monotonic()

    def wait() -> None:
        if training.ready.wait(timeout=600):
            seconds = time.monotonic() - began
            print(f"digitnet: training is ready ({seconds:.0f} s of warm-up)", file=sys.stderr)

    threading.Thread(target=wait, name="digitnet-ready", daemon=True).start()


def log_room(settings: RoomSettings, app_store: AppStore) -> None:
    """Whether room mode is on, and whether anyone can act as its operator."""
    if not settings.enabled:
        print("digitnet: room mode off (set DIGITNET_ROOM=1 to turn it on)", file=sys.stderr)
        return
    if not app_store.saving:
        print(
            "digitnet: room mode off: it keeps its leaderboard in the drawings database, "
            "which could not be opened",
            file=sys.stderr,
        )
        return
    operator = "set" if settings.operator_token else "not set: nobody can remove entries"
    print(f"digitnet: room mode on; operator token {operator}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # one small forward pass per request; parallelism is requests
    models, warnings = load_models(args.model)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not models:
        print(
            "error: no model could be loaded; train one with "
            "'python -m digitnet train --out assets/mlp'",
            file=sys.stderr,
        )
        return 2
    storage = storage_of(args.db, os.environ)
    try:
        settings = server_settings(args, os.environ)
        # The Train tab's folder (under a Space's persistent storage when it has one) and caps.
        training = service_from_environ({**os.environ, RUNS_ENV: str(storage.runs_dir)})
        training.start()  # its one-time warm-up now, not in the first visitor's run
        announce_when_ready(training)
        SavingPolicy(os.environ)  # a bad operator setting stops the start, in one line
        room_settings = RoomSettings.from_environ(os.environ)
    except DigitnetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app_store = open_app_store(storage.db_path)
    log_storage(storage)
    if app_store.warning:
        print(f"warning: {app_store.warning}", file=sys.stderr)
    log_room(room_settings, app_store)
    launch(build_demo(models, warnings, training=training, app_store=app_store), **settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

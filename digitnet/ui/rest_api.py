"""The answer endpoints for REST calls that bring no session: each a tiny Blocks of its own.

Gradio keeps a state per session: on the first call of a session it copies the configuration
of every component of the Blocks (``gradio.state_holder.SessionState``). A page's session
pays that once. A REST call without a ``session_hash`` (what a ``curl`` following Gradio's
REST docs sends) is a new session every time, so it paid for the whole page, ~180
components, on every call: 27 ms against 14 ms with a session.

So ``classify``, ``predict`` and ``explain`` are also served by one small Blocks each, with
the same inputs and outputs (labels, types, order) and the same handlers as the page's.
:class:`SessionlessRouter`, an ASGI middleware on the page's app, sends a session-less
``POST /gradio_api/call/NAME`` (and its ``GET .../call/NAME/EVENT_ID``) there; everything
else, ``gradio_client`` included (it always has a session), reaches the page as before.
The small apps are mounted on an app of their own under ``REST_PREFIX``; of their URLs,
only the files their answers link to (``REST_PREFIX/NAME/gradio_api/file=...``) are served.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import gradio as gr
from fastapi import FastAPI
from starlette.middleware import Middleware
from torch import nn

from digitnet.ui.draw_tab import DrawHandlers, ParityTally, build_pipeline_steps
from digitnet.ui.why import EXPLAIN_CONCURRENCY, explain_endpoint

REST_PREFIX = "/_sessionless"  # where the small apps are mounted, on an app of their own
# Sessions each small Blocks remembers. Every call it takes is a session of its own, never
# seen again; Gradio's default (10,000) would keep ~55 KB for each of the last 10,000 calls.
# Above the queue's size, so a call's session outlives its wait.
SESSIONS_KEPT = 512
MAX_INSPECTED_BODY = 256 * 1024  # bytes: a larger call body is the page's (predict's is < 100 KB)
CALL_POST = re.compile(r"^(?P<base>.*)/gradio_api/call/(?:v2/)?(?P<name>[\w-]+)/?$")
CALL_GET = re.compile(r"^(?P<base>.*)/gradio_api/call/(?:v2/)?(?P<name>[\w-]+)/(?P<event>[\w-]+)$")
# The files a small app's answer links to (explain's overlay), under its mount.
FILE_GET = re.compile(rf"^{REST_PREFIX}/(?P<name>[\w-]+)/gradio_api/file=")


@dataclass(frozen=True)
class RestApps:
    """The small Blocks by API name, and the app that serves them (started by ``lifespan``)."""

    blocks: dict[str, gr.Blocks]
    app: FastAPI

    def owns_event(self, name: str, event_id: str) -> bool:
        """Whether ``event_id`` is a call that endpoint ``name``'s small Blocks took."""
        blocks = self.blocks.get(name)
        if blocks is None or blocks._queue is None:
            return False
        # The two places Gradio's own GET /call/NAME/EVENT_ID route looks an event up; a
        # session-less event's session is its own id.
        queue = blocks._queue
        return event_id in queue.event_ids_to_events or event_id in queue.pending_event_ids_session

    @contextlib.asynccontextmanager
    async def lifespan(self, _app):
        """Start and stop the small apps with the page's server (their queues)."""
        async with self.app.router.lifespan_context(self.app):
            yield

    def app_kwargs(self) -> dict:
        """``launch(app_kwargs=...)``: the router in front of the page, and the apps' lifespan."""
        return {
            "middleware": [Middleware(SessionlessRouter, rest=self)],
            "lifespan": self.lifespan,
        }


def _model_choice(names: list[str]) -> gr.Radio:
    return gr.Radio(names, value=names[0], label="Model")


def build_rest_blocks(
    handlers: DrawHandlers, explain_models: Mapping[str, nn.Module], names: list[str]
) -> dict[str, gr.Blocks]:
    """One small Blocks per answer endpoint, shaped as the page's (``tests`` compare
    ``/gradio_api/info``). The page's own HTML components (the pad, the bars, the 28×28) are
    plain ``gr.HTML`` here: the same API, without the page's templates and scripts."""
    apps = {}
    with gr.Blocks(analytics_enabled=False) as apps["classify"]:
        upload = gr.File(label="An image of a digit", file_types=["image"])
        choice = _model_choice(names)
        answer = gr.JSON(label="Answer")
        upload.change(
            handlers.classify, [upload, choice], answer, api_name="classify", concurrency_limit=4
        )
    with gr.Blocks(analytics_enabled=False) as apps["predict"]:
        pad = gr.HTML(value=None, label="Drawing")
        choice = _model_choice(names)
        tally = gr.State(ParityTally())
        outputs = [
            gr.Markdown(label="Answer"),
            gr.Label(num_top_classes=10, label="All ten probabilities"),
            gr.HTML(value=None, label="Every model's probabilities"),
            gr.HTML(value=None, label="Model input"),
            *build_pipeline_steps(),
            gr.Markdown(label="The server's check"),
            tally,
        ]
        pad.change(
            handlers.predict, [pad, choice, tally], outputs, api_name="predict", concurrency_limit=4
        )
    with gr.Blocks(analytics_enabled=False) as apps["explain"]:
        upload = gr.File(label="An image of a digit", file_types=["image"])
        choice = _model_choice(names)
        # A file, as the page's: a program downloads the overlay (Gradio's cache keeps it an
        # hour).
        overlay = gr.Image(
            label="Saliency: red toward the answer, blue away", interactive=False, format="png"
        )
        arrays = gr.JSON(label="The explanation's arrays")

        def explain(path: str | None, model_name: str | None = None):
            return explain_endpoint(explain_models, path, model_name)

        upload.change(
            explain,
            [upload, choice],
            [overlay, arrays],
            api_name="explain",
            concurrency_limit=EXPLAIN_CONCURRENCY,
        )
    for blocks in apps.values():
        blocks.queue(max_size=256)
        blocks.state_session_capacity = SESSIONS_KEPT
    return apps


def mount_rest_apps(blocks: dict[str, gr.Blocks], **mount_kwargs) -> RestApps:
    """Mount each small Blocks under ``REST_PREFIX/NAME`` on an app of their own."""
    holder = FastAPI()
    for name, one in blocks.items():
        gr.mount_gradio_app(holder, one, path=f"{REST_PREFIX}/{name}", **mount_kwargs)
    return RestApps(blocks, holder)


class SessionlessRouter:
    """ASGI middleware: a session-less call of a small Blocks' endpoint goes to that Blocks.

    ``POST .../gradio_api/call/NAME`` whose JSON body has no ``session_hash``, and the
    ``GET .../gradio_api/call/NAME/EVENT_ID`` of an event it took; nothing else.
    """

    def __init__(self, app: Callable, rest: RestApps):
        self.app = app
        self.rest = rest

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if method == "GET" and (match := FILE_GET.match(path)):
            if match["name"] in self.rest.blocks:
                return await self.rest.app(scope, receive, send)
        elif method == "GET" and (match := CALL_GET.match(path)):
            if self.rest.owns_event(match["name"], match["event"]):
                return await self._to_rest(match["name"], scope, receive, send)
        elif (
            method == "POST"
            and (match := CALL_POST.match(path))
            and match["name"] in self.rest.blocks
        ):
            body, receive = await _read_body(receive)
            if body is not None and _sessionless(body):
                return await self._to_rest(match["name"], scope, receive, send)
        return await self.app(scope, receive, send)

    async def _to_rest(self, name: str, scope, receive, send):
        prefix = f"{REST_PREFIX}/{name}"
        path = prefix + scope["path"]
        scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.rest.app(scope, receive, send)


async def _read_body(receive) -> tuple[bytes | None, Callable]:
    """The request's body (None past ``MAX_INSPECTED_BODY``), and a ``receive`` that replays
    what was read before handing on to the original."""
    chunks, size, more = [], 0, True
    while more and size <= MAX_INSPECTED_BODY:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            chunks.append(message)
            break
        chunks.append(message)
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    pending = list(chunks)

    async def replay():
        return pending.pop(0) if pending else await receive()

    complete = not more and all(m["type"] == "http.request" for m in chunks)
    body = b"".join(m.get("body", b"") for m in chunks) if complete else None
    return body, replay


def _sessionless(body: bytes) -> bool:
    try:
        payload = json.loads(body)
    except ValueError:
        return False  # the page's route answers it with its usual error
    return isinstance(payload, dict) and not payload.get("session_hash")

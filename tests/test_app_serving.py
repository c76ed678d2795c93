"""The app as a server strangers share: a bounded disk, and REST calls without a session.

The app is served in-process on a free port (as ``python app.py`` serves it) and driven over
plain HTTP, as a ``curl`` user following Gradio's REST docs would, and with gradio_client.
"""

from __future__ import annotations

import json
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from conftest import close_when_idle  # noqa: E402

import app  # noqa: E402
from digitnet.strokes import PenStyle, digit_strokes  # noqa: E402
from digitnet.ui.rest_api import SESSIONS_KEPT  # noqa: E402

EXAMPLE = app.EXAMPLES_DIR / "thick-strokes-4.png"
ANSWER_ENDPOINTS = ("classify", "predict", "explain")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app, with a cache folder of its own (Gradio's default is shared by every process;
    Gradio reads the variable at every upload, so it stays set while the app serves)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio-cache")))
        models, warnings = app.load_models()
        demo, url = app.serve_in_background(models, warnings)
        yield demo, url
        close_when_idle(demo)


@pytest.fixture(scope="module")
def http(served):
    with httpx.Client(base_url=served[1] + "gradio_api/", timeout=60, trust_env=False) as client:
        yield client


def call(http: httpx.Client, name: str, data: list, session: str | None = None) -> tuple:
    """Gradio's REST API by hand: post the call, read its event stream to the end."""
    body = {"data": data, **({"session_hash": session} if session else {})}
    posted = http.post(f"call/{name}", json=body)
    posted.raise_for_status()
    events = http.get(f"call/{name}/{posted.json()['event_id']}").text
    kind, _, rest = events.strip().rpartition("\n\n")[2].partition("\n")
    return kind.removeprefix("event: "), json.loads(rest.removeprefix("data: "))


def upload(http: httpx.Client, path: Path) -> dict:
    with path.open("rb") as handle:
        response = http.post("upload", files={"files": (path.name, handle, "image/png")})
    response.raise_for_status()
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}


def seven(nth: int) -> dict:
    """A drawn 7, a little different each time (so no two step images are the same file)."""
    return {"strokes": digit_strokes(7, PenStyle(150 + nth % 97, (140, 140), 0.001 * nth))}


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(files, bytes) under ``folder``."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


# ---------------------------------------------------------------------------
# A bounded disk


def test_the_cache_is_cleaned_and_uploads_are_capped(served):
    demo, _ = served
    assert demo.delete_cache == app.DELETE_CACHE
    assert demo.max_file_size == 5 * 2**20
    for blocks in demo.sessionless_blocks.values():
        assert blocks.max_file_size == 5 * 2**20
        # Every session-less call is a session never seen again: only the last few are kept.
        assert blocks.state_holder.capacity == SESSIONS_KEPT


def test_a_300_mb_upload_is_refused_and_nothing_is_kept(served, http):
    """Streamed from one reused 1 MiB chunk: the test never holds 300 MB."""
    folder = Path(served[0].GRADIO_CACHE)
    before = folder_bytes(folder) if folder.exists() else (0, 0)
    chunk = b"\0" * 2**20
    head = (
        b'--BOUND\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )

    def body():
        yield head
        for _ in range(300):
            yield chunk
        yield b"\r\n--BOUND--\r\n"

    response = http.post(
        "upload", content=body(), headers={"content-type": "multipart/form-data; boundary=BOUND"}
    )
    assert response.status_code == 413, response.text[:200]
    assert "maximum allowed size" in response.text
    after = folder_bytes(folder) if folder.exists() else (0, 0)
    assert after[1] - before[1] < 2**20  # nothing of it was kept


def test_200_predict_calls_leave_the_cache_as_it_was(served, http):
    """Every drawing different; the pipeline's four images travel inside the answer."""
    cache = Path(served[0].GRADIO_CACHE)
    session = uuid.uuid4().hex[:11]
    kind, first = call(http, "predict", [seven(0), "MLP"], session)
    assert kind == "complete" and first[4]["url"].startswith("data:image/png;base64,")
    before = folder_bytes(cache)
    for nth in range(1, 200):
        kind, outputs = call(http, "predict", [seven(nth), "MLP"], session if nth % 2 else None)
        assert kind == "complete", outputs
        assert outputs[1]["label"] == "7"
    assert folder_bytes(cache) == before


# ---------------------------------------------------------------------------
# REST calls without a session


def test_sessionless_endpoints_have_the_pages_names_and_shapes(served, http):
    demo, _ = served
    page = http.get("info").json()["named_endpoints"]
    for name in ANSWER_ENDPOINTS:
        small = demo.sessionless_blocks[name].get_api_info()["named_endpoints"]
        assert list(small) == [f"/{name}"]
        for part in ("parameters", "returns"):
            mine, theirs = small[f"/{name}"][part], page[f"/{name}"][part]
            assert [(p["label"], p["type"]) for p in mine] == [
                (p["label"], p["type"]) for p in theirs
            ], (name, part)


def test_a_sessionless_call_answers_like_the_pages(served, http):
    demo, _ = served
    file = upload(http, EXAMPLE)
    session = uuid.uuid4().hex[:11]
    for name, data in [("classify", [file, "MLP"]), ("predict", [seven(3), "MLP"])]:
        before = len(demo.state_holder.session_data)
        sessionless = call(http, name, data)
        assert len(demo.state_holder.session_data) == before, "the page built a session"
        assert sessionless == call(http, name, data, session), name
    kind, (overlay, arrays) = call(http, "explain", [file, "MLP"])
    assert kind == "complete" and arrays["label"] == 4
    assert http.get(overlay["url"]).status_code == 200  # served by the app that made it


def test_a_sessionless_call_of_another_endpoint_reaches_the_page(served, http):
    demo, _ = served
    before = len(demo.state_holder.session_data)
    kind, _ = call(http, "runs", [])
    assert kind == "complete" and len(demo.state_holder.session_data) == before + 1


def test_a_sessionless_error_is_the_pages_one_line(http):
    kind, error = call(http, "predict", [{"strokes": "nope"}, "MLP"])
    assert kind == "error" and error["error"]
    assert (kind, error) == call(http, "predict", [{"strokes": "nope"}, "MLP"], "s" * 11)


def test_gradio_client_still_reaches_every_endpoint_at_the_root(served):
    from gradio_client import Client, handle_file

    client = Client(served[1], verbose=False, analytics_enabled=False, download_files=False)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/predict", "/classify", "/explain", "/save_drawing", "/train", "/runs"} <= names
    assert client.predict(handle_file(str(EXAMPLE)), "MLP", api_name="/classify")["label"] == "4"
    *_, centred, checked = client.predict(seven(5), "MLP", api_name="/predict")
    assert centred["url"].startswith("data:image/png;base64,") and "**7**" in checked

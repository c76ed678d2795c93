"""Room mode in the served app: gradio_client sessions and headless Chromium (the issue's
"Done when", smaller: scripts/room_demo.py plays it in full against python app.py, and these
tests run its own functions).

- three sessions train and publish (one nickname ``<b>bob</b>``); a fourth reads
  ``leaderboard``, best first, and a page shows the nickname as text;
- the endpoints' names and parameters; the session-less ``leaderboard``;
- operator removal through the API (right and wrong token);
- the room's fine-tune reaches pages that were already open, and answers in their browser.

    python -m pytest tests/test_room_app.py
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import functools  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from conftest import BROWSER_MARKS, REPO, assert_one_line, close_when_idle  # noqa: E402
from gradio_client import handle_file  # noqa: E402

import app  # noqa: E402
from digitnet.data import load_mnist  # noqa: E402
from digitnet.drawings import render_drawings  # noqa: E402
from digitnet.room import ROOM_MODEL  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402
from digitnet.ui import drawing_policy  # noqa: E402

TOKEN = "room-test-token"
SEVEN = REPO / "assets" / "examples" / "small-in-a-corner-7.png"
ROOM_ENDPOINTS = {
    "/publish": ["run", "nickname"],
    "/leaderboard": [],
    "/room_counts": [],
    "/room_model": [],
    "/remove_entry": ["entry_id", "token"],
    "/room_finetune": ["token", "base", "epochs"],
}


def in_chromium(test):
    """A test in the browser: marked, and skipped without Chromium (conftest's marks)."""
    return functools.reduce(lambda marked, mark: mark(marked), BROWSER_MARKS, test)


def load_demo():
    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location("room_demo", REPO / "scripts" / "room_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["room_demo"] = module
    spec.loader.exec_module(module)
    return module


demo_script = load_demo()


@pytest.fixture(scope="module")
def served(tmp_path_factory, small_train_csv):
    """The app with room mode on and an operator token; training on 600 digits (fast)."""
    folder = tmp_path_factory.mktemp("room")
    service = TrainingService(folder / "runs", data_paths=[small_train_csv], drawings=10)
    store = drawing_policy.open_app_store(folder / "drawings.sqlite")
    demo, url = app.serve_in_background(
        *app.load_models(),
        training=service,
        app_store=store,
        environ={"DIGITNET_OPERATOR_TOKEN": TOKEN},
    )
    yield demo, url, folder
    close_when_idle(demo)
    service.close()


@pytest.fixture(scope="module")
def published(served):
    """Three sessions publish runs of hidden sizes 64, 256 and 32 (2 epochs each)."""
    return demo_script.publish_three(served[1], epochs=2, train_size=500)


def client_of(url: str):
    return demo_script.new_client(url)


def test_three_published_runs_a_fourth_session_reads_best_first(served, published):
    rows = demo_script.read_leaderboard(served[1])
    assert {row["nickname"] for row in rows} == {"ada", "<b>bob</b>", "cy"}
    accuracies = [row["val_accuracy"] for row in rows]
    assert accuracies == sorted(accuracies, reverse=True) and None not in accuracies
    for summary, entry in published:
        row = next(row for row in rows if row["entry"] == entry["entry"])
        assert row["val_accuracy"] == summary["val_accuracy"] and row["run"] == summary["run"]
        assert row["test_count"] == 10_000 and row["train_digits"] == 500
        assert row["knobs"].startswith("tiny and fast + ")  # what differs: epochs, sizes...
        hidden = summary["knobs"]["hidden_sizes"]
        assert (f"hidden_sizes {hidden}" in row["knobs"]) == (hidden != "256"), row["knobs"]


@in_chromium
def test_a_nickname_in_html_shows_as_text_in_chromium(served, published, browser):
    text, tags = demo_script.leaderboard_in_page(browser, served[1], "<b>bob</b>")
    assert "<b>bob</b>" in text and tags == 0, text


def test_the_room_endpoints_have_named_parameters(served):
    demo, url, _ = served
    info = httpx.get(f"{url}gradio_api/info").json()["named_endpoints"]
    for name, parameters in ROOM_ENDPOINTS.items():
        assert [p["parameter_name"] for p in info[name]["parameters"]] == parameters, name
        assert all(r["label"] for r in info[name]["returns"]), name
    for name in ("leaderboard", "room_counts"):  # session-less REST calls: a small Blocks
        small = demo.sessionless_blocks[name].get_api_info()["named_endpoints"][f"/{name}"]
        assert [r["label"] for r in small["returns"]] == [
            r["label"] for r in info[f"/{name}"]["returns"]
        ]


def test_a_rest_call_without_a_session_reads_the_leaderboard(served, published):
    demo, url, _ = served
    before = len(demo.state_holder.session_data)
    event = httpx.post(f"{url}gradio_api/call/leaderboard", json={"data": []}).json()
    stream = httpx.get(f"{url}gradio_api/call/leaderboard/{event['event_id']}").text
    assert "event: complete" in stream and "&lt;b&gt;" not in stream and "<b>bob</b>" in stream
    assert len(demo.state_holder.session_data) == before, "the page built a session"


def test_the_operator_removes_an_entry_and_nobody_else_can(served, published):
    url = served[1]
    client = client_of(url)
    try:
        cy = next(entry for _, entry in published if entry["nickname"] == "cy")
        for token in ("guess", ""):
            with pytest.raises(Exception) as caught:
                client.predict(cy["entry"], token, api_name="/remove_entry")
            assert_one_line(str(caught.value), "wrong operator token")
        removed = client.predict(cy["entry"], TOKEN, api_name="/remove_entry")
        assert removed["removed"] == cy["entry"] and removed["nickname"] == "cy"
        rows = client.predict(api_name="/leaderboard")["rows"]
        assert "cy" not in [row["nickname"] for row in rows]
        with pytest.raises(Exception) as caught:
            client.predict(cy["entry"], TOKEN, api_name="/remove_entry")
        assert_one_line(str(caught.value), f"no entry {cy['entry']}")
    finally:
        client.close()


@in_chromium
def test_the_room_model_reaches_every_open_page_and_answers_there(
    served, published, browser, tmp_path
):
    """Two pages open before the fine-tune; one confirms drawings on its pad, two programs
    send the rest; the operator fine-tunes; both pages get the room's model without a
    reload, and it answers in their browsers; a program's session draws with it too."""
    url = served[1]
    pages = [demo_script.open_page(browser, url) for _ in range(2)]
    clients = [client_of(url) for _ in range(2)]
    try:
        lines = demo_script.confirm_drawings(pages[0], 2, first_digit=4)
        assert all("drawing #" in line for line in lines), lines
        test = load_mnist("test")
        for index, picture in enumerate(render_drawings(test.images[:22], seed=3)):
            path = tmp_path / f"{index}.png"
            picture.save(path)
            label = int(test.labels[index])
            clients[index % 2].predict(handle_file(str(path)), label, api_name="/save_drawing")
        counts = clients[0].predict(api_name="/room_counts")
        assert counts["total"] == 24, counts
        with pytest.raises(Exception) as caught:
            demo_script.start_room_finetune(url, "guess", 1)
        assert_one_line(str(caught.value), "wrong operator token")
        demo_script.start_room_finetune(url, TOKEN, 1)
        status = demo_script.wait_for_room_model(url)
        assert status["state"] == "ready", status
        for page in pages:
            answer = demo_script.room_model_answers(page)
            assert answer["live"] and answer["in_browser"] == 7, answer
        # A program's session gets the room's model from room_model, then draws with it.
        clients[1].predict(api_name="/room_model")
        answer = clients[1].predict(handle_file(str(SEVEN)), ROOM_MODEL, api_name="/classify")
        assert answer["label"] == "7", answer
        rows = clients[0].predict(api_name="/leaderboard")["rows"]
        room = next(row for row in rows if row["kind"] == "room")
        assert room["nickname"] == "the room" and 0 < room["room_count"] < 24
    finally:
        for page in pages:
            page.close()
        for client in clients:
            client.close()

"""Room mode's library and handlers (digitnet/room.py, leaderboard.py, room_store.py,
ui/room_tab.py), called directly with a real training service and drawings store: nicknames,
knobs against presets, publishing, the leaderboard's order and figures, operator removal,
entries that outlive their runs and a restart, and the room's fine-tune.

The served app, gradio_client and Chromium: tests/test_room_app.py.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import shutil  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import assert_one_line  # noqa: E402

import app  # noqa: E402
from digitnet.config import ConfigError  # noqa: E402
from digitnet.data import load_mnist  # noqa: E402
from digitnet.leaderboard import (  # noqa: E402
    NICKNAME_MAX,
    RoomError,
    clean_nickname,
    preset_differences,
)
from digitnet.room import (  # noqa: E402
    ROOM_MODEL,
    Room,
    RoomSettings,
    room_model_name,
    room_model_number,
)
from digitnet.room_store import list_entries, room_counts  # noqa: E402
from digitnet.store import SCHEMA_VERSION, SOURCE_IMPORT, open_store  # noqa: E402
from digitnet.train import TrainConfig  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402
from digitnet.ui.room_tab import (  # noqa: E402
    make_room_handlers,
    render_counts_html,
    render_leaderboard_html,
)

TOKEN = "operator-secret"
WAIT_S = 300


class Request:
    """What the handlers read of a gr.Request."""

    def __init__(self, session_hash: str):
        self.session_hash = session_hash


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def train(service: TrainingService, session: str, hidden: str, epochs: int = 1) -> str:
    """A small run of ``session``'s, trained to the end; its name."""
    job = service.submit(session, {"hidden_sizes": hidden, "epochs": epochs, "augment": False})
    wait_until(lambda: job.finished, f"{session}'s run")
    assert job.snapshot().record is not None, job.snapshot().error
    return job.name


def room_error(call, *args) -> str:
    with pytest.raises(RoomError) as caught:
        call(*args)
    return str(caught.value)


# ---------------------------------------------------------------------------
# Plain functions


def test_a_nickname_is_kept_as_text_without_control_characters():
    assert clean_nickname("<b>bob</b>") == "<b>bob</b>"  # text: shown escaped, never as HTML
    assert clean_nickname("  ada\tlovelace\n ") == "ada lovelace"
    assert clean_nickname("a\x00d\u202ea\u200b") == "ada"  # NUL, a bidi override, zero width
    assert clean_nickname("x" * NICKNAME_MAX) == "x" * NICKNAME_MAX
    assert_one_line(room_error(clean_nickname, "x" * 40), f"at most {NICKNAME_MAX}", "got 40")
    assert_one_line(room_error(clean_nickname, " \x07 "), "nickname", "e.g. ada")
    assert_one_line(room_error(clean_nickname, None), "nickname")


def test_the_knobs_shown_are_what_differs_from_the_nearest_preset():
    tiny = TrainConfig.from_knobs(
        hidden_sizes=(64,), epochs=3, thickness_prob=0.0, hard_stroke_prob=0.0,
        nondigit_fraction=0.0,
    )  # fmt: skip
    assert preset_differences(tiny) == ("tiny and fast", {"hidden_sizes": "64", "epochs": 3})
    assert preset_differences(TrainConfig().replace(epochs=15)) == ("digitnet's recipe", {})
    cnn = TrainConfig().replace(epochs=15, architecture="cnn", hidden_sizes=(7,))
    assert preset_differences(cnn) == ("digitnet's recipe", {"architecture": "cnn"})


def test_room_mode_is_on_locally_and_on_a_space_only_when_asked():
    assert RoomSettings.from_environ({}).enabled
    assert not RoomSettings.from_environ({"SPACE_ID": "you/digitnet"}).enabled
    on_space = RoomSettings.from_environ({"SPACE_ID": "you/digitnet", "DIGITNET_ROOM": "1"})
    assert on_space.enabled and on_space.operator_token is None
    assert not RoomSettings.from_environ({"DIGITNET_ROOM": "off"}).enabled
    assert RoomSettings.from_environ({"DIGITNET_OPERATOR_TOKEN": TOKEN}).operator_token == TOKEN
    for bad, needle in [
        ({"DIGITNET_ROOM": "maybe"}, "DIGITNET_ROOM='maybe'"),
        ({"DIGITNET_OPERATOR_TOKEN": "abc"}, "at least 8 characters"),
    ]:
        with pytest.raises(ConfigError) as caught:
            RoomSettings.from_environ(bad)
        assert_one_line(str(caught.value), needle)


def test_each_room_model_has_a_name_of_its_own():
    assert [room_model_name(n) for n in (1, 2)] == [ROOM_MODEL, f"{ROOM_MODEL} 2"]
    assert [room_model_number(room_model_name(n)) for n in (1, 2, 12)] == [1, 2, 12]
    assert room_model_number("run-1") == room_model_number("room model x") == 0


def test_the_leaderboard_and_counts_render_every_text_escaped():
    row = {
        "entry": 3, "nickname": "<b>bob</b>", "run": "run-1", "kind": "run",
        "knobs": "tiny and fast + hidden_sizes 256 <i>", "train_digits": 7200,
        "val_accuracy": 0.9612, "test_accuracy": 0.95, "room_accuracy": 0.75,
        "room_count": 4, "room_interval": [0.3, 0.95], "train_seconds": 6.4, "run_gone": False,
    }  # fmt: skip
    html = render_leaderboard_html([row])
    assert "&lt;b&gt;bob&lt;/b&gt;" in html and "<b>" not in html and "<i>" not in html
    assert "96.12%" in html and "75% [30–95] of 4" in html and "7,200 digits" in html
    assert "large" in render_leaderboard_html([row], large=True)
    assert "No run published yet" in render_leaderboard_html([])
    counts = render_counts_html({"0": 2, "not a digit": 1})
    assert "<th>not a digit</th>" in counts and "<td>3</td>" in counts  # and in all


def test_a_version_3_database_gains_the_room_table_keeping_its_drawings(tmp_path):
    path = tmp_path / "v3.sqlite"
    with open_store(path) as store:
        store.save(np.full((28, 28), 255, np.uint8), 7, session="old")
    old = sqlite3.connect(path)
    old.execute("DROP TABLE room_entries")
    old.execute("PRAGMA user_version = 3")
    old.commit()
    old.close()
    with open_store(path) as store:
        assert store.count() == 1 and list_entries(store) == []
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    check.close()


# ---------------------------------------------------------------------------
# A room with a real service and store


@pytest.fixture(scope="module")
def service(tmp_path_factory, small_train_csv):
    service = TrainingService(
        tmp_path_factory.mktemp("runs"), data_paths=[small_train_csv], drawings=10
    )
    yield service
    service.close()


@pytest.fixture(scope="module")
def bases():
    models, _ = app.load_models()
    return models


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with open_store(tmp_path_factory.mktemp("db") / "drawings.sqlite") as store:
        yield store


@pytest.fixture(scope="module")
def room(store, service, bases):
    return Room(store, service, RoomSettings(True, TOKEN), bases)


@pytest.fixture(scope="module")
def published(room, service):
    """Three sessions' runs (hidden sizes 64, 256 and 32), each published by its session."""
    entries = {}
    for nickname, hidden in [("ada", "64"), ("<b>bob</b>", "256"), ("cy", "32")]:
        session = f"session-{hidden}"
        run = train(service, session, hidden)
        entries[nickname] = room.publish(session, run, nickname)
    return entries


def test_three_sessions_publish_and_the_leaderboard_is_best_first(room, published, service):
    rows = room.leaderboard_rows()
    assert {row["nickname"] for row in rows} == {"ada", "<b>bob</b>", "cy"}
    accuracies = [row["val_accuracy"] for row in rows]
    assert accuracies == sorted(accuracies, reverse=True) and None not in accuracies
    bob = published["<b>bob</b>"]
    assert bob["run"] == "run-1" and bob["knobs"].endswith(
        "hidden_sizes 256, epochs 1, augment False"
    )
    record = service.find_run("session-256", "run-1")
    assert bob["val_accuracy"] == record.metadata["metrics"]["validation"]["accuracy"]
    assert bob["test_count"] == 10_000 and 0.5 < bob["test_accuracy"] < 1
    assert bob["train_seconds"] == record.metadata["training_seconds"]
    assert bob["room_count"] == 0 and bob["room_interval"] is None  # no drawings yet
    assert room.leaderboard_rows() == rows  # asked again: the same rows, from the cache


def test_the_presenter_view_shows_the_rooms_leaderboard_large_and_escaped(room, published):
    from digitnet.ui.room_tab import RoomView

    board, drawings = app.presenter_room(RoomView(room))
    shown = board()
    assert "&lt;b&gt;bob&lt;/b&gt;" in shown and "<b>bob</b>" not in shown
    assert "large" in shown and all(name in shown for name in ("ada", "cy"))
    assert drawings() == list(room.digit_counts().values()) and len(drawings()) == 11
    assert app.presenter_room(None) == (None, None)  # room mode off: the store's counts


def test_a_session_publishes_only_its_own_runs_once(room, published):
    stranger = room_error(room.publish, "nobody", "run-1", "eve")
    assert_one_line(stranger, "no run called 'run-1'", "train one on the Train tab")
    again = room_error(room.publish, "session-64", "run-1", "ada again")
    assert_one_line(again, "run-1 is already on the leaderboard as 'ada'")
    assert_one_line(room_error(room.publish, "session-64", "", "ada"), "your runs: run-1")
    assert_one_line(room_error(room.publish, "session-64", "run-1", "x" * 99), "at most")


def test_removal_needs_the_operator_token(room, store, service, bases, published):
    entry = published["cy"]["entry"]
    assert_one_line(room_error(room.remove, entry, "guess"), "wrong operator token")
    assert_one_line(room_error(room.remove, entry, None), "wrong operator token")
    tokenless = Room(store, service, RoomSettings(True, None), bases)
    assert_one_line(
        room_error(tokenless.remove, entry, TOKEN), "no operator token", "DIGITNET_OPERATOR_TOKEN"
    )
    handlers = make_room_handlers(room)
    with pytest.raises(gr.Error) as caught:  # the endpoint: the same line, no traceback
        handlers.remove_entry(entry, "guess")
    assert_one_line(caught.value.message, "wrong operator token")
    assert_one_line(room_error(room.remove, "three", TOKEN), "give the entry's number")
    assert_one_line(room_error(room.remove, 999, TOKEN), "no entry 999")
    folders = {path.name for path in room.folder.iterdir()}
    removed = room.remove(f"#{entry}", TOKEN)
    assert removed == {"removed": entry, "nickname": "cy", "run": "run-1", "left": 2}
    assert "cy" not in {row["nickname"] for row in room.leaderboard_rows()}
    assert len({path.name for path in room.folder.iterdir()}) == len(folders) - 1


def test_an_entry_outlives_its_run_and_a_restart(tmp_path, small_train_csv, bases):
    service = TrainingService(
        tmp_path / "runs", keep_runs=1, data_paths=[small_train_csv], drawings=10
    )
    try:
        store = open_store(tmp_path / "drawings.sqlite")
        room = Room(store, service, RoomSettings(True, TOKEN), bases)
        first = train(service, "a", "16")
        entry = room.publish("a", first, "ada")
        train(service, "a", "24")  # the quota of one removes the first run and its files
        assert service.find_run("a", first).evicted
        assert_one_line(room_error(room.publish, "a", first, "again"), "removed to make room")
        store.save(load_mnist("test").images[0], 7, session="b")  # a drawing of the room's
        (row,) = room.leaderboard_rows()
        assert not row["run_gone"] and row["room_count"] == 1  # its pinned model still answers
        store.close()

        store = open_store(tmp_path / "drawings.sqlite")  # the server restarts
        (again,) = Room(store, service, RoomSettings(True, TOKEN), bases).leaderboard_rows()
        assert again == row
        shutil.rmtree(room.folder / list_entries(store)[0].folder)  # its files are lost
        (gone,) = Room(store, service, RoomSettings(True, TOKEN), bases).leaderboard_rows()
        assert gone["run_gone"] and gone["val_accuracy"] == entry["val_accuracy"]
        assert gone["room_count"] == 0  # as measured when it was published
        assert "its files are gone" in render_leaderboard_html([gone])
        store.close()
    finally:
        service.close()


def test_the_room_fine_tune_joins_every_session_and_skips_its_own_drawings(
    room, store, service, bases, published
):
    test = load_mnist("test")
    for index in range(24):  # the room's drawings, kept by two sessions
        store.save(test.images[index], int(test.labels[index]), session=f"s{index % 2}")
    store.save(test.images[30], 3, session="import", source=SOURCE_IMPORT)  # not the room's
    assert sum(room_counts(store)) == sum(room.digit_counts().values()) == 24
    assert room.finetune_status()["state"] == "none" and room.room_model() is None
    assert_one_line(room_error(room.start_finetune, "guess"), "wrong operator token")
    assert_one_line(room_error(room.start_finetune, TOKEN, "GPT"), "choose one of MLP, CNN")
    status = room.start_finetune(TOKEN, "MLP", 1)
    assert status["state"] in ("queued", "preparing", "training")
    assert_one_line(room_error(room.start_finetune, TOKEN), "already queued or training")
    wait_until(lambda: room.finetune_status()["state"] in ("ready", "failed"), "the room model")
    status = room.finetune_status()
    assert status["state"] == "ready" and status["room_model"] == ROOM_MODEL, status

    model = room.room_model()
    assert model.name == ROOM_MODEL and model.web_model is not None and model.web_model.is_file()
    trained = model.metadata["finetune"]["drawings"]["train_ids"]
    (row,) = [row for row in room.leaderboard_rows() if row["kind"] == "room"]
    assert row["nickname"] == "the room" and row["run"] == ROOM_MODEL
    assert row["room_count"] == 24 - len(trained) > 0  # only drawings it never trained on
    assert row["knobs"] == f"fine-tuned MLP on {len(trained)} drawings, 1 epoch"
    # A publish's rows are measured on the room's drawings too, all 24 of them.
    assert {r["room_count"] for r in room.leaderboard_rows() if r["kind"] == "run"} == {24}
    # After a restart, the room's model is back, and the next one gets a name of its own.
    restarted = Room(store, service, RoomSettings(True, TOKEN), bases)
    assert restarted.room_model().name == ROOM_MODEL
    assert restarted._room_numbers == 1


def test_the_handlers_say_what_went_wrong_in_one_line(room, published):
    handlers = make_room_handlers(room)
    with pytest.raises(gr.Error) as caught:
        handlers.publish("run-9", "ada", Request("session-64"))
    assert_one_line(caught.value.message, "no run called 'run-9'", "your runs: run-1")
    line = handlers.publish_from_page("run-1", "<i>x</i>", Request("session-64"))
    assert "already on the leaderboard" in line and "<i>" not in line
    line = handlers.operator_line("remove", 999, "guess", "MLP", 1)
    assert "wrong operator token" in line and line.startswith('<p class="room-line">')
    assert "no entry 999" in handlers.operator_line("remove", 999, TOKEN, "MLP", 1)
    assert "epochs must be in [1, 100], got 0" in handlers.operator_line(
        "finetune", 1, TOKEN, "MLP", 0
    )
    assert handlers.leaderboard()["rows"] == room.leaderboard_rows()
    assert handlers.room_counts()["total"] == sum(room.digit_counts().values())


def test_the_operator_lists_and_removes_entries_from_the_command_line(tmp_path, capsys):
    from digitnet.cli import main
    from digitnet.room_store import add_entry

    path = tmp_path / "drawings.sqlite"
    with open_store(path) as store:
        for nickname, accuracy in [("ada", 0.9), ("<b>bob</b>", 0.95)]:
            figures = {"val_accuracy": accuracy, "test_accuracy": 0.9, "knobs": "tiny and fast"}
            add_entry(
                store, session="s", nickname=nickname, run="run-1", kind="run", folder=None,
                figures=figures,
            )  # fmt: skip
    assert main(["room", "list", "--db", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("#2") and "'<b>bob</b>'" in lines[0] and "95.00%" in lines[0]
    assert main(["room", "remove", "1", "--db", str(path)]) == 0
    assert "removed entry 1: 'ada'" in capsys.readouterr().out
    assert main(["room", "remove", "1", "--db", str(path)]) == 2
    assert_one_line(capsys.readouterr().err, "no entry 1")

"""Keeping drawings in the app (digitnet/ui/feedback.py, drawing_policy.py, drawings_tab.py and
finetune_panel.py): the server-side saving switch and its policy, confirm or correct,
the save_drawing and finetune endpoints through gradio_client against the app served
in-process, bad database files at start, and 200 concurrent saves surviving a kill -9 of a
``python app.py`` subprocess.

Every store lives in a tmp path (DIGITNET_DB or an explicit AppStore), never in runs/.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import copy  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from conftest import assert_one_line, close_when_idle  # noqa: E402
from PIL import Image  # noqa: E402

import app  # noqa: E402
from digitnet import drawing_data  # noqa: E402
from digitnet.calibration import Calibration, set_calibration  # noqa: E402
from digitnet.drawings import render_drawings  # noqa: E402
from digitnet.errors import DigitnetError  # noqa: E402
from digitnet.finetune import MIN_DRAWINGS  # noqa: E402
from digitnet.pad_value import preprocess_pad_value  # noqa: E402
from digitnet.predict import classify_preprocessed  # noqa: E402
from digitnet.preprocess import canvas_to_mnist  # noqa: E402
from digitnet.store import NOT_A_DIGIT, open_store  # noqa: E402
from digitnet.strokes import PenStyle, digit_strokes  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402
from digitnet.ui import drawing_policy, drawings_tab, feedback, finetune_panel  # noqa: E402
from digitnet.ui.drawing_policy import SavingPolicy  # noqa: E402
from digitnet.ui.session import ModelChoiceOutputs, ModelLookup  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
THREADS, SAVES_PER_THREAD = 20, 10


@pytest.fixture(scope="module")
def drawing_files(mnist, tmp_path_factory) -> list[tuple[Path, int]]:
    """Canvas-like PNGs of 30 MNIST digits (three of each class) with their labels."""
    folder = tmp_path_factory.mktemp("drawings")
    rows = np.concatenate([np.flatnonzero(mnist.labels == d)[:3] for d in range(10)])
    files = []
    for row, image in zip(rows, render_drawings(mnist.images[rows], seed=1)):
        path = folder / f"{row}-{mnist.labels[row]}.png"
        image.save(path)
        files.append((path, int(mnist.labels[row])))
    return files


def serve(store_path: Path, runs: Path, data: Path):
    """The app in-process with its own store and a small training service."""
    service = TrainingService(runs, data_paths=[data], drawings=20)
    models, warnings = app.load_models()
    demo, url = app.serve_in_background(
        models, warnings, training=service, app_store=drawing_policy.open_app_store(store_path)
    )
    return demo, url, service


@pytest.fixture(scope="module")
def served(tmp_path_factory, small_train_csv):
    """The app in-process with its own tmp store; yields (url, store path)."""
    path = tmp_path_factory.mktemp("store") / "drawings.sqlite"
    demo, url, service = serve(path, tmp_path_factory.mktemp("runs"), small_train_csv)
    yield url, path
    close_when_idle(demo)
    service.close()


def input_of(path: Path):
    with Image.open(path) as image:
        return canvas_to_mnist(image)


def new_client(url: str):
    from gradio_client import Client

    # A generous timeout: 20 clients start at once on a small shared machine.
    return Client(url, verbose=False, analytics_enabled=False, httpx_kwargs={"timeout": 120})


@pytest.fixture(scope="module")
def client(served):
    return new_client(served[0])


# ---------------------------------------------------------------------------
# The switch and the handler


def saver_of(opened, models, policy: SavingPolicy | None = None, environ=None):
    """The Right / No handlers of ``opened``, the way the app makes them."""
    policy = policy if policy is not None else SavingPolicy(environ or {})
    return feedback.make_feedback_handlers(opened, {}, ModelLookup(models), policy).saver


class Request:
    def __init__(self, session_hash: str):
        self.session_hash = session_hash


def test_saving_is_on_locally_and_off_on_a_space_and_the_operator_can_force_it_off():
    assert SavingPolicy({}).default is True
    assert SavingPolicy({"HOME": "/root"}).default is True
    assert SavingPolicy({"SPACE_ID": "someone/digitnet"}).default is False
    forced = SavingPolicy({"DIGITNET_SAVING": "off"})
    forced.set_switch("a", True)  # a visitor cannot turn it back on
    assert forced.default is False and forced.is_on("a") is False and forced.api is False


def test_the_switch_is_each_session_s_own_state_on_the_server():
    policy = SavingPolicy({"SPACE_ID": "a/b"})
    assert not policy.is_on("a") and not policy.is_on("b")
    policy.set_switch("a", True)
    assert policy.is_on("a") and not policy.is_on("b")
    policy.set_switch("a", False)
    assert not policy.is_on("a")


def test_the_switch_shows_its_default_and_what_is_kept_without_a_server_path(tmp_path):
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    local = feedback.saving_switch(opened, SavingPolicy({}))
    space = feedback.saving_switch(opened, SavingPolicy({"SPACE_ID": "a/b"}))
    assert local.value is True and space.value is False
    assert local.interactive is not False and "28×28" in local.info
    assert "everyone" in local.info and "this page's session only" in space.info
    for switch in (local, space):
        assert str(tmp_path) not in switch.info and "d.sqlite" not in switch.info
    forced = feedback.saving_switch(opened, SavingPolicy({"DIGITNET_SAVING": "off"}))
    assert forced.value is False and forced.interactive is False


def test_on_a_space_nothing_is_kept_until_that_visitor_turns_saving_on(tmp_path):
    models, _ = app.load_models()
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    policy = SavingPolicy({"SPACE_ID": "a/b"})
    handlers = feedback.make_feedback_handlers(opened, {}, ModelLookup(models), policy)
    mine, stranger = Request("mine"), Request("stranger")
    assert handlers.saver(None)(pad_value(7), "MLP", mine) == feedback.SWITCHED_OFF
    handlers.set_switch(True, mine)
    assert "Kept as a **7**" in handlers.saver(None)(pad_value(7), "MLP", mine)
    assert handlers.saver(None)(pad_value(7, 180), "MLP", stranger) == feedback.SWITCHED_OFF
    assert opened.store.count() == 1 and opened.store.count(session="mine") == 1


def test_saves_are_rate_limited_per_session():
    now = [0.0]
    policy = SavingPolicy({"DIGITNET_SAVES_PER_MINUTE": "3"}, clock=lambda: now[0])
    for _ in range(3):
        policy.admit("a")
    with pytest.raises(DigitnetError) as caught:
        policy.admit("a")
    assert_one_line(str(caught.value), "3 drawings a minute", "try again in 60 s")
    policy.admit("b")  # another visitor is not held up
    now[0] = 61.0
    policy.admit("a")  # a minute later
    with pytest.raises(DigitnetError):
        SavingPolicy({"DIGITNET_SAVES_PER_MINUTE": "many"})


def test_on_a_space_the_gallery_shows_each_visitor_their_own_unless_shared(tmp_path):
    models, _ = app.load_models()
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    saver = saver_of(opened, models)
    saver(3)(pad_value(7), "MLP", Request("mine"))
    saver(4)(pad_value(7), "MLP", Request("other"))
    for environ, shown in (
        ({"SPACE_ID": "a/b"}, 1),
        ({"SPACE_ID": "a/b", "DIGITNET_GALLERY": "everyone"}, 2),
        ({}, 2),
    ):
        policy = SavingPolicy(environ)
        handlers = drawings_tab.make_drawings_handlers(opened, ModelLookup(models), policy)
        items, ids, counts, _, selected = handlers.show("all", "all", Request("mine"))
        assert len(ids) == shown and selected is None
        assert int(counts["all"][0]) == 2  # the counts are of every drawing
    assert drawings_tab.gallery_items(opened.store, None, None, session="other")[1] == [ids[0]]


def test_the_delete_handler_deletes_only_the_session_s_own(tmp_path):
    models, _ = app.load_models()
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    saver_of(opened, models)(3)(pad_value(7), "MLP", Request("mine"))
    (row,) = opened.store.list_drawings()
    handlers = drawings_tab.make_drawings_handlers(opened, ModelLookup(models), SavingPolicy({}))
    assert "first" in handlers.delete(None, Request("mine"))
    assert "not one of this session's" in handlers.delete(row.id, Request("other"))
    assert handlers.delete(row.id, Request("mine")) == f"Deleted drawing #{row.id}."
    assert opened.store.count() == 0


def pad_value(digit: int, size: float = 200) -> dict:
    strokes = digit_strokes(digit, PenStyle(size, (140, 140), 0.0))
    return {"strokes": [[list(point) for point in stroke] for stroke in strokes]}


def test_right_and_no_its_a_save_the_server_s_answer_and_the_label(tmp_path):
    models, _ = app.load_models()
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    saver = saver_of(opened, models)
    line = saver(None)(pad_value(7), "MLP")  # "Right"
    assert "Kept as a **7**, MLP was right" in line
    line = saver(1)(pad_value(7, size=180), "CNN")  # another drawing: "No, it's a 1"
    assert "Kept as a **1**, CNN was wrong (it said 7)" in line
    right, wrong = sorted(opened.store.list_drawings(), key=lambda row: row.id)
    assert (right.label, right.predicted, right.model, right.source) == (7, 7, "MLP", "app")
    assert (wrong.label, wrong.predicted, wrong.model, wrong.is_correct) == (1, 7, "CNN", False)
    assert wrong.png and wrong.pixels.shape == (28, 28) and wrong.pixels.max() == 255
    assert len(json.loads(wrong.strokes)) == len(pad_value(7)["strokes"])
    # What is kept is the server's reading of the strokes: its input and its probabilities.
    _, preprocessed = preprocess_pad_value(pad_value(7, size=180), {})
    server = classify_preprocessed(models["CNN"].model, preprocessed)
    assert np.allclose(wrong.probs, server.probs, atol=1e-6)
    assert np.array_equal(wrong.pixels, np.rint(255 * preprocessed.image))


def test_one_drawing_is_one_row_however_often_it_is_confirmed_or_corrected(tmp_path):
    models, _ = app.load_models()
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    saver = saver_of(opened, models)
    assert "Kept as a **7**" in saver(None)(pad_value(7), "MLP")
    assert "Already kept as a **7**" in saver(None)(pad_value(7), "MLP")  # a double click
    line = saver(1)(pad_value(7), "MLP")  # the person changes their mind
    assert "Changed from a 7 to a **1**, MLP was wrong (it said 7)" in line
    (row,) = opened.store.list_drawings()
    assert (row.label, row.predicted) == (1, 7)
    assert "Kept as a **7**" in saver(None)(pad_value(7, size=180), "MLP")  # a new one
    assert opened.store.count() == 2
    # English puts "an" before an 8, whichever the line.
    assert "Kept as an **8**" in saver(None)(pad_value(8, size=200), "MLP")
    assert "Already kept as an **8**" in saver(None)(pad_value(8, size=200), "MLP")
    assert "Changed from an 8 to a **3**" in saver(3)(pad_value(8, size=200), "MLP")


def test_the_gallery_caption_says_the_truth_then_the_model_s_answer(tmp_path):
    models, _ = app.load_models()
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    saver = saver_of(opened, models)
    saver(9)(pad_value(7), "MLP")
    saver(None)(pad_value(7, size=180), "MLP")
    items, ids = drawings_tab.gallery_items(opened.store, None, None)
    assert [caption for _, caption in items] == [
        f"#{ids[0]}: 7 · MLP: 7 ✓",
        f"#{ids[1]}: 9 · MLP: 7 ✗",
    ]


def refusing(loaded: app.LoadedModel, name: str = "Strict") -> app.LoadedModel:
    """``loaded``'s weights with flat probabilities and a high bar: it refuses every drawing."""
    model = set_calibration(copy.deepcopy(loaded.model), Calibration(20.0, reject_below=0.99))
    return app.LoadedModel(name, model, loaded.metadata)


def test_not_a_digit_keeps_the_drawing_as_a_non_digit_in_one_row(tmp_path):
    models, _ = app.load_models()
    models["Strict"] = refusing(models["MLP"])
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    policy = SavingPolicy({"DIGITNET_SAVES_PER_MINUTE": "5"})  # presses that keep
    saver = saver_of(opened, models, policy)
    line = saver(NOT_A_DIGIT)(pad_value(7), "MLP")
    assert "Kept as **not a digit**, MLP was wrong (it said 7): drawing #1" in line
    assert "Already kept as **not a digit**" in saver(NOT_A_DIGIT)(pad_value(7), "MLP")
    line = saver(None)(pad_value(7), "MLP")  # the person changes their mind: one row
    assert "Changed from not a digit to a **7**, MLP was right" in line
    line = saver(NOT_A_DIGIT)(pad_value(7), "MLP")
    assert "Changed from a 7 to **not a digit**" in line
    (row,) = opened.store.list_drawings()
    assert (row.label, row.predicted, row.is_correct) == (NOT_A_DIGIT, 7, False)

    # A model that refused the drawing: "Right" confirms what the page said, not a digit.
    line = saver(None)(pad_value(7, size=180), "Strict")
    assert "Kept as **not a digit**, Strict was right" in line
    line = saver(3)(pad_value(3), "Strict")
    assert "Kept as a **3**, Strict was wrong (it refused it)" in line
    newest, refused, kept = opened.store.list_drawings()
    assert (refused.label, refused.predicted, refused.is_correct) == (NOT_A_DIGIT,) * 2 + (True,)
    assert (newest.label, newest.predicted) == (3, NOT_A_DIGIT)

    # The same policy as the other buttons: the rate limit, then the switch.
    with pytest.raises(gr.Error) as caught:
        saver(NOT_A_DIGIT)(pad_value(4), "MLP")
    assert_one_line(str(caught.value), "5 drawings a minute")
    policy.set_switch("local", False)
    assert saver(NOT_A_DIGIT)(pad_value(5), "MLP") == feedback.SWITCHED_OFF
    assert opened.store.count() == 3


def test_the_gallery_and_the_tables_show_non_digits_as_such(tmp_path):
    models, _ = app.load_models()
    strict = refusing(models["MLP"])
    models = {"MLP": models["MLP"], "Strict": strict}
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    saver = saver_of(opened, models)
    saver(NOT_A_DIGIT)(pad_value(7), "MLP")
    saver(None)(pad_value(7, size=180), "Strict")
    saver(None)(pad_value(1), "MLP")
    items, ids = drawings_tab.gallery_items(opened.store, None, None)
    assert [caption for _, caption in items] == [
        f"#{ids[0]}: 1 · MLP: 1 ✓",
        f"#{ids[1]}: not a digit · Strict: not a digit ✓",
        f"#{ids[2]}: not a digit · MLP: 7 ✗",
    ]
    assert drawings_tab.gallery_items(opened.store, "not a digit", None)[1] == ids[1:]
    assert drawings_tab.gallery_items(opened.store, "not a digit", "wrong")[1] == ids[2:]
    assert drawings_tab.gallery_items(opened.store, "1", None)[1] == ids[:1]
    counts = drawings_tab.counts_frame(opened.store)
    assert counts["not a digit"].tolist() == [2] and counts["all"].tolist() == [3]
    assert counts["1"].tolist() == [1]
    # A column per model, a row per true label.
    frame = drawings_tab.accuracy_frame(opened.store, models).set_index(drawings_tab.TRUE_DIGIT)
    # The MLP gives a digit to everything: right on the 1, wrong on both non-digits.
    assert frame.loc["all", "MLP"].startswith("33% [") and frame.loc["1", "MLP"][:4] == "100%"
    assert frame.loc["not a digit", "MLP"].startswith("0% [")
    assert frame.loc["not a digit", "MLP"].endswith("of 2")
    # Strict refuses everything: right on the non-digits, wrong on the 1.
    assert frame.loc["not a digit", "Strict"].startswith("100% [")
    assert frame.loc["1", "Strict"].startswith("0% [")
    assert "not a digit" in drawings_tab.LABELS and drawings_tab.INTRO.count("refuses") == 1


def test_nothing_is_kept_when_off_blank_or_without_a_store(tmp_path):
    models, _ = app.load_models()
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    policy = SavingPolicy({})
    saver = saver_of(opened, models, policy)
    policy.set_switch("local", False)
    assert saver(None)(pad_value(3), "MLP") == feedback.SWITCHED_OFF
    policy.set_switch("local", True)
    assert saver(None)({"strokes": []}, "MLP") == feedback.NOTHING_DRAWN
    assert opened.store.count() == 0
    closed = drawing_policy.AppStore(tmp_path / "x.sqlite", None, "Saving drawings is off: x")
    assert saver_of(closed, models)(2)(pad_value(3), "MLP") == feedback.NO_DATABASE
    with pytest.raises(gr.Error) as caught:  # not a pad value: one line, nothing written
        saver(None)({"composite": "x"}, "MLP")
    assert_one_line(str(caught.value), "unknown keys")
    assert opened.store.count() == 0


def test_right_confirms_the_answer_the_page_showed_and_a_gone_model_is_refused(tmp_path):
    models, _ = app.load_models()
    opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
    saver = saver_of(opened, models)
    # The page read 1 where the server reads 7 (a near tie, say): "Right" keeps what was seen.
    value = {**pad_value(7), "browser": {"answers": {"MLP": [0.0] + [0.9] + [0.0] * 8}}}
    assert "Kept as a **1**, MLP was right" in saver(None)(value, "MLP")
    (row,) = opened.store.list_drawings()
    assert (row.label, row.predicted, row.is_correct) == (1, 1, True)
    with pytest.raises(gr.Error) as caught:  # a run of a server that has since restarted
        saver(None)(pad_value(7), "run-3")
    assert_one_line(str(caught.value), "run-3 is no longer here")
    assert opened.store.count() == 1


def test_the_api_keeps_drawings_on_a_space_only_when_its_owner_says_so(tmp_path, drawing_files):
    assert SavingPolicy({}).api is True
    assert SavingPolicy({"SPACE_ID": "a/b"}).api is False
    assert SavingPolicy({"SPACE_ID": "a/b", "DIGITNET_API_SAVING": "1"}).api is True
    store = open_store(tmp_path / "d.sqlite")
    path, digit = drawing_files[0]
    with pytest.raises(DigitnetError) as caught:
        SavingPolicy({"SPACE_ID": "a/b"}).save_api_file(store, str(path), digit, "s")
    assert_one_line(str(caught.value), "off on this server", "DIGITNET_API_SAVING=1")
    assert store.count() == 0
    assert SavingPolicy({}).save_api_file(store, str(path), digit, "s")["count"] == 1


def test_save_drawing_round_trip(client, served, drawing_files):
    from gradio_client import handle_file

    path, digit = drawing_files[3]
    before = open_store(served[1]).count()
    result = client.predict(handle_file(str(path)), digit, api_name="/save_drawing")
    assert result["count"] == before + 1
    with open_store(served[1]) as store:
        (row,) = [r for r in store.list_drawings(limit=1000) if r.id == result["id"]]
    assert row.label == digit and row.source == "api"
    assert np.array_equal(row.pixels, np.rint(255 * input_of(path).image))
    # "not a digit" is a label the API keeps too.
    result = client.predict(handle_file(str(path)), "not a digit", api_name="/save_drawing")
    with open_store(served[1]) as store:
        assert [r.id for r in store.list_drawings(digit=NOT_A_DIGIT)] == [result["id"]]


@pytest.mark.parametrize("label", [11, -1, 3.5, "seven"])
def test_save_drawing_refuses_a_bad_label_and_writes_nothing(client, served, drawing_files, label):
    from gradio_client import handle_file

    before = open_store(served[1]).count()
    with pytest.raises(Exception) as caught:  # gradio_client's AppError
        client.predict(handle_file(str(drawing_files[0][0])), label, api_name="/save_drawing")
    assert_one_line(str(caught.value), "label")
    assert open_store(served[1]).count() == before


def test_save_drawing_refuses_a_non_image_and_writes_nothing(client, served, tmp_path):
    from gradio_client import handle_file

    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    before = open_store(served[1]).count()
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(text)), 3, api_name="/save_drawing")
    assert_one_line(str(caught.value))
    assert open_store(served[1]).count() == before


def test_finetune_below_the_minimum_is_refused_in_one_line(
    tmp_path, drawing_files, small_train_csv
):
    path = tmp_path / "few.sqlite"
    with open_store(path) as store:
        for image_path, digit in drawing_files[:5]:
            store.save_image(input_of(image_path).image, digit, session="s")
    demo, url, service = serve(path, tmp_path / "runs", small_train_csv)
    try:
        client = new_client(url)
        with pytest.raises(Exception) as caught:
            client.predict("MLP", 1, api_name="/finetune")
        assert_one_line(str(caught.value), f"at least {MIN_DRAWINGS}", "only 5")
        with pytest.raises(Exception) as caught:
            client.predict("GPT", 1, api_name="/finetune")
        assert_one_line(str(caught.value), "no model named 'GPT'", "MLP")
    finally:
        close_when_idle(demo)
        service.close()


def test_finetune_streams_then_reports_before_and_after_as_a_private_run(
    tmp_path, drawing_files, small_train_csv
):
    from gradio_client import handle_file

    path = tmp_path / "enough.sqlite"
    with open_store(path) as store:
        for image_path, digit in drawing_files:  # 30 drawings, three of each digit
            store.save_image(input_of(image_path).image, digit, session="s")
    demo, url, service = serve(path, tmp_path / "runs", small_train_csv)
    try:
        client = new_client(url)
        updates = list(client.submit("MLP", 1, api_name="/finetune"))
        summary, log, curve, table = updates[-1][:4]
        assert "fine-tuned from **MLP**" in table and "| held-out drawings |" in table
        # The curve: both figures before (epoch 0) and after the one epoch, so each is a line.
        points = {(row[0], row[1]) for row in curve["value"]["data"]}
        assert points == {(e, s) for e in (0, 1) for s in finetune_panel.FINETUNE_COLOURS}
        assert len(updates) >= 2 and "before:" in log and "epoch   1/1" in log
        assert summary["run"] == "tuned-1" and summary["state"] == "done"
        tuned = summary["finetune"]
        assert tuned["base_model"] == "MLP" and tuned["held_out_drawings"] >= 5
        for key in ("held_out_before", "held_out_after", "mnist_validation_after"):
            assert 0 <= tuned[key] <= 100
        # The session that ran it draws against it; another session cannot.
        drawn, digit = drawing_files[4]
        answer = client.predict(handle_file(str(drawn)), "tuned-1", api_name="/classify")
        assert len(answer["confidences"]) == 10
        (record,) = service.runs(client.session_hash)
        assert record.web_model.is_file() and "finetune" in record.metadata
        other = new_client(url)
        with pytest.raises(Exception) as caught:
            other.predict("tuned-1", 1, api_name="/finetune")
        assert_one_line(str(caught.value), "no model named 'tuned-1'")
    finally:
        close_when_idle(demo)
        service.close()


def test_accuracy_frame_measures_every_model_with_intervals(tmp_path, drawing_files):
    models, _ = app.load_models()
    store = open_store(tmp_path / "d.sqlite")
    for path, digit in drawing_files[:10]:
        store.save_image(input_of(path).image, digit, session="s")
    frame = drawings_tab.accuracy_frame(store, models)
    assert list(frame.columns) == ["true digit", *models]  # a column per model
    assert list(frame["true digit"]) == ["all", *[str(d) for d in range(10)], "not a digit"]
    assert all(cell.endswith("of 10") and "[" in cell for cell in frame.iloc[0, 1:])
    assert (frame.iloc[1:, 1:] != "–").to_numpy().sum() >= len(models)
    counts = drawings_tab.counts_frame(store)
    assert isinstance(counts, pd.DataFrame) and counts["all"].tolist() == [10]
    # A fine-tuned model is measured only on drawings it did not train on.
    trained_on = store.drawing_ids()[:4].tolist()
    tuned = app.LoadedModel(
        "tuned-1", models["MLP"].model, {"finetune": {"drawings": {"train_ids": trained_on}}}
    )
    frame = drawings_tab.accuracy_frame(store, {"tuned-1": tuned})
    assert list(frame.columns) == ["true digit", "tuned-1 (drawings it did not train on)"]
    assert frame.iloc[0, 1].endswith("of 6")


# ---------------------------------------------------------------------------
# Bad database files at start: one warning line, saving off, the app still starts


def corrupt(path: Path) -> None:
    path.write_bytes(b"label,pixel0\n3,0\n")


def foreign(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE customers (name TEXT)")
    connection.commit()
    connection.close()


def read_only(path: Path) -> None:
    open_store(path).close()
    path.chmod(0o444)


@pytest.mark.parametrize(
    "spoil, needle",
    [(corrupt, "not an SQLite"), (foreign, "another program"), (read_only, "read-only")],
    ids=["corrupt", "foreign", "read-only"],
)
def test_a_bad_database_warns_once_and_the_app_starts_with_saving_off(
    tmp_path, drawing_files, spoil, needle
):
    from gradio_client import handle_file

    path = tmp_path / "drawings.sqlite"
    spoil(path)
    before = path.read_bytes()
    opened = drawing_policy.open_app_store(path)
    assert opened.store is None and not opened.saving
    assert_one_line(opened.warning, str(path), needle, "Saving drawings is off")
    assert feedback.saving_switch(opened, SavingPolicy({})).value is False
    models, warnings = app.load_models()
    demo, url = app.serve_in_background(models, warnings, app_store=opened)
    try:
        client = new_client(url)
        answer = client.predict(handle_file(str(drawing_files[0][0])), "MLP", api_name="/classify")
        assert answer["label"] == str(drawing_files[0][1])  # still answers
        with pytest.raises(Exception) as caught:
            client.predict(handle_file(str(drawing_files[0][0])), 1, api_name="/save_drawing")
        assert_one_line(str(caught.value), "saving drawings is off")
    finally:
        close_when_idle(demo)
        path.chmod(0o644)
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------
# 20 sessions x 10 saves, then kill -9 of a real `python app.py`


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, child: subprocess.Popen, seconds: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise AssertionError(f"app.py exited with {child.returncode}")
        try:
            with urllib.request.urlopen(url + "/config", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"app.py did not serve {url} within {seconds} s")


def test_200_concurrent_saves_survive_a_kill_9_of_the_server(tmp_path, drawing_files):
    from gradio_client import handle_file

    db = tmp_path / "tmp.sqlite"
    port = free_port()
    env = {**os.environ, "DIGITNET_DB": str(db), "GRADIO_SERVER_PORT": str(port)}
    env["PYTHONPATH"] = str(REPO)
    child = subprocess.Popen(
        [sys.executable, str(REPO / "app.py")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, child)

        clients = [new_client(url) for _ in range(THREADS)]  # one session each

        def session(thread: int) -> list[tuple[int, int]]:
            client = clients[thread]
            saved = []
            for index in range(SAVES_PER_THREAD):
                path, digit = drawing_files[(thread + index) % len(drawing_files)]
                result = client.predict(handle_file(str(path)), digit, api_name="/save_drawing")
                saved.append((result["id"], digit))
            return saved

        with ThreadPoolExecutor(THREADS) as pool:
            acknowledged = dict(
                pair for saved in pool.map(session, range(THREADS)) for pair in saved
            )
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) == THREADS * SAVES_PER_THREAD

    out = tmp_path / "export.csv"
    exported = subprocess.run(
        [
            sys.executable,
            "-m",
            "digitnet",
            "drawings",
            "export",
            "--db",
            str(db),
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    frame = pd.read_csv(out)
    assert len(frame) == THREADS * SAVES_PER_THREAD
    expected = sorted(acknowledged.values())
    assert sorted(frame["label"].tolist()) == expected
    with open_store(db) as store:
        rows = {row.id: row.label for row in store.list_drawings(limit=1000)}
    assert rows == acknowledged


def test_each_model_answers_each_stored_drawing_once(tmp_path, drawing_files):
    """The accuracy table, shown again after one more drawing, runs the models on that one."""
    models, _ = app.load_models()
    mlp = models["MLP"].model
    seen = []
    hook = mlp.register_forward_hook(lambda module, inputs, output: seen.append(len(output)))
    store = open_store(tmp_path / "d.sqlite")
    for path, digit in drawing_files[:10]:
        store.save_image(input_of(path).image, digit, session="s")
    cache = drawing_data.AnswerCache()
    try:
        first = drawings_tab.accuracy_frame(store, {"MLP": models["MLP"]}, cache)
        again = drawings_tab.accuracy_frame(store, {"MLP": models["MLP"]}, cache)
        path, digit = drawing_files[10]
        store.save_image(input_of(path).image, digit, session="s")
        grown = drawings_tab.accuracy_frame(store, {"MLP": models["MLP"]}, cache)
    finally:
        hook.remove()
    assert sum(seen) == 11  # ten drawings once, then the new one
    assert first.equals(again) and grown["MLP"][0].endswith("of 11")
    fresh = drawings_tab.accuracy_frame(store, {"MLP": models["MLP"]})  # no cache: the same
    assert fresh.equals(grown)


def test_the_finetune_handlers_refuse_a_model_the_session_does_not_have(tmp_path):
    import asyncio

    models, _ = app.load_models()
    service = TrainingService(tmp_path / "runs")
    try:
        opened = drawing_policy.open_app_store(tmp_path / "d.sqlite")
        handlers = finetune_panel.make_finetune_handlers(
            opened.store, ModelLookup(models, service), service, ModelChoiceOutputs()
        )
        assert handlers.stop(Request("a")) == "Nothing to stop."
        assert handlers.bases(Request("a")).choices == [("MLP", "MLP"), ("CNN", "CNN")]

        async def first_update(base):
            return await anext(handlers.finetune(base, 1, Request("a")))

        with pytest.raises(gr.Error) as caught:
            asyncio.run(first_update("tuned-9"))
        assert_one_line(caught.value.message, "no model named 'tuned-9'", "MLP, CNN")
        with pytest.raises(gr.Error) as caught:  # too few drawings: refused before queueing
            asyncio.run(first_update("MLP"))
        assert_one_line(caught.value.message, str(MIN_DRAWINGS))
    finally:
        service.close()


def test_the_drawings_are_counted_before_a_fine_tune_is_started():
    from digitnet.ui.finetune_panel import readiness_text

    assert readiness_text(3).startswith("**3 of 20 drawings**: draw 17 more")
    assert readiness_text(1797) == "**1,797 drawings**: enough to fine-tune."

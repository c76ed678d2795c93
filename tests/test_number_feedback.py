"""Right / No for a number (digitnet/ui/feedback.py): a number the pad shows is kept as one
row per digit, each with its own strokes, 28x28, probabilities and label; a typed "No, it's …"
corrects every digit; a count mismatch or a bad entry is one line that keeps nothing; a
number of k digits counts as k saves against the rate limit. Handlers called directly, as
the app makes them (the page: tests/test_number_pad_browser.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line

import app
from digitnet.number_answer import number_on_pad
from digitnet.numbers import split_digits
from digitnet.store import NOT_A_DIGIT, StoreError
from digitnet.strokes import PenStyle, digit_strokes
from digitnet.ui import drawing_policy, feedback
from digitnet.ui.drawing_policy import SavingPolicy
from digitnet.ui.session import ModelLookup


class Request:
    def __init__(self, session_hash: str):
        self.session_hash = session_hash


@pytest.fixture(scope="module")
def models():
    return app.load_models()[0]


@pytest.fixture
def opened(tmp_path):
    return drawing_policy.open_app_store(tmp_path / "drawings.sqlite")


def handlers_of(opened, models, policy: SavingPolicy | None = None):
    policy = policy if policy is not None else SavingPolicy({})
    return feedback.make_feedback_handlers(opened, {}, ModelLookup(models), policy)


def number_value(*digits: int, height: float = 130) -> dict:
    """Digits side by side, as a person writes a number on the pad."""
    step = 240 / len(digits)
    strokes = []
    for k, digit in enumerate(digits):
        style = PenStyle(height, (20 + step * (k + 0.5), 140), 0.05, 0.6)
        strokes += digit_strokes(digit, style)
    return {"strokes": [[list(point) for point in stroke] for stroke in strokes]}


def rows_of(opened):
    return sorted(opened.store.list_drawings(), key=lambda row: row.id)


def test_right_keeps_each_digit_of_a_number_as_its_own_labelled_drawing(opened, models):
    value = number_value(4, 2)
    assert number_on_pad(models["MLP"].model, value["strokes"]).text == "42"
    line = handlers_of(opened, models).saver(None)(value, "MLP", Request("me"))
    assert "Kept as **42**, one drawing per digit, MLP was right" in line
    four, two = rows_of(opened)
    assert (four.label, four.predicted, two.label, two.predicted) == (4, 4, 2, 2)
    assert four.model == two.model == "MLP" and four.source == "app"
    assert f"drawings #{four.id}, #{two.id}" in line
    # Each row is its digit alone: its own strokes and its own 28x28, as read_strokes reads it.
    parts = split_digits(value["strokes"])
    for row, part in zip((four, two), parts):
        assert len(json.loads(row.strokes)) == len(part.strokes)
        assert row.png and row.probs and np.argmax(row.probs) == row.label
    assert not np.array_equal(four.pixels, two.pixels)


def test_a_typed_number_corrects_every_digit_of_the_same_drawing(opened, models):
    handlers = handlers_of(opened, models)
    value, me = number_value(4, 2), Request("me")
    handlers.saver(None)(value, "MLP", me)
    line = handlers.save_number(value, "MLP", " 4 7 ", me)
    assert "Changed from 42 to **47**, one drawing per digit, MLP was wrong (it said 42)" in line
    rows = rows_of(opened)
    assert [(row.label, row.predicted) for row in rows] == [(4, 4), (7, 2)]  # replaced, not added
    assert "Already kept as **47**" in handlers.save_number(value, "MLP", "47", me)
    # Another drawing, corrected straight away: a new pair of rows.
    line = handlers.save_number(number_value(1, 7, 3), "CNN", "178", me)
    assert "Kept as **178**" in line and "CNN was wrong (it said 173)" in line
    assert [row.label for row in rows_of(opened)] == [4, 7, 1, 7, 8]


def test_a_count_mismatch_or_a_bad_entry_is_one_line_and_keeps_nothing(opened, models):
    handlers = handlers_of(opened, models)
    value = number_value(4, 2)
    for typed, needles in (
        ("123", ("You typed 3 digits", "the pad holds 2", "one digit for each")),
        ("4", ("You typed one digit", "the pad holds 2")),
        ("4x", ("digits 0-9 only",)),
        ("", ("digits 0-9 only",)),
        ("²", ("digits 0-9 only",)),
    ):
        assert_one_line(handlers.save_number(value, "MLP", typed, Request("me")), *needles)
    # A digit's own button under a number says where the number goes.
    line = handlers.saver(7)(value, "MLP", Request("me"))
    assert_one_line(line, "a number of 2 digits", "type the right number")
    assert opened.store.count() == 0


def test_one_digit_takes_a_typed_digit_as_its_button_does(opened, models):
    handlers = handlers_of(opened, models)
    seven = number_value(7)
    assert number_on_pad(models["MLP"].model, seven["strokes"]) is None
    assert "Kept as a **1**, MLP was wrong (it said 7)" in handlers.save_number(
        seven, "MLP", "1", Request("me")
    )
    assert_one_line(handlers.save_number(seven, "MLP", "17", Request("me")), "holds one")
    ((row),) = rows_of(opened)
    assert (row.label, row.predicted) == (1, 7)


def test_not_a_digit_keeps_a_number_whole_as_one_row(opened, models):
    line = handlers_of(opened, models).saver(NOT_A_DIGIT)(number_value(4, 2), "MLP")
    assert "Kept as **not a digit**" in line
    assert [row.label for row in rows_of(opened)] == [NOT_A_DIGIT]


def test_a_number_of_k_digits_counts_as_k_saves(opened, models):
    now = [0.0]
    policy = SavingPolicy({"DIGITNET_SAVES_PER_MINUTE": "3"}, clock=lambda: now[0])
    handlers = handlers_of(opened, models, policy)
    me = Request("me")
    assert "Kept as **42**" in handlers.saver(None)(number_value(4, 2), "MLP", me)  # 2 of 3
    with pytest.raises(Exception) as refused:  # 2 more would be 4: all refused, none kept
        handlers.saver(None)(number_value(7, 1), "MLP", me)
    assert_one_line(str(refused.value), "2 digits are as many drawings", "3 drawings a minute")
    assert opened.store.count() == 2
    assert "Kept as a **7**" in handlers.saver(None)(number_value(7), "MLP", me)  # 3 of 3
    with pytest.raises(StoreError) as over:
        policy.admit("other", 4)
    assert_one_line(str(over.value), "over this server's limit of 3")
    now[0] = 61.0
    assert "Kept as **71**" in handlers.saver(None)(number_value(7, 1), "MLP", me)


def test_saving_switched_off_keeps_no_number(opened, models):
    policy = SavingPolicy({"SPACE_ID": "a/b"})  # off until the visitor turns it on
    handlers = handlers_of(opened, models, policy)
    assert handlers.save_number(number_value(4, 2), "MLP", "42") == feedback.SWITCHED_OFF
    assert handlers.saver(None)(number_value(4, 2), "MLP") == feedback.SWITCHED_OFF
    assert opened.store.count() == 0

"""The presenter view's room side as plain functions (digitnet.ui.present); the page itself is
tests/test_present_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from digitnet.store import open_store
from digitnet.ui.drawing_policy import AppStore
from digitnet.ui.present import NO_RUNS, is_present_view, present_room_html, room_counts


def test_the_view_is_asked_for_by_the_query():
    assert is_present_view({"view": "present"})
    assert is_present_view({"view": " Present ", "__theme": "dark"})
    assert not is_present_view({})
    assert not is_present_view({"view": "api"})


def test_the_room_side_shows_the_leaderboard_then_the_counts():
    counts = [0, 1, 2, 3, 4, 5, 6, 7, 8, 1200, 2]
    shown = present_room_html(counts)
    assert shown.index("Leaderboard") < shown.index(NO_RUNS) < shown.index("The room's drawings")
    assert "1,238 drawings confirmed" in shown
    cells = re.findall(
        r'present-count-label">([^<]*)</span><span class="present-count-value">([^<]*)<', shown
    )
    assert cells == [(str(d), str(d)) for d in range(9)] + [("9", "1,200"), ("not a digit", "2")]


def test_a_published_leaderboard_takes_the_place_of_the_placeholder():
    shown = present_room_html([0] * 11, leaderboard_html="<table><tr><td>ada</td></tr></table>")
    assert "<td>ada</td>" in shown and NO_RUNS not in shown


def test_without_a_store_the_room_says_so(tmp_path: Path):
    assert room_counts(AppStore(tmp_path / "x.sqlite", None, "saving is off")) is None
    assert "not kept on this server" in present_room_html(None)
    with open_store(tmp_path / "d.sqlite") as store:
        store.save_image(np.eye(28, dtype=np.uint8) * 255, 4, session="s")
        counts = room_counts(AppStore(tmp_path / "d.sqlite", store, None))
    assert counts == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]

"""Setups by link: the Train tab's knobs in a URL query and back (digitnet.setup_links), and
the tab's link handlers called directly (digitnet.ui.setup_link). The page itself is
tests/test_setup_links_browser.py."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import gradio as gr
import pytest
from conftest import assert_one_line
from hypothesis import given
from hypothesis import strategies as st

from digitnet.admission import Caps
from digitnet.config import ConfigError
from digitnet.knobs import DEFAULT_PRESET, PRESETS, knob_fields
from digitnet.setup_links import (
    TRAIN_SIZE,
    link_knob_names,
    preset_values,
    setup_from_query,
    setup_query,
)
from digitnet.ui.setup_link import make_setup_link_handlers, notes_html

README = Path(__file__).resolve().parent.parent / "README.md"
FIELDS = {field.name: field for field in knob_fields()}


def other_values(name: str, base: object) -> list[object]:
    """Valid values of knob ``name`` that differ from ``base``: two or more of each."""
    if name == TRAIN_SIZE:
        return [500, 1234]
    field = FIELDS[name]
    meta = field.metadata
    if meta["choices"]:
        return [choice for choice in meta["choices"] if choice != base]
    if isinstance(base, bool):
        return [not base]
    if isinstance(base, tuple):
        return [(16, 8), (48, 24)] if meta["length"] == 2 else [(64,), (64, 32), (7, 300, 9)]
    low = meta["low"] or 0
    high = meta["high"] if meta["high"] is not None else low + 100
    if isinstance(base, int):
        return [value for value in (low + 1, low + 3, int(high)) if value != base]
    candidates = (low + (high - low) * 0.37, low + (high - low) * 0.0123, 0.3)
    return [round(value, 6) for value in candidates if value != base and low < value < high]


def query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query.lstrip("?"), keep_blank_values=True)


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("name", link_knob_names())
def test_every_knob_goes_through_a_link_and_back(preset, name):
    base = preset_values(preset)[name]
    for value in other_values(name, base):
        query = setup_query(preset, {name: value})
        assert query.startswith("preset=")
        setup = setup_from_query(query_pairs(query))
        assert setup.notes == ()
        assert setup.preset == preset
        assert setup.changed == (name,)
        assert setup.values[name] == value, query
        assert {k: v for k, v in setup.values.items() if k != name} == {
            k: v for k, v in preset_values(preset).items() if k != name
        }


def test_the_issue_link_reads_as_written():
    setup = setup_from_query(
        query_pairs("preset=tiny+and+fast&epochs=23&lr=0.0123&hidden_sizes=64,32")
    )
    assert setup.notes == ()
    assert setup.preset == "tiny and fast"
    assert (setup.values["epochs"], setup.values["lr"]) == (23, 0.0123)
    assert setup.values["hidden_sizes"] == (64, 32)
    assert setup.values["thickness_prob"] == 0.0  # the preset's, untouched
    assert set(setup.changed) == {"epochs", "lr", "hidden_sizes"}


def test_a_link_holds_only_the_preset_and_what_differs():
    assert setup_query("tiny and fast", PRESETS["tiny and fast"]) == "preset=tiny+and+fast"
    # Values as the page holds them: strings, a slider's floats, the sizes' text.
    ui_values = {"epochs": 10.0, "lr": "0.003", "hidden_sizes": "64, 32", "shuffle": True}
    query = setup_query("tiny and fast", ui_values)
    assert query == "preset=tiny+and+fast&hidden_sizes=64,32"


def test_every_digit_is_left_out_of_a_link():
    caps = Caps(max_train_size=8000)
    assert setup_query(DEFAULT_PRESET, {TRAIN_SIZE: 8000}, caps) == "preset=digitnet%27s+recipe"
    assert setup_query(DEFAULT_PRESET, {TRAIN_SIZE: None}, caps) == "preset=digitnet%27s+recipe"
    assert setup_query(DEFAULT_PRESET, {TRAIN_SIZE: 700}, caps).endswith("&train_size=700")


knob_changes = st.fixed_dictionaries(
    {"preset": st.sampled_from(list(PRESETS))},
    optional={name: st.integers(0, 5) for name in link_knob_names()},
)


@given(knob_changes)
def test_any_set_of_knobs_goes_through_a_link_and_back(changes):
    preset = changes.pop("preset")
    base = preset_values(preset)
    wanted = {}
    for name, pick in changes.items():
        options = other_values(name, base[name])
        wanted[name] = options[pick % len(options)]
    setup = setup_from_query(query_pairs(setup_query(preset, wanted)))
    assert setup.notes == ()
    assert setup.values == {**base, **wanted}
    assert set(setup.changed) == set(wanted)


BAD_LINKS = [
    ("epochs=abc", "epochs=abc in the link is not a whole number; kept the preset's 10"),
    ("epochs=2.5", "epochs=2.5 in the link is not a whole number; kept the preset's 10"),
    ("epochs=0", "epochs=0 in the link must be in [1, 10000]; kept the preset's 10"),
    ("epochs=500", "epochs=500 in the link is over this server's 100; kept the preset's 10"),
    ("lr=fast", "lr=fast in the link is not a number; kept the preset's 0.003"),
    ("lr=-1", "lr=-1 in the link must be in (0, 10]; kept the preset's 0.003"),
    ("lr=nan", "lr=nan in the link must be a finite number; kept the preset's 0.003"),
    ("hidden_sizes=", "hidden_sizes= in the link is empty; kept the preset's 256"),
    ("hidden_sizes=64,x", "hidden_sizes=64,x in the link is not a whole number; kept"),
    ("cnn_channels=1,2,3", "cnn_channels=1,2,3 in the link needs 2 sizes; kept the preset's 32"),
    ("optimizer=rmsprop", "optimizer=rmsprop in the link must be one of sgd, adam, adamw; kept"),
    ("shuffle=maybe", "shuffle=maybe in the link must be true or false; kept the preset's true"),
    ("train_size=5", "train_size=5 in the link must be at least 10; kept every digit"),
    ("train_size=20000", "train_size=20000 in the link is over this server's 10,000; kept"),
    ("preset=huge", "preset=huge in the link is not one of the presets"),
    ("colour=red", "ignored colour= in the link: not a knob of the Train tab"),
    ("device=cuda", "ignored device= in the link: not a knob of the Train tab"),
]


@pytest.mark.parametrize("link, note", BAD_LINKS, ids=[link for link, _ in BAD_LINKS])
def test_a_bad_value_keeps_the_presets_and_says_so_in_one_line(link, note):
    query = f"preset=tiny+and+fast&{link}" if "preset=" not in link else link
    setup = setup_from_query(query_pairs(query), Caps())
    assert len(setup.notes) == 1, setup.notes
    assert_one_line(setup.notes[0], note)
    assert setup.changed == ()
    assert setup.values == preset_values(setup.preset)


def test_good_values_stay_beside_bad_ones_and_each_bad_one_has_its_line():
    query = "preset=tiny+and+fast&epochs=abc&lr=0.01&colour=red&size=9&seed=-1&view=present"
    setup = setup_from_query(query_pairs(query), Caps())
    assert setup.values["lr"] == 0.01 and setup.changed == ("lr",)
    assert len(setup.notes) == 3  # epochs, seed, and one line for the unknown names
    assert "ignored colour=, size= in the link: not knobs" in setup.notes[-1]
    assert not any("view" in note for note in setup.notes)  # the presenter view is no knob


def test_a_note_never_repeats_a_whole_long_value():
    setup = setup_from_query([("epochs", "9" * 5000), ("x" * 5000, "1")])
    assert all(len(note) < 200 for note in setup.notes), setup.notes


def test_a_query_is_read_as_given_pairs_the_last_of_a_name_counting():
    setup = setup_from_query([("epochs", "3"), ("epochs", "4")])
    assert setup.values["epochs"] == 4


def test_notes_are_text_never_html():
    setup = setup_from_query([("<img src=x onerror=alert(1)>", "1"), ("epochs", "<b>")])
    shown = notes_html(setup.notes)
    assert "<img" not in shown and "<b>" not in shown
    assert "&lt;img src=x onerror=alert(1)&gt;=" in shown


def test_copying_knobs_that_a_run_would_refuse_makes_no_link():
    with pytest.raises(ConfigError) as caught:
        setup_query(DEFAULT_PRESET, {"hidden_sizes": "64, lots"})
    assert_one_line(str(caught.value), "hidden_sizes")


def test_the_link_handlers_are_plain_functions():
    names = ["architecture", "hidden_sizes", "epochs", "lr", "shuffle", TRAIN_SIZE]
    info = {name: f"note of {name}" for name in PRESETS}
    handlers = make_setup_link_handlers(names, Caps(max_train_size=8000), info)
    # A bare page, or one that only picks the view or the theme, keeps its knobs.
    assert all(isinstance(out, type(gr.skip())) for out in handlers.fill({}))
    assert all(
        isinstance(out, type(gr.skip()))
        for out in handlers.fill({"view": "present", "__theme": "dark"})
    )
    preset, *values, notes = handlers.fill(
        {"preset": "tiny and fast", "epochs": "23", "hidden_sizes": "64,32", "lr": "x"}
    )
    assert preset.value == "tiny and fast" and preset.info == "note of tiny and fast"
    assert values == ["mlp", "64, 32", 23, 0.003, True, 8000]
    assert "lr=x in the link is not a number" in notes
    # The page's values back to a link: only what differs from the preset.
    query, said = handlers.build("tiny and fast", "mlp", "64, 32", 23.0, 0.003, True, 8000.0)
    assert (query, said) == ("?preset=tiny+and+fast&hidden_sizes=64,32&epochs=23", "")
    query, said = handlers.build("tiny and fast", "mlp", "64, <b>", 23.0, 0.003, True, 8000)
    assert query == "" and "No link made: hidden_sizes" in said and "<b>" not in said


def test_the_links_in_the_readme_set_what_they_say():
    """Every setup link the README hands out reads without a note (a typo would be one)."""
    links = re.findall(r"/\?[^\s`)>\]]*preset=[^\s`)>\]]+", README.read_text(encoding="utf-8"))
    assert len(links) >= 5, links
    for link in links:
        setup = setup_from_query(query_pairs(urlsplit(link).query), Caps())
        assert setup.notes == (), (link, setup.notes)

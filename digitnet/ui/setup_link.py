"""Setups by link on the Train tab: the knobs filled from the page's URL when it loads, and a
"Copy link to this setup" button.

The query is read and written by :mod:`digitnet.setup_links` (the knob parser's own checks);
this module wires it to the Train tab's preset and knobs. The copy itself runs in the page
(``static/setup_link.js``): the server builds the query, the page puts its own address in
front (the one the visitor sees, behind any proxy) and copies it, or shows it selected where
the clipboard cannot be used (a page served over plain http on a LAN address).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import gradio as gr

from digitnet.admission import Caps
from digitnet.config import ConfigError
from digitnet.knobs import PRESETS
from digitnet.setup_links import (
    PAGE_PARAMS,
    TRAIN_SIZE,
    setup_from_query,
    setup_query,
)
from digitnet.ui.static_files import read_static

COPY_LABEL = "Copy link to this setup"
LINK_CSS = ("setup_link.css",)  # page-level, beside the app's own


@dataclass(frozen=True)
class SetupLinkPanel:
    """The Train tab's link components: the link's notes under the preset, the copy button
    and what it shows."""

    notes: gr.HTML  # one line for each thing the page's link set that was not used
    copy: gr.Button
    query: gr.Textbox  # hidden: the query the server built, for the page's JS
    link: gr.Textbox  # the whole link, shown (and selected where it could not be copied)
    said: gr.HTML  # "Copied…", or why no link was made


def build_link_notes() -> gr.HTML:
    """Where a link's unusable values are said, one line each (call under the preset)."""
    return gr.HTML("", js_on_load=None, elem_id="setup-link-notes")


def build_copy_link(notes: gr.HTML) -> SetupLinkPanel:
    """The copy button, its link and its line (call where they show, under the knobs)."""
    copy = gr.Button(COPY_LABEL, size="sm", elem_id="setup-link-copy")
    query = gr.Textbox(visible=False, elem_id="setup-link-query")
    link = gr.Textbox(
        label="Link to this setup",
        placeholder="The link shows here when you copy it.",
        max_lines=1,
        buttons=["copy"],
        interactive=True,  # an output alone is disabled, and a disabled box cannot be selected
        elem_id="setup-link",
    )
    said = gr.HTML("", js_on_load=None, elem_id="setup-link-said")
    return SetupLinkPanel(notes, copy, query, link, said)


def notes_html(notes: Sequence[str]) -> str:
    """Lines as text (a link may hold anything: nothing in it is read as HTML)."""
    if not notes:
        return ""
    lines = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    return f'<ul class="setup-link-notes">{lines}</ul>'


def said_html(text: str) -> str:
    return f'<p class="setup-link-said">{html.escape(text)}</p>' if text else ""


def is_about_setup(query: Mapping[str, str]) -> bool:
    """Whether a page's query says anything about a setup (a bare page, or one that only
    picks the view or the theme, leaves the knobs as they are)."""
    return any(name not in PAGE_PARAMS for name in query)


@dataclass(frozen=True)
class SetupLinkHandlers:
    """Plain functions of the knobs, tested without a server."""

    fill: Callable  # (query mapping) -> the preset, then each knob, then the notes
    build: Callable  # (preset, *knob values) -> (the query or "", the line to show)


def make_setup_link_handlers(
    knob_names: Sequence[str],
    caps: Caps,
    preset_info: Mapping[str, str],
) -> SetupLinkHandlers:
    """``knob_names`` in the order of the outputs and inputs (``train_size`` among them);
    ``preset_info`` is each preset's note, shown under the preset as a visitor's pick does."""

    def fill(query: Mapping[str, str]) -> list:
        if not is_about_setup(query):
            return [gr.skip()] * (len(knob_names) + 2)
        setup = setup_from_query(query, caps)
        preset = gr.Radio(value=setup.preset, info=preset_info.get(setup.preset, ""))
        values = []
        for name in knob_names:
            value = setup.values[name]
            if name == TRAIN_SIZE and value is None:
                value = caps.max_train_size  # every digit: the slider at its end
            values.append(", ".join(str(v) for v in value) if isinstance(value, tuple) else value)
        return [preset, *values, notes_html(setup.notes)]

    def build(preset: str | None, *values) -> tuple[str, str]:
        knobs = dict(zip(knob_names, values))
        if TRAIN_SIZE in knobs and knobs[TRAIN_SIZE] in (None, ""):
            knobs[TRAIN_SIZE] = None
        preset = preset if preset in PRESETS else next(iter(PRESETS))
        try:
            query = setup_query(preset, knobs, caps)
        except ConfigError as error:
            return "", said_html(f"No link made: {error}. Fix that knob and copy again.")
        return "?" + query, ""

    return SetupLinkHandlers(fill, build)


def wire_setup_link(
    panel: SetupLinkPanel,
    demo: gr.Blocks,
    preset: gr.Radio,
    knobs: Mapping[str, gr.Component],
    caps: Caps,
    preset_info: Mapping[str, str],
) -> SetupLinkHandlers:
    """Fill the knobs from the page's link when it loads; copy a link on the button."""
    names = list(knobs)
    handlers = make_setup_link_handlers(names, caps, preset_info)
    private = dict(api_visibility="private")

    def fill_from_page(request: gr.Request) -> list:
        return handlers.fill(dict(request.query_params))

    knob_outputs = [knobs[name] for name in names]
    demo.load(fill_from_page, None, [preset, *knob_outputs, panel.notes], queue=False, **private)
    panel.copy.click(
        handlers.build,
        [preset, *knob_outputs],
        [panel.query, panel.said],
        # Raw values, as Start sends them: the knob parser says what is wrong, in one line.
        preprocess=False,
        queue=False,
        **private,
    ).success(
        None,
        [panel.query, panel.said],
        [panel.link, panel.said],
        js=read_static("setup_link.js"),
        **private,
    )
    return handlers

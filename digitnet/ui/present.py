"""The presenter view, ``?view=present``: for a projector, the Draw tab's pad and answer, large,
beside the room's leaderboard and the counts of the room's drawings; no tabs and no knobs.

The page's own layout does it (``static/present.css``): ``static/present.js`` marks the page
when its address asks for the view, and the CSS then hides everything else and sets the pad
and the answer large, in the theme's own colours (light or dark). The room's side is one
``gr.HTML`` filled by :func:`present_room_html`, redrawn every few seconds on that page only.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import gradio as gr

from digitnet.store import NOT_A_DIGIT_TEXT
from digitnet.ui.drawing_policy import AppStore
from digitnet.ui.static_files import read_static

VIEW_PARAM, PRESENT = "view", "present"
PRESENT_CSS = ("present.css",)  # page-level: it lays out components of other modules
REFRESH_SECONDS = 5.0  # the room's side, on the presenter's page only
NO_RUNS = "No run published yet"  # as the room's leaderboard says it
DIGIT_NAMES = [str(digit) for digit in range(10)]


def is_present_view(query: dict[str, str]) -> bool:
    return query.get(VIEW_PARAM, "").strip().lower() == PRESENT


def counts_html(counts: Sequence[int] | None) -> str:
    """The room's drawings per true label (0-9, then not a digit), as a row of large cells;
    ``counts`` None where this server keeps no drawings."""
    heading = '<h2 class="present-heading">The room\'s drawings</h2>'
    if counts is None:
        return heading + '<p class="present-empty">Drawings are not kept on this server.</p>'
    cells = "".join(
        f'<div class="present-count"><span class="present-count-label">{html.escape(label)}'
        f'</span><span class="present-count-value">{int(count):,}</span></div>'
        for label, count in zip([*DIGIT_NAMES, NOT_A_DIGIT_TEXT], counts)
    )
    total = sum(int(count) for count in counts)
    return (
        f'{heading}<p class="present-total">{total:,} drawings confirmed</p>'
        f'<div class="present-counts" role="list">{cells}</div>'
    )


def present_room_html(counts: Sequence[int] | None, leaderboard_html: str | None = None) -> str:
    """The presenter's side of the room: the leaderboard, then the drawings' counts.

    ``leaderboard_html`` is the leaderboard already rendered as safe HTML (large type); None
    until runs can be published, which shows that none is.
    """
    if leaderboard_html is None:
        leaderboard_html = f'<p class="present-empty">{NO_RUNS}</p>'
    return (
        '<section class="present-leaderboard" aria-label="Leaderboard">'
        f'<h2 class="present-heading">Leaderboard</h2>{leaderboard_html}</section>'
        f'<section class="present-drawings" aria-label="The room\'s drawings">'
        f"{counts_html(counts)}</section>"
    )


def room_counts(app_store: AppStore) -> list[int] | None:
    """Confirmed drawings per true label in the store, or None where none are kept."""
    if app_store.store is None:
        return None
    return app_store.store.counts_per_label()


def build_present_view(
    demo: gr.Blocks,
    app_store: AppStore,
    room_board: Callable[[], str] | None = None,
    room_drawings: Callable[[], Sequence[int]] | None = None,
) -> Callable[[], str]:
    """The room's side of the presenter view (call inside the Draw tab) and its refresh.

    Every page holds it hidden; on a page opened with ``?view=present`` it is filled when the
    page loads and every REFRESH_SECONDS after. ``room_board`` gives the room's leaderboard as
    safe HTML in large type and ``room_drawings`` the room's drawings per label (both None
    where room mode is off: then every kept drawing is counted). Returns the function that
    renders the side.
    """

    def render() -> str:
        board = room_board() if room_board is not None else None
        counts = room_drawings() if room_drawings is not None else room_counts(app_store)
        return present_room_html(counts, board)

    room = gr.HTML(
        "",
        js_on_load=read_static("present.js"),
        apply_default_css=False,
        elem_id="present-room",
        elem_classes=["present-room"],
    )
    refresh = gr.Timer(REFRESH_SECONDS, active=False)  # only the presenter's page ticks

    def open_view(request: gr.Request):
        if not is_present_view(dict(request.query_params)):
            return gr.skip(), gr.skip()
        return render(), gr.Timer(active=True)

    private = dict(api_visibility="private")
    demo.load(open_view, None, [room, refresh], **private)
    refresh.tick(render, None, room, show_progress="hidden", **private)
    return render

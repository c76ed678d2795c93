"""A first visit at three screen sizes, in a real browser (headless Chromium, as
tests/test_app_browser.py): on every tab, at 1366×768 (a laptop), 412×900 (a phone) and
1920×1080 (a projector), no table, gallery image or caption overflows its box; the answer
reads from the back of a room; and on a phone, Start shows the run's status at once.

    python -m pytest tests/test_visual_browser.py -m browser

The app serves three models (the shipped MLP and CNN and a small trained checkpoint) over a
store of 1,797 labelled drawings, so the Your drawings accuracy table is as wide as it gets.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import time  # noqa: E402

import pytest  # noqa: E402
from conftest import BROWSER_MARKS, close_when_idle  # noqa: E402
from test_app_browser import draw, open_app, wait_for_label  # noqa: E402

import app  # noqa: E402
from digitnet.drawing_data import import_sklearn_digits  # noqa: E402
from digitnet.room_store import add_entry  # noqa: E402
from digitnet.store import open_store  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402
from digitnet.ui import drawing_policy  # noqa: E402

pytestmark = BROWSER_MARKS

SIZES = {"laptop": (1366, 768), "phone": (412, 900), "projector": (1920, 1080)}
TABS = {
    "Draw": "#draw-tab",
    "How it was trained": "#dashboard-tab",
    "Train": "#train-tab",
    "Your drawings": "#drawings-tab",
    "Room": "#room-tab",
}
LONG_ENTRY = {  # a leaderboard entry whose every text is as long as it gets (its files gone)
    "nickname": "W" * 24,
    "run": "tuned-12",
    "kind": "run",
    "folder": None,
    "figures": {
        "knobs": "the original tutorial + hidden_sizes 4096, 4096, 4096, 4096, epochs 100, "
        "lr 0.0123, batch_size 512, optimizer adamw, augment True",
        "train_digits": 10_000,
        "val_accuracy": 0.9876,
        "test_accuracy": 0.9812,
        "room_correct": 912,
        "room_count": 1_234,
        "train_seconds": 119.9,
    },
}
MIN_ANSWER_PX = 24  # the digit and how sure, read from the back of a workshop room
STATUS_IN_VIEW_S = 5

# Every table, gallery image and caption the tab shows, and how it overflows, if it does.
# An element overflows when it reaches outside an ancestor that clips it (overflow hidden or
# clip) or outside the page's width; an ancestor that scrolls (auto, scroll) is its own box,
# so what lies inside it may be wider: it scrolls. A caption overflows when its text is cut
# (wider than its box), an image when it is cropped to fill its tile (object-fit: cover).
OVERFLOWS = """(selector) => {
    const root = document.querySelector(selector);
    const shown = (e) => e.getClientRects().length > 0
        && getComputedStyle(e).visibility !== 'hidden';
    const name = (e) => {
        const owner = e.closest('[id]');
        return `${e.tagName.toLowerCase()}${e.className && typeof e.className === 'string'
            ? '.' + e.className.trim().split(/\\s+/).join('.') : ''} in #${owner?.id}`;
    };
    const page = document.documentElement.clientWidth;
    const found = [];
    const check = (e) => {
        const r = e.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) return;
        for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
            const style = getComputedStyle(a);
            const box = a.getBoundingClientRect();
            if (/(auto|scroll)/.test(style.overflowX)) {  // it scrolls in its own box...
                if (r.left < box.left - a.scrollLeft - 1) {  // ...but not to the left
                    found.push(`${name(e)} starts left of ${name(a)}, out of scroll's reach`);
                    return;
                }
                break;
            }
            const clipsX = /(hidden|clip)/.test(style.overflowX);
            const clipsY = /(hidden|clip)/.test(style.overflowY);
            if ((clipsX && (r.left < box.left - 1 || r.right > box.right + 1))
                || (clipsY && (r.top < box.top - 1 || r.bottom > box.bottom + 1))) {
                found.push(`${name(e)} is cut off by ${name(a)}`);
                return;
            }
        }
        let scrolls = false;
        for (let a = e.parentElement; a; a = a.parentElement) {
            if (/(auto|scroll)/.test(getComputedStyle(a).overflowX)) { scrolls = true; break; }
        }
        if (!scrolls && (r.left < -1 || r.right > page + 1)) {
            found.push(`${name(e)} reaches outside the page (${r.left}-${r.right} of ${page})`);
        }
    };
    const items = root.querySelectorAll(
        'table, .gallery-item, .thumbnail-item, .grid-wrap img, .caption-label, figcaption, pre');
    for (const e of items) {
        if (!shown(e)) continue;
        check(e);
        if (e.matches('.caption-label, figcaption') && e.scrollWidth > e.clientWidth + 1) {
            found.push(`${name(e)} is truncated: ${JSON.stringify(e.textContent.trim())}`);
        }
        if (e.tagName === 'IMG' && getComputedStyle(e).objectFit === 'cover') {
            found.push(`${name(e)} is cropped to fill its tile`);
        }
    }
    for (const wrap of root.querySelectorAll('.mistakes .grid-wrap')) {
        if (shown(wrap) && wrap.scrollHeight > wrap.clientHeight + 1) {
            found.push(`${name(wrap)} hides mistakes below a scroll`);
        }
    }
    return found;
}"""

# The header cells of a table that lie outside the box it scrolls in (or the page).
HIDDEN_COLUMNS = """(selector) => {
    const cells = [...document.querySelectorAll(`${selector} thead th`)];
    const hidden = [];
    for (const th of cells) {
        const r = th.getBoundingClientRect();
        let box = {left: 0, right: document.documentElement.clientWidth};
        for (let a = th.parentElement; a; a = a.parentElement) {
            if (/(auto|scroll|hidden)/.test(getComputedStyle(a).overflowX)) {
                box = a.getBoundingClientRect();
                break;
            }
        }
        if (r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1)) {
            hidden.push(th.innerText.trim());
        }
    }
    return hidden;
}"""
RIGHT_COLOUR = "() => getComputedStyle(document.querySelector('#right')).backgroundColor"
SHOTS = os.environ.get("DIGITNET_VISUAL_DIR")  # full-page screenshots of each tab, if set


@pytest.fixture(scope="module")
def served(tmp_path_factory, checkpoint):
    path = tmp_path_factory.mktemp("store") / "drawings.sqlite"
    with open_store(path) as store:
        import_sklearn_digits(store)
        for rank in range(3):  # the Room tab's leaderboard with its longest texts
            add_entry(store, **LONG_ENTRY, session=f"s{rank}")
    service = TrainingService(tmp_path_factory.mktemp("runs"))
    models, warnings = app.load_models(str(checkpoint))
    assert len(models) == 3, warnings
    extra = next(iter(models))  # loaded first; the shipped MLP stays the default here
    models = {**{name: m for name, m in models.items() if name != extra}, extra: models[extra]}
    demo, url = app.serve_in_background(
        models, warnings, training=service, app_store=drawing_policy.open_app_store(path)
    )
    yield url
    close_when_idle(demo)
    service.close()


def show_tab(page, tab: str) -> None:
    page.get_by_role("tab", name=tab, exact=True).click()
    page.locator(TABS[tab]).wait_for(state="visible")


def settle(page, tab: str) -> None:
    """Wait for what the tab fills after it shows (figures, galleries, tables)."""
    if tab == "How it was trained":
        page.wait_for_selector("#look_inside_tiles img", state="attached")
    if tab == "Your drawings":
        page.wait_for_function(
            "() => (document.querySelector('#drawings-accuracy')?.innerText ?? '').includes(' of ')"
        )
        page.wait_for_selector("#drawings-gallery img", state="attached")
    page.wait_for_timeout(500)  # images decode and lay out


@pytest.mark.parametrize("size", SIZES)
def test_nothing_is_cut_off_on_any_tab(served, browser, size):
    width, height = SIZES[size]
    phone = size == "phone"
    page = open_app(
        browser,
        served,
        viewport={"width": width, "height": height},
        has_touch=phone,
        is_mobile=phone,
    )
    try:
        draw(page, 7)  # the Draw tab with an answer, its Why panel and its steps filled
        wait_for_label(page, 7)
        page.wait_for_selector("#why_overlay img", state="attached")
        problems = []
        if size == "projector":  # the Why panel begins on the first screen
            top = page.evaluate(
                "() => document.querySelector('#why').getBoundingClientRect().top + scrollY"
            )
            if top > height - 100:
                problems.append(f"Draw: the Why panel begins at {top:.0f} px, below the fold")
        for tab in TABS:
            show_tab(page, tab)
            settle(page, tab)
            problems += [f"{tab}: {p}" for p in page.evaluate(OVERFLOWS, TABS[tab])]
            if tab == "Your drawings":
                problems += accuracy_table_problems(page, in_view=not phone)
            if SHOTS:
                page.screenshot(path=f"{SHOTS}/{size}-{TABS[tab][1:]}.png", full_page=True)
        assert not problems, "\n".join(problems)
    finally:
        page.context.close()


def accuracy_table_problems(page, in_view: bool) -> list[str]:
    """The Your drawings accuracy table: a column for each of the three models, a row for
    every digit, each header on one line; with ``in_view``, every column in view without
    scrolling (a phone may scroll the table inside its own box)."""
    headers = page.evaluate(
        """() => [...document.querySelectorAll('#drawings-accuracy thead th')]
            .map((th) => th.innerText.trim()).filter(Boolean)"""
    )
    lines = [line.strip() for line in page.locator("#drawings-accuracy").inner_text().split("\n")]
    problems = []
    for model in ("MLP", "CNN", "small"):
        if not any(model in header for header in headers):
            problems.append(f"the accuracy table has no column for {model}: {headers}")
    missing = [str(d) for d in range(10) if str(d) not in lines]
    if missing:
        problems.append(f"the accuracy table lacks digits {missing}")
    if any("\n" in header for header in headers):
        problems.append(f"a header of the accuracy table wraps: {headers}")
    hidden = page.evaluate(HIDDEN_COLUMNS, "#drawings-accuracy")
    if in_view and hidden:
        problems.append(f"the accuracy table's columns {hidden} are scrolled out of view")
    return problems


def test_the_answer_reads_from_the_back_of_the_room(served, browser):
    page = open_app(browser, served, viewport={"width": 1366, "height": 768})
    try:
        blank_right = page.evaluate(RIGHT_COLOUR)
        draw(page, 8)
        wait_for_label(page, 8)
        # Right is coloured only once there is an answer to confirm.
        assert page.evaluate(RIGHT_COLOUR) != blank_right
        answer = page.locator("#answer")
        assert "It's an 8" in answer.inner_text()
        size = page.evaluate(
            "() => parseFloat(getComputedStyle(document.querySelector('#answer p')"
            " ?? document.querySelector('#answer')).fontSize)"
        )
        assert size >= MIN_ANSWER_PX, f"the answer is set at {size}px"
        assert answer.bounding_box()["y"] + answer.bounding_box()["height"] <= 768
    finally:
        page.context.close()


def test_start_on_a_phone_shows_the_status_at_once(served, browser):
    page = open_app(
        browser,
        served,
        live=False,
        viewport={"width": 412, "height": 900},
        has_touch=True,
        is_mobile=True,
    )
    try:
        show_tab(page, "Train")
        page.locator("#train-preset").get_by_text("tiny and fast").click()
        page.wait_for_function(  # the preset has set its knobs
            "() => document.querySelector('#knob-hidden_sizes textarea, "
            "#knob-hidden_sizes input').value === '256'"
        )
        # Only the chosen kind of network's knobs show: the MLP's layers, not the CNN's.
        assert page.locator("#knob-hidden_sizes").is_visible()
        assert not page.locator("#knob-cnn_channels").is_visible()
        before = page.locator("#train-status").inner_text()
        page.locator("#train-start").tap()
        began = time.monotonic()
        page.wait_for_function(
            """(before) => {
                const status = document.querySelector('#train-status');
                const text = status?.innerText.trim() ?? '';
                const box = status?.getBoundingClientRect();
                return text !== '' && text !== before && box.top >= 0
                    && box.top < window.innerHeight - 20;
            }""",
            arg=before.strip(),
            timeout=STATUS_IN_VIEW_S * 1000,
        )
        assert time.monotonic() - began <= STATUS_IN_VIEW_S
        page.locator("#train-stop").tap()
    finally:
        page.context.close()

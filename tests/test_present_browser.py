"""The presenter view (``?view=present``) in a real browser at a projector's 1920x1080, light and
dark: the pad, the answer and the leaderboard on one screen, no knob, the answer large and in
strong contrast, and the room's counts following the drawings store.

Skipped when Playwright or Chromium is missing.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import BROWSER_MARKS, close_when_idle  # noqa: E402
from test_app_browser import draw, open_app, wait_for_label  # noqa: E402

pytestmark = BROWSER_MARKS

import app  # noqa: E402
from digitnet.store import open_store  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402
from digitnet.ui import drawing_policy  # noqa: E402
from digitnet.ui.present import NO_RUNS  # noqa: E402

PROJECTOR = {"width": 1920, "height": 1080}
MIN_ANSWER_PX = 48
MIN_CONTRAST = 7.0  # WCAG's AAA for text
KEPT = {3: 4, 7: 2}  # digit -> drawings in the store before the page opens

# The box of each element, to hold it to the viewport.
BOXES = """(selectors) => selectors.map((selector) => {
    const element = document.querySelector(selector);
    if (!element) return [selector, null];
    const box = element.getBoundingClientRect();
    return [selector, [box.left, box.top, box.right, box.bottom]];
})"""
# Elements of the page that a presenter must not see (knobs, the tab bar), shown or not.
VISIBLE_CONTROLS = """() => [...document.querySelectorAll(
    '[id^="knob-"], #train-preset, #train-start, #setup-link-copy, #tabs .tab-wrapper button'
)].filter((element) => {
    const box = element.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(element).visibility !== 'hidden';
}).map((element) => element.id || element.textContent.trim())"""
# WCAG contrast of an element's text against what is painted behind it: its own background
# or its ancestors', semi-transparent layers composited down to the first opaque one.
CONTRAST = """(selector) => {
    const parse = (text) => {
        const parts = text.match(/rgba?\\(([^)]*)\\)/);
        if (!parts) throw new Error(`not an rgb colour: ${text}`);
        const [r, g, b, a = 1] = parts[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
        return { r, g, b, a };
    };
    const element = document.querySelector(selector);
    const text = parse(getComputedStyle(element).color);
    const layers = [];
    for (let node = element; node; node = node.parentElement) {
        const layer = parse(getComputedStyle(node).backgroundColor);
        if (layer.a > 0) layers.push(layer);
        if (layer.a >= 1) break;
    }
    const blend = (top, under) => ({
        r: top.r * top.a + under.r * (1 - top.a),
        g: top.g * top.a + under.g * (1 - top.a),
        b: top.b * top.a + under.b * (1 - top.a),
    });
    let back = { r: 255, g: 255, b: 255 };  // the canvas behind a page with no background
    for (const layer of layers.reverse()) back = blend(layer, back);
    const front = blend(text, back);
    const channel = (value) => {
        const c = value / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
    const [light, dark] = [luminance(front), luminance(back)].sort((x, y) => y - x);
    return (light + 0.05) / (dark + 0.05);
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "drawings.sqlite"
    with open_store(path) as store:
        for digit, count in KEPT.items():
            for _ in range(count):
                store.save_image(np.eye(28, dtype=np.uint8) * 255, digit, session="room")
    service = TrainingService(tmp_path_factory.mktemp("runs"))
    demo, url = app.serve_in_background(
        *app.load_models(), training=service, app_store=drawing_policy.open_app_store(path)
    )
    yield url, path
    close_when_idle(demo)
    service.close()


def open_present(browser, url: str, theme: str):
    query = "?view=present" + ("&__theme=dark" if theme == "dark" else "")
    page = open_app(browser, url + query, viewport=PROJECTOR)
    page.wait_for_function(
        "text => document.querySelector('#present-room')?.innerText.includes(text)", arg=NO_RUNS
    )
    return page


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_presenter_view_fits_a_projector_and_reads_from_the_back(served, browser, theme):
    url, _ = served
    page = open_present(browser, url, theme)
    try:
        dark = page.evaluate("() => document.body.classList.contains('dark')")
        assert dark == (theme == "dark")
        draw(page, 8)
        wait_for_label(page, 8)  # the answer is up (its probabilities are hidden here)
        page.wait_for_function(
            "() => document.querySelector('#answer').innerText.includes(\"It's an 8\")"
        )
        wanted = ["#pad canvas", "#pad .pad-tools", "#answer", "#present-room .present-leaderboard"]
        for selector, box in page.evaluate(BOXES, wanted):
            assert box is not None, f"{selector} is not on the page"
            left, top, right, bottom = box
            assert right - left > 0 and bottom - top > 0, f"{selector} is not shown: {box}"
            assert left >= 0 and top >= 0, f"{selector} starts off screen: {box}"
            assert right <= PROJECTOR["width"] and bottom <= PROJECTOR["height"], (
                f"{selector} ends off screen: {box}"
            )
        assert page.evaluate("() => scrollY") == 0
        pad_width = page.evaluate(BOXES, ["#pad canvas"])[0][1]
        assert pad_width[2] - pad_width[0] >= 700, "the pad is not large"
        assert page.evaluate(VISIBLE_CONTROLS) == []
        size = page.evaluate(
            "() => parseFloat(getComputedStyle(document.querySelector('#answer p')).fontSize)"
        )
        assert size >= MIN_ANSWER_PX, f"the answer is set at {size}px"
        contrast = page.evaluate(CONTRAST, "#answer p")
        assert contrast >= MIN_CONTRAST, f"the answer's contrast is {contrast:.2f}"
        room = page.locator("#present-room").inner_text()
        assert "Leaderboard" in room and "The room's drawings" in room
    finally:
        page.context.close()


def test_the_room_counts_follow_the_drawings_store(served, browser):
    url, path = served
    page = open_present(browser, url, "light")
    try:
        cells = page.locator("#present-room .present-count").all_inner_texts()
        shown = {cell.split()[0]: int(cell.split()[-1]) for cell in cells}
        assert shown["3"] == KEPT[3] and shown["7"] == KEPT[7] and shown["0"] == 0
        total = sum(KEPT.values())
        assert f"{total} drawings confirmed" in page.locator("#present-room").inner_text()
        with open_store(path) as store:  # someone in the room confirms one more
            store.save_image(np.eye(28, dtype=np.uint8) * 255, 5, session="other")
        page.wait_for_function(  # the view redraws the room by itself, every few seconds
            "text => document.querySelector('#present-room').innerText.includes(text)",
            arg=f"{total + 1} drawings confirmed",
        )
    finally:
        page.context.close()


def test_a_plain_page_has_its_tabs_and_no_presenter_side(served, browser):
    url, _ = served
    page = open_app(browser, url, live=False, viewport=PROJECTOR)
    try:
        assert page.get_by_role("tab", name="Train", exact=True).is_visible()
        assert not page.locator("#present-room").is_visible()
        assert page.locator("#label").is_visible()  # the ten probabilities, as always
    finally:
        page.context.close()

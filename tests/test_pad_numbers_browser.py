"""Numbers on the pad in a real browser: "42" drawn with the mouse reads as 42 while the pen is
still down on its last stroke, and the server's ``read`` endpoint agrees on the same strokes.

    python -m pytest tests/test_pad_numbers_browser.py -m browser

Skipped when Playwright or Chromium is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import re  # noqa: E402

import pytest  # noqa: E402
from conftest import BROWSER_MARKS, close_when_idle  # noqa: E402

from digitnet.strokes import PAD_SIZE, PenStyle, digit_strokes  # noqa: E402

pytestmark = BROWSER_MARKS
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)

import app  # noqa: E402

CANVAS = "#pad canvas"
TIMEOUT_MS = 20_000
ANSWER = "() => document.querySelector('#answer')?.innerText ?? ''"


@pytest.fixture(scope="module")
def served():
    demo, url = app.serve_in_background(*app.load_models())
    yield url
    close_when_idle(demo)


def open_app(browser, url: str):
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.locator(CANVAS).wait_for(state="visible")
    page.wait_for_function("() => globalThis.digitnetPads?.pad?.live === true")
    return page


def draw_keeping_the_pen_down(page, strokes) -> None:
    """Every stroke drawn with the mouse; the button stays down at the end of the last."""
    box = page.locator(CANVAS).bounding_box()
    scale = box["width"] / PAD_SIZE
    for index, stroke in enumerate(strokes):
        points = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=4)
        if index < len(strokes) - 1:
            page.mouse.up()


@pytest.mark.parametrize("choice", ["MLP", "CNN"])
def test_42_drawn_with_the_mouse_reads_as_42_before_the_pen_lifts(served, browser, choice):
    """Two digits side by side, each about 90 pad units wide: the MLP answers the digits in
    the frame, the CNN in its worker."""
    from gradio_client import Client

    page = open_app(browser, served)
    try:
        if choice != "MLP":
            page.get_by_label(choice).check()
        four = digit_strokes(4, PenStyle(130, (80, 140), 0.05, 0.6))
        two = digit_strokes(2, PenStyle(130, (200, 140), 0.05, 0.6))
        draw_keeping_the_pen_down(page, four + two)
        page.wait_for_function(f"() => /\\*\\*42\\*\\*|\\b42\\b/.test(({ANSWER})())")
        # Still down: the pad has not sent the drawing, and its last stroke is the 2's.
        assert page.evaluate("() => digitnetPads.pad.value().strokes.length") == len(four + two)
        answer = page.evaluate(ANSWER)
        assert re.search(r"It's 42 \(\d+\.\d% sure\)", answer), answer
        assert re.search(r"4 \(\d+%\) · 2 \(\d+%\)", answer), answer  # each digit's top p
        page.mouse.up()
        strokes = page.evaluate("() => digitnetPads.pad.value().strokes")
        read = Client(served, verbose=False, analytics_enabled=False).predict(
            {"strokes": strokes}, choice, api_name="/read"
        )
        assert read["text"] == "42", read
        # The server's check (the whole drawing, as one digit, as before) leaves it shown.
        page.wait_for_function(
            "() => /agreed with the server's on 1 of 1/.test(document.querySelector("
            "'#comparison')?.textContent ?? '')"
        )
        assert "42" in page.evaluate(ANSWER)
    finally:
        page.context.close()


def test_one_digit_reads_as_before_and_undo_goes_back_to_it(served, browser):
    page = open_app(browser, served)
    try:
        seven = digit_strokes(7, PenStyle(120, (70, 140), 0.05, 0.6))
        one = digit_strokes(1, PenStyle(120, (200, 140), 0.05, 0.6))
        draw_keeping_the_pen_down(page, seven)
        page.mouse.up()
        page.wait_for_function(f"() => /It's a \\*?\\*?7/.test(({ANSWER})())")
        draw_keeping_the_pen_down(page, one)
        page.mouse.up()
        page.wait_for_function(f"() => /It's 71 /.test(({ANSWER})())")
        page.click("#undo")
        page.wait_for_function(f"() => /It's a 7 /.test(({ANSWER})())")
    finally:
        page.context.close()

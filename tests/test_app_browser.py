"""The drawing app in a real browser: headless Chromium (Debian's ``chromium`` package) driven
by Python Playwright draws digits with the mouse and reads the answer and the dashboard.

    python -m pytest tests/test_app_browser.py -m browser
    DIGITNET_SCREENSHOT=docs/screenshot.png python -m pytest tests/test_app_browser.py

Skipped when Playwright or Chromium is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import math
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

CHROMIUM = Path(os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium, or set DIGITNET_CHROMIUM)",
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)

import app  # noqa: E402

CANVAS = "#pad .pixi-target canvas"  # the visible drawing layer (another canvas is for cropping)
BRUSH_READY = "#pad .toolbar-wrap button.highlight"  # the app selects the brush by itself
PAD_CLEAR = "#pad button[aria-label='Clear canvas']"  # the sketchpad's own clear button
APP_CLEAR = "#clear"  # the app's Clear button
TIMEOUT_MS = 15_000


def ellipse(rx: float, ry: float, points: int = 16) -> list[tuple[float, float]]:
    """A closed loop from the top, clockwise, overlapping its start a little."""
    return [
        (rx * math.sin(2 * math.pi * i / points), -ry * math.cos(2 * math.pi * i / points))
        for i in range(points + 2)
    ]


# Digits as mouse strokes, in (x, y) from -1 to 1 across the middle 80% of the canvas.
STROKES = {
    1: [[(-0.2, -0.55), (0.05, -0.8), (0.05, 0.8)]],
    7: [[(-0.5, -0.7), (0.5, -0.7), (-0.1, 0.8)]],
    0: [ellipse(0.45, 0.75)],
    4: [[(-0.05, -0.8), (-0.5, 0.25), (0.5, 0.25)], [(0.25, -0.45), (0.25, 0.8)]],
}


@pytest.fixture(scope="module")
def server():
    demo, url = app.serve_in_background(*app.load_models())
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def open_app(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.locator(CANVAS).first.wait_for(state="visible")
    page.wait_for_selector(BRUSH_READY)  # no click: the page must select the brush itself
    return page


def answer(page) -> str:
    return page.locator("#answer").inner_text()


def draw(page, strokes, steps: int = 1, scale: float = 0.8) -> None:
    """Mouse strokes; the brush joins successive points, and every move repaints the canvas
    (slow in software WebGL), so few points make a stroke."""
    box = page.locator(CANVAS).first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    radius = min(box["width"], box["height"]) / 2 * scale
    for stroke in strokes:
        points = [(cx + x * radius, cy + y * radius) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=steps)
        page.mouse.up()


def wait_for_answer(page, pattern: str) -> str:
    """Wait until #answer's text matches the regex ``pattern``; return the text."""
    try:
        page.wait_for_function(
            "pattern => new RegExp(pattern).test("
            "document.querySelector('#answer')?.innerText ?? '')",
            arg=pattern,
            timeout=TIMEOUT_MS,
        )
    except sync_api.TimeoutError:
        pytest.fail(f"#answer never matched {pattern!r}; it says {answer(page)!r}")
    return answer(page)


def clear(page, button: str = PAD_CLEAR) -> None:
    """Clear the canvas: back to the prompt, with the brush selected again."""
    page.click(button)
    wait_for_answer(page, "Draw a digit")
    page.wait_for_selector(BRUSH_READY)


def draw_and_read(page, digit: int) -> str:
    draw(page, STROKES[digit])
    # The last stroke's answer (trigger_mode="always_last"): a confident one for this digit.
    return wait_for_answer(page, rf"It's a {digit}\b")


def test_drawn_digits_are_recognised_and_the_dashboard_renders(server, browser):
    page = open_app(browser, server)
    try:
        assert "Draw a digit" in answer(page)
        for index, digit in enumerate([7, 1, 0, 4]):
            if index:
                clear(page)
            assert f"It's a {digit}" in draw_and_read(page, digit)

        # The dashboard of the default model (the MLP), loaded with the page.
        page.wait_for_function(
            "() => (document.querySelector('#card')?.innerText ?? '').includes('parameters')"
        )
        assert "MLP" in page.locator("#card").inner_text()
        for plot in ("#curves", "#confusion"):
            page.wait_for_selector(f"{plot} img, {plot} canvas, {plot} svg")
        page.wait_for_selector("#mistakes img")
        assert page.locator("#mistakes img").count() >= 1
        assert page.locator("#input28 img").count() == 1  # the 28x28 input, enlarged

        screenshot = os.environ.get("DIGITNET_SCREENSHOT")
        if screenshot:
            page.screenshot(path=screenshot, full_page=True)
    finally:
        page.close()


def test_the_clear_button_clears_and_drawing_goes_on(server, browser):
    """The app's own Clear button: the prompt comes back, and the next digit is recognised."""
    page = open_app(browser, server)
    try:
        draw_and_read(page, 7)
        for digit in (1, 0):
            clear(page, APP_CLEAR)
            assert f"It's a {digit}" in draw_and_read(page, digit)
    finally:
        page.close()


def test_dark_theme_recognises_a_drawing(server, browser):
    page = open_app(browser, server.rstrip("/") + "/?__theme=dark")
    try:
        assert page.evaluate("() => document.body.classList.contains('dark')")
        text = draw_and_read(page, 7)
        assert re.search(r"It's a 7\b", text)
    finally:
        page.close()


def test_a_finger_on_a_phone_draws_a_recognised_digit(server, browser):
    """Touch events on a phone-sized page (the canvas has touch-action: none, so no scroll)."""
    context = browser.new_context(
        viewport={"width": 412, "height": 900}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(server)
        page.locator(CANVAS).first.wait_for(state="visible")
        page.wait_for_selector(BRUSH_READY)
        page.locator(CANVAS).first.scroll_into_view_if_needed()
        box = page.locator(CANVAS).first.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        radius = min(box["width"], box["height"]) / 2 * 0.7
        points = [(cx + x * radius, cy + y * radius) for x, y in STROKES[7][0]]
        touch = context.new_cdp_session(page)

        def send(kind: str, x: float | None = None, y: float | None = None) -> None:
            touch_points = [] if x is None else [{"x": x, "y": y}]
            touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})

        send("touchStart", *points[0])
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            for i in range(1, 5):
                send("touchMove", x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4)
        send("touchEnd")
        assert "It's a 7" in wait_for_answer(page, r"It's a 7\b")
    finally:
        context.close()


def test_clicking_an_example_answers_it(server, browser):
    """Examples load into the sketchpad (no change event there) and are answered at once."""
    page = open_app(browser, server)
    try:
        examples = sorted(p.name for p in app.EXAMPLES_DIR.glob("*.png"))
        page.locator(".gallery-item").nth(examples.index("dark-canvas-3.png")).click()
        assert "It's a 3" in wait_for_answer(page, r"It's a 3\b")
        clear(page, APP_CLEAR)
        assert "It's a 7" in draw_and_read(page, 7)
    finally:
        page.close()

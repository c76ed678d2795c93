"""A number on the pad in a real browser (headless Chromium): each digit's 28x28 and two
likeliest labels beside the answer, the Why panel following the digit clicked, Right and a
typed "No, it's …" keeping one row per digit, and the server showing the same number when
the browser cannot answer.

    python -m pytest tests/test_number_pad_browser.py -m browser

Skipped when Playwright or Chromium is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import re  # noqa: E402

import pytest  # noqa: E402
from conftest import BROWSER_MARKS, close_when_idle  # noqa: E402

import app  # noqa: E402
from digitnet.store import open_store  # noqa: E402
from digitnet.strokes import PenStyle, digit_strokes  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402
from digitnet.ui import drawing_policy  # noqa: E402

pytestmark = BROWSER_MARKS
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)

from test_app_browser import benchmark, open_app  # noqa: E402

ANSWER = "() => document.querySelector('#answer')?.innerText ?? ''"
TILES = "#input28 .view-digit"
FORTY_TWO = digit_strokes(4, PenStyle(130, (80, 140), 0.05, 0.6)) + digit_strokes(
    2, PenStyle(130, (200, 140), 0.05, 0.6)
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app in-process with a drawings store of its own; yields (url, store path)."""
    path = tmp_path_factory.mktemp("store") / "drawings.sqlite"
    service = TrainingService(tmp_path_factory.mktemp("runs"))
    demo, url = app.serve_in_background(
        *app.load_models(), training=service, app_store=drawing_policy.open_app_store(path)
    )
    yield url, path
    close_when_idle(demo)
    service.close()


def wait_for_text(page, selector: str, pattern: str) -> str:
    """Wait until ``selector``'s text matches the regular expression; return the text."""
    page.wait_for_function(
        "([selector, pattern]) => new RegExp(pattern).test("
        "document.querySelector(selector)?.innerText ?? '')",
        arg=[selector, pattern],
    )
    return page.locator(selector).inner_text()


def tile_captions(page) -> list[str]:
    return [text.strip() for text in page.locator(TILES).all_inner_texts()]


def labels_in_store(path) -> list[int]:
    with open_store(path) as store:
        return [row.label for row in sorted(store.list_drawings(), key=lambda row: row.id)]


def test_each_digit_shows_its_28x28_and_the_why_panel_explains_the_one_clicked(served, browser):
    url, _ = served
    page = open_app(browser, url)
    try:
        benchmark.draw_with_mouse(page, FORTY_TWO)
        wait_for_text(page, "#answer", r"It's 42 \(\d+\.\d% sure\)")
        # One tile per digit: its 28x28 and its two likeliest labels.
        page.wait_for_function(f"() => document.querySelectorAll({TILES!r}).length === 2")
        first, second = tile_captions(page)
        assert re.fullmatch(r"4 \d+% · \d \d+%", first), first
        assert re.fullmatch(r"2 \d+% · \d \d+%", second), second
        assert page.locator(f"{TILES} canvas").count() == 2
        assert not page.locator("#input28 .view-single").is_visible()
        # The Why panel explains the first digit, then the one clicked.
        wait_for_text(page, "#why_runner_up", r"Digit 1 of 2[\s\S]*MLP answers 4")
        assert page.locator(TILES).first.get_attribute("aria-pressed") == "true"
        page.locator(TILES).nth(1).click()
        wait_for_text(page, "#why_runner_up", r"Digit 2 of 2[\s\S]*MLP answers 2")
        assert page.locator(TILES).nth(1).get_attribute("aria-pressed") == "true"
        # A cleared pad goes back to the single 28x28.
        page.click("#clear")
        page.wait_for_function(
            f"() => document.querySelectorAll({TILES!r}).length === 0"
            " || document.querySelector('#input28 .view-number').hidden"
        )
        assert page.locator("#input28 .view-single").is_visible()
    finally:
        page.context.close()


def test_right_then_a_typed_number_keep_one_row_per_digit(served, browser):
    url, path = served
    before = len(labels_in_store(path))
    page = open_app(browser, url)
    try:
        benchmark.draw_with_mouse(page, FORTY_TWO)
        wait_for_text(page, "#answer", r"It's 42 ")
        page.click("#right")
        wait_for_text(page, "#feedback-status", "Kept as 42, one drawing per digit, MLP was right")
        assert labels_in_store(path)[before:] == [4, 2]
        box = page.locator("#wrong-number input, #wrong-number textarea").first
        box.fill("47")
        box.press("Enter")
        wait_for_text(page, "#feedback-status", r"Changed from 42 to 47.*wrong \(it said 42\)")
        assert labels_in_store(path)[before:] == [4, 7]  # the same two rows' labels, corrected
        box.fill("471")
        page.click("#keep-number")
        wait_for_text(page, "#feedback-status", "You typed 3 digits, but the pad holds 2")
        assert labels_in_store(path)[before:] == [4, 7]

        page.get_by_role("tab", name="Your drawings", exact=True).click()
        gallery = wait_for_text(page, "#drawings-gallery", r"7 · MLP: 2 ✗")
        assert re.search(r"4 · MLP: 4 ✓", gallery), gallery
    finally:
        page.context.close()


def test_the_server_shows_the_number_when_the_browser_cannot(served, browser):
    url, _ = served
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.route("**/*.safetensors*", lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(url)
        page.locator("#pad canvas").wait_for(state="visible")
        benchmark.draw_with_mouse(page, FORTY_TWO)
        wait_for_text(page, "#answer", r"It's 42 \(\d+\.\d% sure\)\s+4 \(\d+%\) · 2 \(\d+%\)")
        assert page.evaluate("() => globalThis.digitnetPads?.pad?.live") is False
        page.wait_for_function(f"() => document.querySelectorAll({TILES!r}).length === 2")
        first, second = tile_captions(page)
        assert first.startswith("4 ") and second.startswith("2 "), (first, second)
    finally:
        context.close()


def test_mouse_drawn_numbers_are_read_while_drawn_and_checked(served, browser):
    """The latency benchmark's quiet phase with --numbers, on four numbers of 2-4 digits
    (the README's figures are its 30): each read in the page, and checked by the server."""
    url, _ = served
    phase = benchmark.run_phase(browser, url, "quiet", count=4, seed=0, numbers=True)
    assert phase.kind == "numbers" and phase.drawn == 4 and phase.missed == 0
    assert phase.right >= 3, f"{phase.right} of 4 read right"
    assert len(phase.stroke_ms) == 4 and phase.checks == "4 of 4"

"""The Why panel and Look inside in a real browser: headless Chromium draws a digit with the
mouse, and the panel fills in after the answer.

    python -m pytest tests/test_why_browser.py
    DIGITNET_WHY_SCREENSHOT=assets/why.png python -m pytest tests/test_why_browser.py

Skipped when Playwright or Chromium is missing, as tests/test_app_browser.py is.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from conftest import BROWSER_MARKS, close_when_idle  # noqa: E402
from PIL import Image  # noqa: E402
from test_app_browser import (  # noqa: E402
    draw,
    open_app,
    sync_api,
    wait_for_label,
)

import app  # noqa: E402

pytestmark = BROWSER_MARKS
TIMEOUT_MS = 30_000  # the CNN's explanation comes after its answer, on a shared CPU


@pytest.fixture(scope="module")
def server():
    demo, url = app.serve_in_background(*app.load_models())
    yield url
    close_when_idle(demo)


def wait_for_text(page, selector: str, needle: str) -> str:
    try:
        page.wait_for_function(
            "([selector, needle]) => "
            "(document.querySelector(selector)?.innerText ?? '').includes(needle)",
            arg=[selector, needle],
            timeout=TIMEOUT_MS,
        )
    except sync_api.TimeoutError:
        text = page.locator(selector).inner_text()
        pytest.fail(f"{selector} never said {needle!r}; it says {text!r}")
    return page.locator(selector).inner_text()


def test_the_why_panel_renders_for_a_drawn_digit(server, browser, tmp_path):
    page = open_app(browser, server)
    try:
        # The dashboard's Look inside: the MLP's first-layer tiles, loaded with the page.
        page.get_by_role("tab", name="How it was trained").click()
        wait_for_text(page, "#look_inside_text", "first layer")
        page.wait_for_selector("#look_inside_tiles img", state="attached")
        page.get_by_role("tab", name="Draw", exact=True).click()

        draw(page, 7)
        wait_for_label(page, 7)
        text = wait_for_text(page, "#why_runner_up", "MLP answers 7")
        assert "runner-up" in text and "%" in text
        for image in ("#why_overlay", "#why_runner_up_overlay", "#why_inside"):
            page.wait_for_selector(f"{image} img", state="attached")
        assert "first-layer units" in page.locator("#why_inside_text").inner_text()

        # The CNN, chosen after drawing: its answer, then its feature maps.
        page.locator("#choice").get_by_text("CNN").click()
        wait_for_text(page, "#why_runner_up", "CNN answers 7")
        wait_for_text(page, "#why_inside_text", "feature maps")
        page.get_by_role("tab", name="How it was trained").click()
        wait_for_text(page, "#look_inside_text", "3×3")
        page.get_by_role("tab", name="Draw", exact=True).click()
        page.locator("#choice").get_by_text("MLP").click()
        wait_for_text(page, "#why_runner_up", "MLP answers 7")
        wait_for_text(page, "#why_inside_text", "first-layer units")

        # The panel sits beside the 28x28 the model sees: the screenshot takes both.
        input_box = page.locator("#input28").bounding_box()
        panel_box = page.locator("#why").bounding_box()
        assert panel_box["x"] > input_box["x"] + input_box["width"] - 1, (input_box, panel_box)
        assert panel_box["y"] < input_box["y"] + input_box["height"], (input_box, panel_box)
        panel = page.locator("#input-row")
        panel.scroll_into_view_if_needed()
        path = Path(os.environ.get("DIGITNET_WHY_SCREENSHOT") or tmp_path / "why.png")
        panel.screenshot(path=str(path))
        width, height = Image.open(path).size
        assert width > 400 and height > 250
    finally:
        page.close()

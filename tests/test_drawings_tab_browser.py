"""Your drawings in a real browser (headless Chromium, as tests/test_app_browser.py): draw a
4 on the pad, press "No, it's a …" 9, and the drawing is in the "Your drawings" gallery and
counted by the accuracy table; "Right", pressed the moment the pen lifts, keeps that drawing.

    python -m pytest tests/test_drawings_tab_browser.py -m browser
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pytest  # noqa: E402
from conftest import BROWSER_MARKS, close_when_idle  # noqa: E402
from test_app_browser import (  # noqa: E402
    draw,
    open_app,
    wait_for_label,
    wait_for_server_check,
)

import app  # noqa: E402
from digitnet.drawing_data import import_sklearn_digits  # noqa: E402
from digitnet.store import open_store  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402
from digitnet.ui import drawing_policy  # noqa: E402

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "drawings.sqlite"
    service = TrainingService(tmp_path_factory.mktemp("runs"))
    demo, url = app.serve_in_background(
        *app.load_models(), training=service, app_store=drawing_policy.open_app_store(path)
    )
    yield url, path
    close_when_idle(demo)
    service.close()


def wait_for_status(page, text: str) -> str:
    page.wait_for_function(
        "text => (document.querySelector('#feedback-status')?.innerText ?? '').includes(text)",
        arg=text,
    )
    return page.locator("#feedback-status").inner_text()


def test_a_corrected_4_is_kept_as_a_9_shown_and_counted(served, browser):
    url, path = served
    page = open_app(browser, url)
    try:
        assert page.locator("#keep-drawings input").is_checked()  # on by default locally
        draw(page, 4)
        wait_for_label(page, 4)
        page.click("#wrong-9")
        wait_for_status(page, "Kept as a 9")
        with open_store(path) as store:
            (row,) = store.list_drawings()
        assert (row.label, row.predicted, row.source, row.model) == (9, 4, "app", "MLP")
        assert row.strokes and row.png

        # "Right" pressed as soon as the pen lifts keeps the new drawing, not the last one.
        page.click("#clear")
        draw(page, 7)
        page.click("#right")
        wait_for_status(page, "Kept as a 7")
        with open_store(path) as store:
            newest = store.list_drawings()[0]
        assert (newest.label, newest.predicted) == (7, 7)
        # The pad's own value for that drawing arrives after the click: the line stays...
        page.wait_for_timeout(1000)
        wait_for_status(page, "Kept as a 7")  # (a wait: Gradio may show its timer a moment)
        page.click("#right")  # ...and a second click keeps nothing new
        wait_for_status(page, "Already kept as a 7")
        # Another drawing clears the line about the last one.
        page.click("#clear")
        page.wait_for_function(
            "() => (document.querySelector('#feedback-status')?.innerText ?? '').trim() === ''"
        )

        page.get_by_role("tab", name="Your drawings", exact=True).click()
        page.wait_for_function(
            "id => (document.querySelector('#drawings-gallery')?.innerText ?? '')"
            ".includes(`#${id}: 9 · MLP: 4 ✗`)",
            arg=row.id,
        )
        assert page.locator("#drawings-gallery img").count() == 2
        page.wait_for_function(
            "() => (document.querySelector('#drawings-accuracy')?.innerText ?? '').includes('of 2')"
        )
        table = page.locator("#drawings-accuracy").inner_text()
        assert "MLP" in table and "50% [" in table  # the MLP read 1 of the 2 right

        # Switched off, nothing is kept.
        page.get_by_role("tab", name="Draw", exact=True).click()
        page.locator("#keep-drawings input").uncheck()
        page.click("#right")
        wait_for_status(page, "switched off")
        assert open_store(path).count() == 2
    finally:
        page.close()


def test_fine_tune_in_the_page_then_draw_against_the_result(tmp_path, browser):
    """Start a fine-tune on the Your drawings tab (scikit-learn's UCI digits stand in for a
    room's drawings), see its before/after table, and draw against tuned-1."""
    path = tmp_path / "drawings.sqlite"
    with open_store(path) as store:
        import_sklearn_digits(store)
    service = TrainingService(tmp_path / "runs")
    demo, url = app.serve_in_background(
        *app.load_models(), training=service, app_store=drawing_policy.open_app_store(path)
    )
    page = open_app(browser, url)
    try:
        page.get_by_role("tab", name="Your drawings", exact=True).click()
        epochs = page.locator("#finetune-epochs input[type=number]")
        epochs.fill("1")
        epochs.press("Enter")
        page.click("#finetune-start")
        page.wait_for_function(
            "() => (document.querySelector('#finetune-before-after')?.innerText ?? '')"
            ".includes('held-out drawings')",
            timeout=180_000,
        )
        table = page.locator("#finetune-before-after").inner_text()
        assert "tuned-1" in table and "fine-tuned from MLP" in table, table
        log = page.locator("#finetune-log textarea").input_value()
        assert log.startswith("before:") and "tuned-1 is ready" in log, log

        page.get_by_role("tab", name="Draw", exact=True).click()
        page.locator("#choice").get_by_text("tuned-1").click()
        draw(page, 7)
        wait_for_label(page, 7)
        assert "tuned-1: 7" in wait_for_server_check(page, 1)
    finally:
        page.close()
        close_when_idle(demo)
        service.close()

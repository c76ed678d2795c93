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
from conftest import BROWSER_MARKS  # noqa: E402
from test_app_browser import draw, open_app, wait_for_label  # noqa: E402

import app  # noqa: E402
from digitnet.jobs import TrainingService  # noqa: E402
from digitnet.store import open_store  # noqa: E402
from digitnet.ui import drawings_tab  # noqa: E402

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "drawings.sqlite"
    service = TrainingService(tmp_path_factory.mktemp("runs"))
    demo, url = app.serve_in_background(
        *app.load_models(), training=service, app_store=drawings_tab.open_app_store(path)
    )
    yield url, path
    demo.close()
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

        page.get_by_role("tab", name="Your drawings", exact=True).click()
        page.wait_for_function(
            "id => (document.querySelector('#drawings-gallery')?.innerText ?? '')"
            ".includes(`#${id}: a 9`)",
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

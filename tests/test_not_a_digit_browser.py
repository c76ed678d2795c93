"""'That isn't a digit' in a real browser: a scribble drawn with the mouse is refused by the
page's own models, the server refuses it too, and a 7 drawn next still reads 7."""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import BROWSER_MARKS, close_when_idle  # noqa: E402

from digitnet.nondigits import _scribble  # noqa: E402
from digitnet.numbers import strokes_to_input  # noqa: E402
from digitnet.predict import classify_preprocessed  # noqa: E402
from digitnet.strokes import digit_strokes  # noqa: E402

pytestmark = BROWSER_MARKS
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from test_app_browser import (  # noqa: E402
    UPRIGHT,
    assert_no_error_shown,
    benchmark,
    open_app,
    parity_log,
    wait_for_label,
    wait_for_server_check,
)

import app  # noqa: E402

NOT_A_DIGIT = "doesn't look like a digit"


def scribble_strokes() -> list[list[tuple[float, float]]]:
    """A tangle of three strokes across the middle of the pad (pad units)."""
    strokes = _scribble(np.random.default_rng(1))
    return [[(round(x * 90 + 140, 1), round(y * 90 + 140, 1)) for x, y in s] for s in strokes]


@pytest.fixture(scope="module")
def served():
    loaded = app.load_models()
    demo, url = app.serve_in_background(*loaded)
    yield demo, url, loaded[0]
    close_when_idle(demo)
    assert parity_log(demo).disagreements == 0


def test_a_scribble_is_not_a_digit_in_the_page_and_on_the_server(served, browser):
    demo, url, models = served
    strokes = scribble_strokes()
    for name, loaded in models.items():  # the shipped models refuse it, in Python
        answer = classify_preprocessed(loaded.model, strokes_to_input(strokes))
        assert not answer.is_digit, f"{name} reads the scribble as {answer.label}"
    page = open_app(browser, url)
    try:
        benchmark.draw_with_mouse(page, strokes)
        page.wait_for_function(
            "text => (document.querySelector('#answer')?.innerText ?? '').includes(text)",
            arg=NOT_A_DIGIT,
        )
        # The server checked the same strokes and agreed (a refusal is an answer too).
        assert "on 1 of 1 drawings" in wait_for_server_check(page, 1)
        page.click("#clear")
        wait_for_label(page, None)
        benchmark.draw_with_mouse(page, digit_strokes(7, UPRIGHT))
        wait_for_label(page, 7)
        assert "It's a 7" in page.locator("#answer").inner_text()
        assert "on 2 of 2 drawings" in wait_for_server_check(page, 2)
        assert_no_error_shown(page)
    finally:
        page.context.close()

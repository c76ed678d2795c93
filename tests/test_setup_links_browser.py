"""Setups by link in a real browser: a link fills the Train tab's knobs when the page opens,
a bad value keeps the preset's and says so, and "Copy link to this setup" makes a link that
opens the same knobs (copied to the clipboard, or shown selected where there is none).

Skipped when Playwright or Chromium is missing.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pytest  # noqa: E402
from conftest import BROWSER_MARKS, close_when_idle  # noqa: E402
from test_app_browser import open_app  # noqa: E402

pytestmark = BROWSER_MARKS

import app  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402

ISSUE_LINK = "?preset=tiny+and+fast&epochs=23&lr=0.0123&hidden_sizes=64,32"
# A knob's shown value: a slider's number box, a number box, a text box.
KNOB_VALUE = """(name) => {
    const box = document.querySelector(
        `#knob-${name} input[type=number], #knob-${name} textarea, #knob-${name} input`
    );
    return box ? box.value : null;
}"""
LINK_BOX = "#setup-link textarea, #setup-link input"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    service = TrainingService(tmp_path_factory.mktemp("runs"))
    demo, url = app.serve_in_background(*app.load_models(), training=service)
    yield url
    close_when_idle(demo)
    service.close()


def open_train_tab(browser, url: str, context=None):
    """The page at ``url`` (its own context unless given), on the Train tab."""
    if context is None:
        page = open_app(browser, url, live=False)
    else:
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(url)
    page.get_by_role("tab", name="Train", exact=True).click()
    page.locator("#knob-epochs").wait_for(state="visible")
    return page


def wait_for_knob(page, name: str, value: str) -> None:
    page.wait_for_function(f"() => ({KNOB_VALUE})({name!r}) === {value!r}")


def knobs(page, *names: str) -> dict[str, str]:
    return {name: page.evaluate(KNOB_VALUE, name) for name in names}


def chosen_preset(page) -> str:
    return page.evaluate("() => document.querySelector('#train-preset input:checked')?.value")


def test_a_link_fills_the_knobs_and_its_copy_opens_them_again(server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.rstrip("/"))
    try:
        page = open_train_tab(browser, server + ISSUE_LINK, context)
        wait_for_knob(page, "hidden_sizes", "64, 32")
        shown = knobs(page, "epochs", "lr", "hidden_sizes", "architecture")
        assert shown == {"epochs": "23", "lr": "0.0123", "hidden_sizes": "64, 32",
                         "architecture": "mlp"}  # fmt: skip
        assert chosen_preset(page) == "tiny and fast"
        assert page.locator("#setup-link-notes").inner_text().strip() == ""

        page.locator("#setup-link-copy").click()
        page.wait_for_function(f"() => document.querySelector({LINK_BOX!r})?.value !== ''")
        link = page.evaluate(f"() => document.querySelector({LINK_BOX!r}).value")
        assert link.startswith(server) and "preset=tiny+and+fast" in link
        assert "Copied" in page.locator("#setup-link-said").inner_text()
        assert page.evaluate("() => navigator.clipboard.readText()") == link

        again = open_train_tab(browser, link, context)
        wait_for_knob(again, "hidden_sizes", "64, 32")
        assert knobs(again, "epochs", "lr", "hidden_sizes", "architecture") == shown
        assert chosen_preset(again) == "tiny and fast"
        # A preset picked afterwards still sets its own knobs.
        again.locator("#train-preset").get_by_text("digitnet's recipe").click()
        wait_for_knob(again, "hidden_sizes", "512, 512")
        assert knobs(again, "epochs")["epochs"] == "15"
    finally:
        context.close()


def test_a_bad_value_in_a_link_keeps_the_presets_and_says_so(server, browser):
    page = open_train_tab(browser, server + "?preset=tiny+and+fast&epochs=abc&lr=0.02&colour=red")
    try:
        page.wait_for_function(
            "() => document.querySelector('#setup-link-notes').innerText.includes('epochs=abc')"
        )
        lines = page.locator("#setup-link-notes li").all_inner_texts()
        assert lines == [
            "epochs=abc in the link is not a whole number; kept the preset's 10",
            "ignored colour= in the link: not a knob of the Train tab",
        ]
        wait_for_knob(page, "lr", "0.02")  # the good value beside it is used
        assert knobs(page, "epochs", "hidden_sizes") == {"epochs": "10", "hidden_sizes": "256"}
        assert page.locator("#setup-link-notes").is_visible()
    finally:
        page.context.close()


def test_without_a_clipboard_the_link_is_shown_selected(server, browser):
    page = open_app(browser, server, live=False)
    try:
        # As on plain http at a LAN address: the page has no clipboard to write to.
        page.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
        page.reload()
        page.get_by_role("tab", name="Train", exact=True).click()
        page.locator("#knob-epochs").wait_for(state="visible")
        page.locator("#knob-hidden_sizes textarea, #knob-hidden_sizes input").fill("100, 10")
        page.locator("#setup-link-copy").click()
        page.wait_for_function(
            """(selector) => {
                const box = document.querySelector(selector);
                return box && box.value !== '' && document.activeElement === box
                    && box.selectionStart === 0 && box.selectionEnd === box.value.length;
            }""",
            arg=LINK_BOX,
        )
        link = page.evaluate(f"() => document.querySelector({LINK_BOX!r}).value")
        assert link == f"{server}?preset=digitnet%27s+recipe&hidden_sizes=100,10"
        assert "Ctrl+C" in page.locator("#setup-link-said").inner_text()
    finally:
        page.context.close()

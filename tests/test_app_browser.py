"""The drawing app in a real browser: headless Chromium (Debian's ``chromium`` package) driven
by Python Playwright draws digits with the mouse and a finger, and reads the answer as it
changes, the server's check and the dashboard.

    python -m pytest tests/test_app_browser.py -m browser
    DIGITNET_SCREENSHOT=assets/screenshot.png \
        python -m pytest tests/test_app_browser.py -k dashboard

Skipped when Playwright or Chromium is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import importlib.util
import inspect
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import pytest  # noqa: E402
from conftest import BROWSER_MARKS, close_when_idle  # noqa: E402

from digitnet.strokes import PAD_SIZE, PenStyle, digit_strokes  # noqa: E402

pytestmark = BROWSER_MARKS
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)

import app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CANVAS = "#pad canvas"
TIMEOUT_MS = 20_000
UPRIGHT = PenStyle(200, (140, 140), 0.1)  # a digit filling most of the pad, leaning right
ERROR_TOASTS = ".toast-body, [data-testid='toast-body']"
# What #bars and the 28x28 show, as strings that change when they do.
# True when what is at the centre of `selector` belongs to `inside` (nothing lies over it).
UNCOVERED = """([selector, inside]) => {
    const box = document.querySelector(selector).getBoundingClientRect();
    const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
    return hit !== null && document.querySelector(inside).contains(hit); }"""
SHOWN_BARS = "() => document.querySelector('#bars .bars-chart')?.innerHTML ?? ''"
SHOWN_INPUT = "() => document.querySelector('#input28 canvas')?.toDataURL() ?? ''"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


benchmark = load_script("latency_benchmark")


def parity_log(demo):
    """The served app's ParityLog: every browser answer the server checked, in this process
    (read from the ``predict`` handler, which counts them)."""
    predict = next(block.fn for block in demo.fns.values() if block.api_name == "predict")
    return inspect.getclosurevars(predict).nonlocals["parity"]


@pytest.fixture(scope="module")
def served():
    """The app served for a module's tests: (demo, url). When they are done, the browser and
    the server must have agreed on every drawing the server checked."""
    demo, url = app.serve_in_background(*app.load_models())
    yield demo, url
    close_when_idle(demo)  # the last checks counted
    parity = parity_log(demo)
    assert parity.disagreements == 0, (
        f"the browser and the server disagreed on {parity.disagreements} of {parity.checked}"
        " drawings (the log's warnings say which)"
    )


@pytest.fixture(scope="module")
def server(served):
    return served[1]


def open_app(browser, url: str, live: bool = True, **context_options):
    """The app in a fresh page; every request it makes is kept in ``page.requests``."""
    context = browser.new_context(
        **({"viewport": {"width": 1280, "height": 1000}} | context_options)
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(url)
    page.locator(CANVAS).wait_for(state="visible")
    if live:  # the models loaded and running in the page: ready to answer as you draw
        page.wait_for_function("() => globalThis.digitnetPads?.pad?.live === true")
    return page


def shown_label(page) -> str:
    """The big answer at the top of #label ("" when blank)."""
    headline = page.locator("#label h2")
    return headline.inner_text().strip() if headline.count() else ""


def wait_for_label(page, digit: int | None) -> None:
    """Wait until #label's headline is ``digit`` (None: no headline, a blank pad)."""
    expected = "" if digit is None else str(digit)
    try:
        page.wait_for_function(
            "expected => (document.querySelector('#label h2')?.textContent.trim() ?? '')"
            " === expected",
            arg=expected,
        )
    except sync_api.TimeoutError:
        pytest.fail(f"#label never showed {expected!r}; it shows {shown_label(page)!r}")


def wait_for_server_check(page, checked: int) -> str:
    """Wait for the server's check of the ``checked``-th drawing; return its text."""
    pattern = rf"agreed with the server's on \d+ of {checked} drawings"
    page.wait_for_function(
        "pattern => new RegExp(pattern).test(document.querySelector('#comparison')?.textContent"
        " ?? '')",
        arg=pattern,
    )
    return page.locator("#comparison").text_content()  # folded: shown text or not


def draw(page, digit: int, style: PenStyle = UPRIGHT) -> None:
    benchmark.draw_with_mouse(page, digit_strokes(digit, style))


def assert_offline(page) -> None:
    hosts = {urlparse(url).hostname for url in page.requests if url.startswith("http")}
    assert hosts == {"127.0.0.1"}, f"requests left this machine: {hosts}"


def assert_no_error_shown(page) -> None:
    assert page.locator(ERROR_TOASTS).count() == 0, page.locator(ERROR_TOASTS).all_inner_texts()


# ---------------------------------------------------------------------------


def test_the_answer_changes_before_the_pen_is_lifted(server, browser):
    page = open_app(browser, server)
    try:
        box = page.locator(CANVAS).bounding_box()
        scale = box["width"] / PAD_SIZE
        points = [
            (box["x"] + x * scale, box["y"] + y * scale) for x, y in digit_strokes(7, UPRIGHT)[0]
        ]
        seen, bars, inputs = [], [], []
        blank = (page.evaluate(SHOWN_BARS), page.evaluate(SHOWN_INPUT))  # nothing drawn yet
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=6)
            page.wait_for_timeout(120)  # a hand's pace: the page answers in between
            seen.append(shown_label(page))
            bars.append(page.evaluate(SHOWN_BARS))
            inputs.append(page.evaluate(SHOWN_INPUT))
        wait_for_label(page, 7)  # the whole 7, still with the button down
        changes = [label for i, label in enumerate(seen) if label and label != seen[i - 1]]
        bars.append(page.evaluate(SHOWN_BARS))
        inputs.append(page.evaluate(SHOWN_INPUT))
        page.mouse.up()
        assert len(changes) >= 2, f"the label did not change while drawing: {seen}"
        # The bars and the 28x28 follow the pen too: each showed two drawings (not blank)
        # before the pen was lifted.
        assert len(set(bars) - {blank[0]}) >= 2, "the bars did not change while drawing"
        assert len(set(inputs) - {blank[1]}) >= 2, "the 28x28 did not change while drawing"
        assert page.locator("#bars .bars-entry").count() == 2  # both models, side by side
        assert "MLP: 7" in page.locator("#bars").inner_text()
        assert "CNN: 7" in page.locator("#bars").inner_text()
        assert "agreed with the server's on 1 of 1" in wait_for_server_check(page, 1)
        assert_no_error_shown(page)
    finally:
        page.context.close()


def test_drawn_digits_are_read_and_the_dashboard_renders(server, browser):
    page = open_app(browser, server)
    try:
        assert shown_label(page) == ""
        assert "Draw a digit" in page.locator("#answer").inner_text()
        for index, digit in enumerate([7, 1, 0, 4, 2]):
            if index:
                page.click("#clear")
                wait_for_label(page, None)
            draw(page, digit)
            wait_for_label(page, digit)
            assert re.search(rf"It's a {digit}\b", page.locator("#answer").inner_text())
            text = wait_for_server_check(page, index + 1)
            assert f"on {index + 1} of {index + 1} drawings" in text  # no disagreement
        step_images = page.locator("#step-input img")
        assert step_images.count() == 1  # the server's pipeline strip

        screenshot = os.environ.get("DIGITNET_SCREENSHOT")
        if screenshot:
            page.screenshot(path=screenshot, full_page=True)

        page.get_by_role("tab", name="How it was trained").click()
        page.wait_for_function(
            "() => (document.querySelector('#card')?.innerText ?? '').includes('parameters')"
        )
        assert "MLP" in page.locator("#card").inner_text()
        for plot in ("#curves", "#confusion"):
            page.wait_for_selector(f"{plot} img, {plot} canvas, {plot} svg")
        page.wait_for_selector("#mistakes img")
        assert_offline(page)
        assert_no_error_shown(page)
    finally:
        page.context.close()


def test_undo_and_clear_by_button_and_by_key(server, browser):
    page = open_app(browser, server)
    try:
        draw(page, 4)  # two strokes
        wait_for_label(page, 4)
        page.click("#undo")  # the second stroke goes: the answer changes at once
        page.wait_for_function(
            "() => document.querySelector('#label h2')?.textContent.trim() !== '4'"
        )
        assert page.evaluate("() => digitnetPads.pad.value().strokes.length") == 1
        page.keyboard.press("Control+z")  # and the first
        wait_for_label(page, None)
        assert "Draw a digit" in page.locator("#answer").inner_text()
        draw(page, 7)
        wait_for_label(page, 7)
        page.keyboard.press("Escape")
        wait_for_label(page, None)
        draw(page, 1)
        wait_for_label(page, 1)
        page.click("#clear")
        wait_for_label(page, None)
        page.wait_for_function(  # the server hears of the clear too
            "() => document.querySelector('#step-input img') === null"
        )
        assert page.evaluate("() => digitnetPads.pad.value().strokes.length") == 0
    finally:
        page.context.close()


def test_choosing_the_cnn_shows_its_answer_at_once(server, browser):
    page = open_app(browser, server)
    try:
        draw(page, 3, PenStyle(180, (130, 150), -0.1))
        wait_for_label(page, 3)
        assert "agreed with the server's on 1 of 1" in wait_for_server_check(page, 1)
        legend = page.locator("#bars .bars-entry[data-model='CNN']").inner_text()
        cnn_percent = round(float(re.search(r"\(([\d.]+)%\)", legend).group(1)))
        page.get_by_label("CNN").check()
        page.wait_for_function(
            "percent => document.querySelector('#label .confidence-set dd')?.textContent.trim()"
            " === percent",
            arg=f"{cnn_percent}%",
        )
        wait_for_label(page, 3)
        page.get_by_role("tab", name="How it was trained").click()  # the dashboard follows
        page.wait_for_function(
            "() => (document.querySelector('#card')?.innerText ?? '').includes('CNN')"
        )
        page.get_by_role("tab", name="Draw", exact=True).click()
        assert "on 1 of 1 drawings" in page.locator("#comparison").text_content()  # not recounted
    finally:
        page.context.close()


def test_a_finger_on_a_phone_draws_a_7_with_the_answer_on_the_first_screen(server, browser):
    """CDP touch events on a 412x900 page: the page never scrolls (touch-action: none), and
    the pad and the answer are both in view while drawing."""
    page = open_app(
        browser,
        server,
        viewport={"width": 412, "height": 900},
        has_touch=True,
        is_mobile=True,
        device_scale_factor=2,
    )
    try:
        box = page.locator(CANVAS).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 900
        assert box["width"] >= 300  # most of the phone's width
        scale = box["width"] / PAD_SIZE
        points = [
            (box["x"] + x * scale, box["y"] + y * scale) for x, y in digit_strokes(7, UPRIGHT)[0]
        ]
        touch = page.context.new_cdp_session(page)

        def send(kind: str, x: float | None = None, y: float | None = None) -> None:
            touch_points = [] if x is None else [{"x": x, "y": y}]
            touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})

        send("touchStart", *points[0])
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            for i in range(1, 9):
                send("touchMove", x0 + (x1 - x0) * i / 8, y0 + (y1 - y0) * i / 8)
        wait_for_label(page, 7)  # the finger is still down
        # The answer in words (the ten probabilities' headline is for screen readers only).
        headline = page.locator("#answer").bounding_box()
        assert headline["y"] >= 0 and headline["y"] + headline["height"] <= 900, headline
        label = page.locator("#label").bounding_box()
        assert label["x"] >= 0 and label["x"] + label["width"] <= 412, label
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 412
        assert abs(box["width"] - box["height"]) <= 1, box  # the pad is square
        assert page.locator("#answer").is_visible()
        assert page.evaluate(UNCOVERED, ["#answer", "#answer"]), "something covers the answer"
        assert page.evaluate("() => window.scrollY") == 0
        send("touchEnd")
        assert "agreed with the server's on 1 of 1" in wait_for_server_check(page, 1)
        assert page.evaluate("() => window.scrollY") == 0
    finally:
        page.context.close()


def test_on_a_desktop_the_answer_sits_beside_the_pad(server, browser):
    page = open_app(browser, server, viewport={"width": 1280, "height": 900})
    try:
        draw(page, 7)
        wait_for_label(page, 7)
        pad = page.locator(CANVAS).bounding_box()
        label = page.locator("#label").bounding_box()
        assert label["x"] >= pad["x"] + pad["width"], (pad, label)  # to the right
        assert label["y"] < pad["y"] + pad["height"] and pad["y"] < label["y"] + label["height"]
        assert label["x"] + label["width"] <= 1280
        assert abs(pad["width"] - pad["height"]) <= 1, pad
        assert page.evaluate(UNCOVERED, ["#answer", "#answer"])
    finally:
        page.context.close()


def test_dark_theme_reads_a_7(server, browser):
    page = open_app(browser, server.rstrip("/") + "/?__theme=dark")
    try:
        assert page.evaluate("() => document.body.classList.contains('dark')")
        background = page.evaluate(
            "() => getComputedStyle(document.querySelector('#pad canvas')).backgroundColor"
        )
        red, green, blue = map(int, re.findall(r"\d+", background)[:3])
        assert red + green + blue < 3 * 100, f"the pad is not dark: {background}"
        draw(page, 7)
        wait_for_label(page, 7)
        assert re.search(r"It's a 7\b", page.locator("#answer").inner_text())
    finally:
        page.context.close()


def test_clicking_an_example_answers_it_and_drawing_starts_afresh(server, browser):
    page = open_app(browser, server)
    try:
        names = list(app.example_files())
        page.locator("#examples .thumbnail-item").nth(names.index("dark-canvas-3.png")).click()
        wait_for_label(page, 3)
        page.wait_for_function("() => document.querySelector('#step-input img') !== null")
        draw(page, 7)  # the example goes; the new drawing is answered
        wait_for_label(page, 7)
        assert "example" not in page.evaluate("() => digitnetPads.pad.value()")
    finally:
        page.context.close()


def test_the_models_load_once_then_from_the_browsers_cache(server, browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    network = context.new_cdp_session(page)
    network.send("Network.enable")
    fetched, cached = [], set()
    network.on(
        "Network.requestWillBeSent",
        lambda event: fetched.append((event["requestId"], event["request"]["url"])),
    )
    network.on(
        "Network.responseReceived",
        lambda event: event["response"].get("fromDiskCache") and cached.add(event["requestId"]),
    )
    try:
        for visit in range(2):
            fetched.clear()
            page.goto(server) if visit == 0 else page.reload()
            page.wait_for_function("() => globalThis.digitnetPads?.pad?.live === true")
            models = [rid for rid, url in fetched if ".safetensors" in url]
            assert len(models) == 2, fetched  # one request per model, the worker's included
            if visit == 1:
                for _ in range(100):  # their responses may still be on their way
                    if set(models) <= cached:
                        break
                    page.wait_for_timeout(100)
                assert set(models) <= cached, "the models were downloaded again"
    finally:
        context.close()


@pytest.mark.parametrize("blocked", ["**/*.safetensors*", "**/pipeline.js*"])
def test_the_server_answers_quietly_when_the_browser_cannot(server, browser, blocked):
    """Weights (or the pipeline) that fail to load: the pad still draws, and the server's
    answer shows after each stroke, with no error on the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.route(blocked, lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(server)
        page.locator(CANVAS).wait_for(state="visible")
        page.wait_for_timeout(1500)  # time for the models to (fail to) load
        assert page.evaluate("() => globalThis.digitnetPads?.pad?.live") is False
        draw(page, 7)
        wait_for_label(page, 7)
        assert re.search(r"It's a 7\b", page.locator("#answer").inner_text())
        assert "MLP: 7" in page.locator("#bars").inner_text()
        page.wait_for_function(
            "() => document.querySelector('#input28.view-empty, #input28 .view-empty') === null"
        )
        assert_no_error_shown(page)
    finally:
        context.close()


def test_mouse_drawn_digits_of_any_size_place_and_slant(server, browser):
    """The latency benchmark's quiet phase, on ten digits (the README's figures are its 30):
    each read in the page while drawn, and checked by the server."""
    phase = benchmark.run_phase(browser, server, "quiet", count=10, seed=0)
    assert phase.drawn == 10 and phase.missed == 0
    assert phase.right >= 9, f"{phase.right} of 10 read right"
    print(f"\nstroke -> answer: {benchmark.percentiles(phase.stroke_ms)}")

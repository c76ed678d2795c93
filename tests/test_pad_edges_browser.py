"""The pad at its edges, in headless Chromium: what happens when the drawing changes under the
pen (Undo, Clear, Esc, an example), when the pen leaves the pad or its release is missed, when
the page scrolls mid-stroke, at the server's limits, and after a model or theme switch.

    python -m pytest tests/test_pad_edges_browser.py -m browser

Skipped when Playwright or Chromium is missing.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import BROWSER_MARKS
from test_app_browser import (  # noqa: F401 (served and server are fixtures)
    CANVAS,
    TIMEOUT_MS,
    assert_no_error_shown,
    draw,
    open_app,
    served,
    server,
    sync_api,
    wait_for_label,
    wait_for_server_check,
)

import app
from digitnet.strokes import (
    BRUSH_RADIUS,
    MAX_LENGTH,
    MAX_POINTS,
    MAX_STROKES,
    PAD_SIZE,
    PenStyle,
    rasterize_strokes,
)

pytestmark = BROWSER_MARKS

FIRST_STROKE = [(60, 60), (140, 60), (220, 60)]  # a bar across the top


def open_pad(browser, url: str, **options):
    """open_app, keeping the page's uncaught errors in ``page.errors``."""
    page = open_app(browser, url, **options)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


def to_page(page, x: float, y: float) -> tuple[float, float]:
    """Pad units -> the page's CSS pixels (outside the pad too)."""
    box = page.locator(CANVAS).bounding_box()
    scale = box["width"] / PAD_SIZE
    return box["x"] + x * scale, box["y"] + y * scale


def pen_down(page, x: float, y: float) -> None:
    page.mouse.move(*to_page(page, x, y))
    page.mouse.down()


def pen_to(page, x: float, y: float, steps: int = 4) -> None:
    page.mouse.move(*to_page(page, x, y), steps=steps)


def draw_stroke(page, points) -> None:
    pen_down(page, *points[0])
    for point in points[1:]:
        pen_to(page, *point)
    page.mouse.up()


def strokes(page) -> list:
    return page.evaluate("() => digitnetPads.pad.value().strokes")


def page_ink(page, drawn) -> np.ndarray:
    """The browser's ink for ``drawn`` (pipeline.js, as the pad rasterises), float32."""
    ink = page.evaluate(
        "([strokes, size, radius]) =>"
        " Array.from(digitnetPipeline.rasterizeStrokes(strokes, size, radius))",
        [drawn, PAD_SIZE, BRUSH_RADIUS],
    )
    return np.array(ink, dtype=np.float32).reshape(PAD_SIZE, PAD_SIZE)


def assert_no_page_error(page) -> None:
    assert page.errors == [], page.errors


# --------------------------------------------------------------- the drawing changes mid-stroke


@pytest.mark.parametrize("action", ["undo key", "clear button", "escape"])
def test_undo_or_clear_in_the_middle_of_a_stroke(server, browser, action):  # noqa: F811
    """Undo removes the stroke in progress; Clear and Esc clear everything. Either way the
    pen draws nothing more until it is lifted, and then draws a new stroke as usual."""
    page = open_pad(browser, server)
    try:
        draw_stroke(page, FIRST_STROKE)
        first = strokes(page)
        assert len(first) == 1
        pen_down(page, 140, 100)
        pen_to(page, 140, 180)
        assert len(strokes(page)) == 2
        if action == "undo key":
            page.keyboard.press("Control+z")
        elif action == "clear button":  # another finger, or the other hand's mouse
            page.locator("#clear").dispatch_event("click")
        else:
            page.keyboard.press("Escape")
        expected = first if action == "undo key" else []
        assert strokes(page) == expected
        pen_to(page, 140, 250)  # the button is still down: these moves draw nothing
        pen_to(page, 220, 250)
        assert strokes(page) == expected, "the pen kept drawing after the drawing changed"
        page.mouse.up()
        assert_no_page_error(page)
        draw_stroke(page, [(40, 140), (120, 140)])
        after = strokes(page)
        assert len(after) == len(expected) + 1 and after[: len(expected)] == expected
        assert after[-1][0] == [40.0, 140.0]
        page.wait_for_function(  # the server heard of the last drawing, without complaint
            "n => digitnetPads.pad.value().strokes.length === n"
            " && document.querySelector('#comparison')?.textContent.includes('agreed')",
            arg=len(after),
        )
        assert_no_error_shown(page)
        assert_no_page_error(page)
    finally:
        page.context.close()


def test_an_example_picked_in_the_middle_of_a_stroke_replaces_it(server, browser):  # noqa: F811
    """An example picked (by keyboard, the mouse still down on the pad) becomes the drawing;
    the pen's later moves do not draw on it."""
    page = open_pad(browser, server)
    try:
        names = list(app.example_files())
        pen_down(page, 60, 60)
        pen_to(page, 200, 200)
        thumbnail = page.locator("#examples .thumbnail-item").nth(names.index("dark-canvas-3.png"))
        thumbnail.focus()
        page.keyboard.press("Enter")
        page.wait_for_function("() => digitnetPads.pad.value().example === 'dark-canvas-3.png'")
        wait_for_label(page, 3)
        pen_to(page, 60, 200)
        pen_to(page, 200, 60)
        page.mouse.up()
        page.wait_for_timeout(300)  # time for a stroke end to reach the server
        value = page.evaluate("() => digitnetPads.pad.value()")
        assert value["example"] == "dark-canvas-3.png" and value["strokes"] == []
        wait_for_label(page, 3)
        assert_no_page_error(page)
        assert_no_error_shown(page)
    finally:
        page.context.close()


# --------------------------------------------------------------- the pen leaves the pad


def test_a_stroke_that_leaves_the_pad_paints_no_ink_along_its_border(server, browser):  # noqa: F811
    """Out of the pad and back: the points outside are kept as they are (the ink stops at the
    edge), not pressed onto the edge; the browser's ink is Python's, and the server agrees."""
    page = open_pad(browser, server)
    try:
        path = [(150, 150), (250, 150), (340, 150), (340, 30), (340, 260), (-40, 260), (-40, 200)]
        pen_down(page, *path[0])
        for point in path[1:]:
            pen_to(page, *point, steps=12)
        page.mouse.up()
        (drawn,) = strokes(page)
        xs = [x for x, _ in drawn]
        assert max(xs) >= 330 and min(xs) <= -30, "points outside the pad were clamped"
        ink = page_ink(page, [drawn])
        assert np.array_equal(ink, rasterize_strokes([np.array(drawn)]))
        # Where the pen went down the right and left edges outside, no ink.
        assert ink[40:140, 265:].max() == 0 and ink[165:245, 265:].max() == 0
        assert ink[210:250, :15].max() == 0
        assert ink[150, 275] > 0 and ink[260, 100] > 0  # where it crossed, there is
        assert "agreed with the server's on 1 of 1" in wait_for_server_check(page, 1)
        assert_no_error_shown(page)
    finally:
        page.context.close()


# --------------------------------------------------------------- a missed release


@pytest.mark.parametrize("missed", ["window blur", "hidden tab", "move without a button"])
def test_a_missed_release_ends_the_stroke(server, browser, missed):  # noqa: F811
    """The pointer's release never reaches the page (the window loses focus, the tab is
    hidden, the button is let go outside the window): the stroke ends there, is sent to the
    server, and the pad does not keep drawing."""
    page = open_pad(browser, server)
    try:
        pen_down(page, 60, 60)
        pen_to(page, 200, 200)
        before = strokes(page)
        if missed == "window blur":
            page.evaluate("() => window.dispatchEvent(new Event('blur'))")
        elif missed == "hidden tab":
            page.evaluate(
                """() => { Object.defineProperty(document, 'visibilityState',
                               { value: 'hidden', configurable: true });
                           document.dispatchEvent(new Event('visibilitychange')); }"""
            )
        else:  # what Chromium sends when the button went up where the page did not see it
            x, y = to_page(page, 220, 220)
            page.evaluate(
                """([x, y]) => document.querySelector('#pad canvas').dispatchEvent(
                       new PointerEvent('pointermove', { pointerId: 1, pointerType: 'mouse',
                         isPrimary: true, buttons: 0, clientX: x, clientY: y, bubbles: true }))""",
                [x, y],
            )
        # Sent to the server with no pointerup (the mouse button is still down here).
        assert "agreed with the server's on 1 of 1" in wait_for_server_check(page, 1)
        pen_to(page, 60, 200)
        assert strokes(page) == before, "the pad kept drawing after the stroke ended"
        page.mouse.up()
        draw_stroke(page, [(40, 140), (120, 140)])
        assert len(strokes(page)) == 2
        assert_no_page_error(page)
    finally:
        page.context.close()


# --------------------------------------------------------------- scrolling, keys, Clear, theme


def test_scrolling_mid_stroke_keeps_the_pen_under_the_pointer(server, browser):  # noqa: F811
    page = open_pad(browser, server, viewport={"width": 1280, "height": 700})
    try:
        pen_down(page, 60, 60)
        pen_to(page, 100, 100)
        page.evaluate("() => window.scrollBy(0, 80)")
        page.wait_for_function("() => window.scrollY >= 40")
        pen_to(page, 200, 120)  # to_page reads where the pad is now
        page.mouse.up()
        (drawn,) = strokes(page)
        assert abs(drawn[-1][0] - 200) <= 1 and abs(drawn[-1][1] - 120) <= 1, drawn[-1]
    finally:
        page.context.close()


def test_ctrl_z_undoes_on_a_non_latin_keyboard_layout(server, browser):  # noqa: F811
    page = open_pad(browser, server)
    try:
        draw(page, 4)  # two strokes
        wait_for_label(page, 4)
        page.evaluate(  # Ctrl+Z on a Russian layout: the key is "я", the physical key Z
            """() => document.body.dispatchEvent(new KeyboardEvent('keydown',
                   { key: 'я', code: 'KeyZ', ctrlKey: true, bubbles: true, cancelable: true }))"""
        )
        assert len(strokes(page)) == 1
        page.evaluate(  # but Ctrl+; (Dvorak's key in Z's place) is not Undo there
            """() => document.body.dispatchEvent(new KeyboardEvent('keydown',
                   { key: ';', code: 'KeyZ', ctrlKey: true, bubbles: true, cancelable: true }))"""
        )
        assert len(strokes(page)) == 1
    finally:
        page.context.close()


def test_undo_right_after_clear_brings_the_drawing_back(server, browser):  # noqa: F811
    page = open_pad(browser, server)
    try:
        draw(page, 4)
        wait_for_label(page, 4)
        drawn = strokes(page)
        page.click("#clear")
        wait_for_label(page, None)
        page.click("#undo")
        wait_for_label(page, 4)
        assert strokes(page) == drawn
        page.keyboard.press("Escape")  # Clear, a stroke, Undo, Undo: the same
        wait_for_label(page, None)
        draw_stroke(page, [(40, 140), (120, 140)])
        page.keyboard.press("Control+z")
        assert strokes(page) == []
        page.keyboard.press("Control+z")
        assert strokes(page) == drawn
        page.keyboard.press("Control+z")  # and then stroke by stroke, as before
        assert strokes(page) == drawn[:1]
        page.wait_for_function(  # the 4's first stroke alone is answered
            "() => !['', '4'].includes(document.querySelector('#label h2')?.textContent.trim()"
            " ?? '')"
        )
    finally:
        page.context.close()


def test_the_ink_follows_a_theme_switch(server, browser):  # noqa: F811
    """The system theme switching (Gradio toggles body.dark): the strokes on the pad are
    repainted in the new theme's ink colour, so they stay visible."""
    page = open_pad(browser, server)
    try:
        draw_stroke(page, [(40, 140), (240, 140)])
        pixel = """() => { const canvas = document.querySelector('#pad canvas');
            const x = Math.round(canvas.width / 2), y = Math.round(canvas.height / 2);
            return Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data); }"""
        light = page.evaluate(pixel)
        assert sum(light[:3]) < 3 * 100 and light[3] == 255, light  # dark ink
        page.evaluate("() => document.body.classList.add('dark')")
        page.wait_for_function(f"() => ({pixel})().slice(0, 3).reduce((a, b) => a + b) > 450")
    finally:
        page.context.close()


# --------------------------------------------------------------- the server's limits


def test_the_pad_stops_at_the_servers_stroke_limit_and_says_so(server, browser):  # noqa: F811
    """More dots than the server takes, tapped along a 7 (pointer events sent in the page, as
    the browser sends them: 200 real clicks take minutes on a busy machine): the pad keeps
    MAX_STROKES of them and says it is full, until an Undo makes room."""
    page = open_pad(browser, server)
    try:
        hint = page.locator("#pad .pad-hint")
        assert not hint.is_visible()
        page.evaluate(
            """([box, size, count]) => {
                const canvas = document.querySelector('#pad canvas');
                const along = (a, b, t) => [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
                for (let i = 0; i < count; i++) {
                    const t = i / count;
                    const [x, y] = t < 0.37 ? along([80, 50], [200, 50], t / 0.37)
                                            : along([200, 50], [130, 240], (t - 0.37) / 0.63);
                    const at = { pointerId: 1, pointerType: 'mouse', isPrimary: true, button: 0,
                        clientX: box.x + x * box.width / size,
                        clientY: box.y + y * box.height / size, bubbles: true };
                    canvas.dispatchEvent(new PointerEvent('pointerdown', { ...at, buttons: 1 }));
                    canvas.dispatchEvent(new PointerEvent('pointerup', { ...at, buttons: 0 }));
                }
            }""",
            [page.locator(CANVAS).bounding_box(), PAD_SIZE, MAX_STROKES + 5],
        )
        assert len(strokes(page)) == MAX_STROKES
        assert hint.is_visible() and re.search(r"full.*Undo.*Clear", hint.inner_text())
        wait_for_label(page, 7)
        assert "agreed with the server's on 1 of 1" in wait_for_server_check(page, 1)
        assert_no_error_shown(page)  # the server took it
        page.click("#undo")  # room for a stroke again
        assert not hint.is_visible()
        page.mouse.click(*to_page(page, 260, 260))
        assert len(strokes(page)) == MAX_STROKES and hint.is_visible()
        assert_no_page_error(page)
    finally:
        page.context.close()


def test_the_pad_stops_at_the_servers_point_limit_and_says_so(server, browser):  # noqa: F811
    """A long scribble (the mouse down, then more moves than the server takes, sent as the
    browser sends them: a 7 traced back and forth): the pad keeps the first MAX_POINTS points
    and says it is full; the server answers it as the browser does."""
    page = open_pad(browser, server)
    try:
        pen_down(page, 80, 50)
        box = page.locator(CANVAS).bounding_box()
        page.evaluate(
            """([box, size, count]) => {
                const canvas = document.querySelector('#pad canvas');
                const along = (a, b, t) => [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
                for (let i = 1; i < count; i++) {
                    const k = i % 646 < 323 ? i % 646 : 646 - (i % 646);  // there and back
                    const [x, y] = k < 120 ? along([80, 50], [200, 50], k / 120)
                                           : along([200, 50], [130, 240], (k - 120) / 203);
                    canvas.dispatchEvent(new PointerEvent('pointermove', {
                        pointerId: 1, pointerType: 'mouse', isPrimary: true, buttons: 1,
                        clientX: box.x + x * box.width / size,
                        clientY: box.y + y * box.height / size, bubbles: true }));
                }
            }""",
            [box, PAD_SIZE, MAX_POINTS + 500],
        )
        page.mouse.up()
        assert sum(len(stroke) for stroke in strokes(page)) == MAX_POINTS
        assert page.locator("#pad .pad-hint").is_visible()
        wait_for_label(page, 7)
        assert "agreed with the server's on 1 of 1" in wait_for_server_check(page, 1)
        assert_no_error_shown(page)
        page.mouse.click(*to_page(page, 260, 260))  # no room for another dot
        assert sum(len(stroke) for stroke in strokes(page)) == MAX_POINTS
        assert_no_page_error(page)
    finally:
        page.context.close()


def test_the_pad_stops_at_the_servers_length_limit_and_says_so(server, browser):  # noqa: F811
    """Long strides corner to corner (~340 pad units each, as a wild scribble sends them):
    the pad stops before MAX_LENGTH units of stroke in all, says it is full, and the server
    takes the drawing without an error."""
    page = open_pad(browser, server)
    try:
        pen_down(page, 20, 20)
        page.evaluate(
            """([box, size, count]) => {
                const canvas = document.querySelector('#pad canvas');
                for (let i = 1; i < count; i++) {
                    const [x, y] = i % 2 ? [260, 260] : [20, 20];
                    canvas.dispatchEvent(new PointerEvent('pointermove', {
                        pointerId: 1, pointerType: 'mouse', isPrimary: true, buttons: 1,
                        clientX: box.x + x * box.width / size,
                        clientY: box.y + y * box.height / size, bubbles: true }));
                }
            }""",
            [page.locator(CANVAS).bounding_box(), PAD_SIZE, 2 * MAX_LENGTH // 340],
        )
        page.mouse.up()
        drawn = strokes(page)
        length = sum(
            float(np.hypot(*np.diff(np.asarray(stroke), axis=0).T).sum()) for stroke in drawn
        )
        assert 0.9 * MAX_LENGTH < length < MAX_LENGTH, length
        assert page.locator("#pad .pad-hint").is_visible()
        wait_for_server_check(page, 1)
        assert_no_error_shown(page)
        assert_no_page_error(page)
    finally:
        page.context.close()


# --------------------------------------------------------------- a model switch


# The answer's sentence alone: Gradio may put a progress timer ("0.3s") in the same block.
ANSWER_LINE_JS = (
    "((document.querySelector('#answer')?.innerText ?? '').match(/It's a .*/) ?? [''])[0]"
)


def answer_line(page) -> str:
    return page.evaluate(f"() => {ANSWER_LINE_JS}")


def test_switching_back_to_a_model_shows_its_answer_again(server, browser):  # noqa: F811
    """With the CNN's weights unreachable it answers from the server; switching back to the
    MLP, which answers in the browser, shows the MLP's answer again, not the CNN's."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.route(re.compile(r".*cnn.*\.safetensors.*", re.IGNORECASE), lambda r: r.abort())
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(server)
        page.wait_for_function("() => globalThis.digitnetPads?.pad?.live === true")
        # A narrow, slanted 3 the two models are not equally sure of (MLP ~89%, CNN ~98%):
        # calibrated, both say "99.9%" of a plain one, and the switch would show nothing.
        draw(page, 3, PenStyle(162, (142, 149), 0.34, 0.42))
        wait_for_label(page, 3)
        wait_for_server_check(page, 1)
        mlp_answer = answer_line(page)
        page.get_by_label("CNN").check()
        page.wait_for_function(f"mlp => {ANSWER_LINE_JS} !== mlp", arg=mlp_answer)
        cnn_answer = answer_line(page)
        assert re.search(r"It's a 3\b", cnn_answer), cnn_answer
        assert not page.evaluate("() => digitnetPads.pad.live")  # the CNN is the server's
        page.get_by_label("MLP").check()
        try:
            page.wait_for_function(f"mlp => {ANSWER_LINE_JS} === mlp", arg=mlp_answer)
        except sync_api.TimeoutError:
            shown = answer_line(page)
            pytest.fail(f"the MLP chosen again, the answer is {shown!r}, not {mlp_answer!r}")
    finally:
        context.close()

"""Measure the pad's stroke -> answer latency: digits drawn with the mouse in headless Chromium.

For each digit (0-9 in turn, each in a random size, place and slant; ``digitnet.strokes``),
or with ``--numbers`` each number of 2-4 digits (``digitnet.number_strokes.random_number``:
varied size, slant, baseline and gaps, some touching), the mouse draws the strokes, and the
page records (``scripts/latency_probe.js``) when each pen movement reached the pad and when
``#label`` first showed an answer that included it.
Prints, quiet and then while ``scripts/load_test.py`` loads the server's ``/classify``:

- stroke -> answer: from the last pen movement of a digit to the frame that shows its answer,
  painted, median and p90 (what you wait for after drawing); and to the moment the answer is
  in the page (its DOM), one step before painting;
- any move -> answer: the same (painted) for every pen movement while drawing;
- the server's check: from lifting the pen to the server's answer (under the bars);
- how many digits (numbers) were read right.

    python scripts/latency_benchmark.py                       # serve app.py in-process
    python scripts/latency_benchmark.py --digits 10 --no-load
    python scripts/latency_benchmark.py --numbers --no-load   # 30 numbers of 2-4 digits
    python scripts/latency_benchmark.py --url http://127.0.0.1:7860/

Only a server on this machine is ever targeted; Chromium is Debian's (``--chromium``).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout
from digitnet.machine import describe_machine  # noqa: E402
from digitnet.number_strokes import random_number  # noqa: E402
from digitnet.strokes import PAD_SIZE, digit_strokes, random_pen_style  # noqa: E402

PROBE_JS = Path(__file__).resolve().parent / "latency_probe.js"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MOVE_STEPS = 3  # mouse events between two points of a template: a brisk hand
TIMEOUT_MS = 20_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="a running app here (default: serve one)")
    parser.add_argument(
        "--digits", type=int, default=30, help="digits (or numbers) per phase (default: 30)"
    )
    parser.add_argument(
        "--numbers", action="store_true", help="draw numbers of 2-4 digits, not single digits"
    )
    parser.add_argument("--seed", type=int, default=0, help="sizes, places and slants' seed")
    parser.add_argument("--no-load", action="store_true", help="skip the phase under load")
    parser.add_argument("--clients", type=int, default=20, help="load_test.py clients (default 20)")
    parser.add_argument(
        "--chromium", default=os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium")
    )
    parser.add_argument(
        "--data",
        default=str(REPO / "assets" / "mnist-train-8k.csv.gz"),
        help="digits load_test.py renders and sends",
    )
    args = parser.parse_args(argv)
    if args.digits < 1:
        parser.error("--digits must be at least 1")
    if args.url and urlparse(args.url).hostname not in LOCAL_HOSTS:
        parser.error("--url must point at this machine")
    return args


@dataclass
class Phase:
    """One run of digits: latencies in ms and what was read."""

    name: str
    kind: str = "digits"  # what was drawn: "digits" or "numbers"
    stroke_ms: list[float] = field(default_factory=list)  # to the painted frame
    stroke_dom_ms: list[float] = field(default_factory=list)  # to the answer in the DOM
    move_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    right: int = 0
    drawn: int = 0
    checks: str = ""  # the server's tally of its checks of the browser's answers
    missed: int = 0  # drawings whose final answer never showed (a failure, not a latency)


def open_pad(browser, url: str):
    """The app in a fresh page, its pad answering in the browser, with the probe injected."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_function("() => globalThis.digitnetPads?.pad?.live === true")
    page.add_script_tag(path=str(PROBE_JS))
    return page


def draw_with_mouse(page, strokes, steps: int = MOVE_STEPS) -> None:
    """Strokes in pad units, drawn with the mouse on #pad's canvas."""
    canvas = page.locator("#pad canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    scale = box["width"] / PAD_SIZE
    for stroke in strokes:
        points = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=steps)
        page.mouse.up()


def clear_pad(page) -> None:
    page.click("#clear")
    page.wait_for_function("() => !document.querySelector('#label h2')")


def measure_drawing(page, strokes, text: str, phase: Phase) -> None:
    """Draw ``strokes`` (a digit or a number whose answer should be ``text``) and record."""
    clear_pad(page)
    page.evaluate(
        "() => { const p = digitnetProbe; p.inputs.length = p.shown.length = 0;"
        " p.serverChecks.length = p.ups.length = 0; }"
    )
    draw_with_mouse(page, strokes)
    # Done when the last movement's answer is painted and the server has checked this drawing
    # (its tally counts it: an earlier reply, to the clear, say, does not count).
    checked = f"of {phase.drawn + 1} drawings"
    page.wait_for_function(
        """(checked) => { const p = digitnetProbe; const last = p.inputs[p.inputs.length - 1];
        const up = p.ups[p.ups.length - 1];
        return p.shown.some((s) => s.version >= last.version && s.painted !== null)
          && p.serverChecks.some((c) => c.t > up.t && c.text.includes(checked)); }""",
        arg=checked,
        timeout=TIMEOUT_MS,
    )
    probe = page.evaluate("() => digitnetProbe")
    phase.drawn += 1

    def shown_after(entry, when: str = "painted") -> float | None:
        shown = [s for s in probe["shown"] if s["version"] >= entry["version"] and s[when]]
        return min(s[when] for s in shown) - entry["t"] if shown else None

    last = probe["inputs"][-1]
    latency = shown_after(last)
    if latency is None:
        phase.missed += 1
    else:
        phase.stroke_ms.append(latency)
        phase.stroke_dom_ms.append(shown_after(last, "t"))
    phase.move_ms.extend(m for m in map(shown_after, probe["inputs"]) if m is not None)
    up = probe["ups"][-1]["t"]
    checks = [c for c in probe["serverChecks"] if c["t"] > up and checked in c["text"]]
    phase.server_ms.append(checks[0]["t"] - up)
    if len(text) == 1:
        phase.right += page.locator("#label h2").inner_text().strip() == text
    else:  # a number: its words ("It's 42 (99.9% sure)"), which show it whoever answered
        answer = page.locator("#answer").inner_text()
        phase.right += re.match(rf"(It's|Not sure: maybe) {text}\b", answer) is not None
    tally = re.search(r"agreed with the server's on (\d+ of \d+)", checks[0]["text"])
    phase.checks = tally.group(1) if tally else "none"


def run_phase(browser, url: str, name: str, count: int, seed: int, numbers: bool = False) -> Phase:
    """``count`` digits (0-9 in turn), or numbers of 2-4 digits, drawn one after another."""
    phase = Phase(name, kind="numbers" if numbers else "digits")
    page = open_pad(browser, url)
    rng = np.random.default_rng(seed)
    try:
        for index in range(count):
            if numbers:
                number = random_number(rng)
                measure_drawing(page, number.strokes, number.text, phase)
            else:
                strokes = digit_strokes(index % 10, random_pen_style(rng))
                measure_drawing(page, strokes, str(index % 10), phase)
    finally:
        page.close()
    return phase


def start_load(url: str, clients: int, data: str) -> subprocess.Popen:
    """scripts/load_test.py against /classify until stopped (SIGINT makes it report)."""
    command = [
        sys.executable,
        str(REPO / "scripts" / "load_test.py"),
        "--url",
        url,
        "--clients",
        str(clients),
        "--requests",
        "1000000",
        "--max-seconds",
        "3600",
        "--drawings",
        "100",
        "--data",
        data,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_load(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {np.median(values):.0f} ms, p90 {np.percentile(values, 90):.0f} ms"


def report(phase: Phase) -> None:
    print(f"\n{phase.name}: {phase.drawn} {phase.kind} drawn with the mouse")
    print(f"  stroke -> answer:    {percentiles(phase.stroke_ms)} (painted)")
    print(f"                       {percentiles(phase.stroke_dom_ms)} (in the page's DOM)")
    print(f"  any move -> answer:  {percentiles(phase.move_ms)} ({len(phase.move_ms)} moves)")
    print(f"  server's check:      {percentiles(phase.server_ms)} after lifting the pen")
    print(f"  read right:          {phase.right} of {phase.drawn}")
    print(f"  browser = server:    on {phase.checks} drawings (the server's check)")
    if phase.missed:
        print(f"  no answer shown:     {phase.missed} {phase.kind}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from playwright.sync_api import sync_playwright

    demo = None
    url = args.url
    if url is None:
        import torch

        import app

        torch.set_num_threads(1)  # as app.main() does
        demo, url = app.serve_in_background(*app.load_models())
    phases: list[Phase] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True
            )
            print(f"machine:  {describe_machine()}")
            print(f"browser:  headless Chromium {browser.version} (--disable-gpu)")
            print(f"app:      {url}")
            phases.append(run_phase(browser, url, "quiet", args.digits, args.seed, args.numbers))
            report(phases[-1])
            if not args.no_load:
                load = start_load(url, args.clients, args.data)
                time.sleep(5)  # rendering the drawings, then the clients start
                try:
                    name = f"under load ({args.clients} clients on /classify)"
                    phases.append(
                        run_phase(browser, url, name, args.digits, args.seed, args.numbers)
                    )
                finally:
                    output = stop_load(load)
                report(phases[-1])
                print("  the load, as scripts/load_test.py reported it:")
                for line in output.strip().splitlines():
                    if line.split(":")[0] in ("load", "throughput", "latency", "errors"):
                        print(f"    {line}")
            browser.close()
    finally:
        if demo is not None:
            demo.close()
    return 0 if all(not phase.missed for phase in phases) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Measure reading numbers and small digits from pad strokes (digitnet.numbers).

Prints the machine first, then:

- numbers: generated numbers of 2-4 digits (each 50-140 pad units wide; varied size, slant,
  baseline and gaps; touching pairs; two-stroke 5s; a digit drawn last in the middle) read
  by ``read_strokes``: how many come back exactly right, and the digits found;
- small digits: single digits at 6-12% of the pad's height (and the other bands of the
  issue) anywhere on the pad, read with the brush scaled to the digit and, for comparison,
  with the screen's brush (today's single-digit path);
- touching pairs: ``--touching`` numbers that each have two digits whose strokes touch,
  read by ``read_strokes``: exactly right, and how many readings say they are unsure;
- with ``--mnist``, single MNIST test digits drawn as a person would on a canvas
  (``drawings.render_drawings``) and split by ``number_images.split_image``: how many are
  split into several digits (a wide digit cut, or a digit in separate pieces of ink), and
  how many are flagged unsure (as wide as two digits);
- the time per read: median and p90 of ``read_strokes`` here, and with ``--browser`` of
  pipeline.js's ``readNumber`` in headless Chromium (the pad's work every frame);
- with ``--url``, the same numbers sent to a served app's ``read`` endpoint (gradio_client),
  as a program would: how many come back exactly right, and the time per call.

    python scripts/numbers_benchmark.py
    python scripts/numbers_benchmark.py --model cnn --numbers 200 --browser
    python scripts/numbers_benchmark.py --touching 300 --mnist 10000
    python app.py --port 7860 &  python scripts/numbers_benchmark.py --url http://127.0.0.1:7860/
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout
from digitnet.checkpoint import load_checkpoint  # noqa: E402
from digitnet.machine import describe_machine  # noqa: E402
from digitnet.number_strokes import random_number  # noqa: E402
from digitnet.numbers import read_strokes  # noqa: E402
from digitnet.predict import classify_preprocessed  # noqa: E402
from digitnet.preprocess import canvas_to_mnist  # noqa: E402
from digitnet.strokes import digit_strokes, pen_style_between, rasterize_strokes  # noqa: E402

SMALL_BANDS = ((0.06, 0.12), (0.12, 0.18), (0.18, 0.24), (0.25, 0.31))  # share of the pad
CHROMIUM = "/usr/bin/chromium"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", help="shipped name or path (default: mlp)")
    parser.add_argument("--numbers", type=int, default=50, help="numbers to read (default 50)")
    parser.add_argument("--small", type=int, default=30, help="digits per size band (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="the drawings' seed (default 0)")
    parser.add_argument(
        "--touching", type=int, default=100, help="numbers with a touching pair (default 100)"
    )
    parser.add_argument(
        "--mnist", type=int, default=0, help="MNIST test digits to split (default 0: none)"
    )
    parser.add_argument("--browser", action="store_true", help="also time readNumber in Chromium")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"Chromium (default {CHROMIUM})")
    parser.add_argument("--url", help="also read the numbers through this served app's read API")
    parser.add_argument(
        "--choice", default="MLP", help="the served model to read with --url (default MLP)"
    )
    return parser.parse_args(argv)


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, 100 * share))


def generated_numbers(count: int, seed: int) -> list:
    """The numbers every measure here reads: 2-4 digits, as ``random_number`` draws them."""
    rng = np.random.default_rng(seed)
    return [random_number(rng) for _ in range(count)]


def bench_numbers(model, count: int, seed: int) -> tuple[list, list[float]]:
    """Generated numbers read with ``read_strokes``: their drawings and the seconds each."""
    numbers = generated_numbers(count, seed)
    right = digits_right = digits = 0
    times = []
    for number in numbers:
        start = time.perf_counter()
        text = read_strokes(model, number.strokes).text
        times.append(time.perf_counter() - start)
        right += text == number.text
        digits += len(number.text)
        digits_right += len(text) == len(number.text) and sum(
            a == b for a, b in zip(text, number.text)
        )
    touching = sum(number.touching for number in numbers)
    print(
        f"numbers: {right}/{count} exactly right ({touching} with touching digits); "
        f"digits right where the count was: {digits_right}/{digits}"
    )
    return [number.strokes for number in numbers], times


def bench_touching(model, count: int, seed: int) -> None:
    """Numbers with two digits whose strokes touch: how many read right, how many unsure."""
    rng = np.random.default_rng(seed + 1)
    right = unsure = counted = 0
    for _ in range(count):
        number = random_number(rng, touching=1.0)
        reading = read_strokes(model, number.strokes)
        right += reading.text == number.text
        counted += len(reading.text) == len(number.text)
        unsure += reading.touching
    print(
        f"touching pairs: {right}/{count} numbers exactly right, {counted}/{count} with the "
        f"right count of digits; {unsure} said to be unsure (two digits may touch)"
    )


def bench_mnist_split(count: int) -> None:
    """Single MNIST test digits, drawn as on a canvas: how many the split takes for two."""
    from digitnet.data import load_mnist
    from digitnet.drawings import render_drawings
    from digitnet.number_images import split_image

    digits = load_mnist("test")
    count = min(count, len(digits))
    cut = pieces = unsure = 0
    for start in range(0, count, 500):
        stop = min(count, start + 500)
        for image in render_drawings(digits.images[start:stop], seed=start):
            found = split_image(image)
            several = len(found) > 1
            cut += several and any(digit.cut for digit in found)
            pieces += several and not any(digit.cut for digit in found)
            unsure += not several and found[0].unsure
    print(
        f"MNIST test digits drawn on a canvas: {cut + pieces}/{count} split into several "
        f"digits ({cut} cut as too wide, {pieces} in separate pieces of ink); {unsure} left "
        f"whole but flagged unsure (as wide as two digits)"
    )


def bench_small_digits(model, count: int, seed: int) -> None:
    """Single digits in each size band, scaled brush against the screen's."""
    for low, high in SMALL_BANDS:
        rng = np.random.default_rng(seed)
        scaled = screen = 0
        for index in range(count):
            drawing = digit_strokes(index % 10, pen_style_between(rng, low, high))
            scaled += read_strokes(model, drawing).text == str(index % 10)
            ink = rasterize_strokes([np.array(stroke) for stroke in drawing])
            screen += classify_preprocessed(model, canvas_to_mnist(ink)).label == index % 10
        print(
            f"small digits at {100 * low:.0f}-{100 * high:.0f}% of the pad: {scaled}/{count} "
            f"right with the scaled brush, {screen}/{count} with the screen's"
        )


def bench_browser(model, metadata, drawings: list, chromium: str) -> list[float] | None:
    """Milliseconds per pipeline.js readNumber (the MLP) in headless Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser: Playwright is not installed; skipped")
        return None
    from digitnet.export import web_bytes
    from digitnet.ui.static_files import STATIC_DIR

    data = base64.b64encode(web_bytes(model, metadata)).decode()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        page = browser.new_page()
        page.set_content("<!doctype html><html><body></body></html>")
        page.add_script_tag(path=str(STATIC_DIR / "pipeline.js"))
        times = page.evaluate(
            """([data, all]) => {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                const model = digitnetPipeline.parseWebModel(bytes.buffer);
                for (const strokes of all.slice(0, 5)) digitnetPipeline.readNumber(model, strokes);
                return all.map((strokes) => {
                    const start = performance.now();
                    digitnetPipeline.readNumber(model, strokes);
                    return performance.now() - start;
                });
            }""",
            [data, drawings],
        )
        browser.close()
    return times


def bench_served(url: str, choice: str, count: int, seed: int) -> None:
    """The same numbers through a served app's ``read`` endpoint, as a program calls it."""
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False)
    right, times, wrong = 0, [], []
    for number in generated_numbers(count, seed):
        start = time.perf_counter()
        text = client.predict({"strokes": number.strokes}, choice, api_name="/read")["text"]
        times.append(time.perf_counter() - start)
        right += text == number.text
        if text != number.text:
            wrong.append(f"{number.text}->{text or '(blank)'}")
    print(
        f"numbers through {url} read ({choice}): {right}/{count} exactly right; "
        f"median {1000 * statistics.median(times):.0f} ms per call"
        + (f"; wrong: {', '.join(wrong)}" if wrong else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {describe_machine()}")
    model, metadata = load_checkpoint(args.model)
    print(
        f"config: model={args.model} numbers={args.numbers} touching={args.touching} "
        f"small={args.small} mnist={args.mnist} seed={args.seed}"
    )
    drawings, times = bench_numbers(model, args.numbers, args.seed)
    bench_touching(model, args.touching, args.seed)
    bench_small_digits(model, args.small, args.seed)
    if args.mnist:
        bench_mnist_split(args.mnist)
    print(
        f"read_strokes (Python): median {1000 * statistics.median(times):.1f} ms, "
        f"p90 {1000 * percentile(times, 0.9):.1f} ms per number"
    )
    if args.url:
        bench_served(args.url, args.choice, args.numbers, args.seed)
    if args.browser:
        browser_times = bench_browser(model, metadata, drawings, args.chromium)
        if browser_times:
            print(
                f"readNumber (Chromium, MLP): median {statistics.median(browser_times):.1f} ms, "
                f"p90 {percentile(browser_times, 0.9):.1f} ms per number"
            )
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())

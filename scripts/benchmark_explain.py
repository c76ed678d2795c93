"""Benchmark the "Why" answer: how long one drawing takes to explain, with its image.

For each shipped model, canvas-like renders of validation digits (digits the models never
trained on) go through what an explain endpoint does per request: preprocessing
(``canvas_to_mnist``), ``explain`` (integrated gradients, input gradient, occlusion,
runner-up, first-layer units or feature maps), the saliency overlay image and the JSON.

    python scripts/benchmark_explain.py            # 10 drawings x 5 rounds per model
    python scripts/benchmark_explain.py --quick    # a smoke run: no useful figures
    python scripts/benchmark_explain.py --endpoint # the app's real ``explain`` endpoint

``--endpoint`` serves the whole app in-process and times each request over Gradio's
REST API, as an API user sends it: the drawing's PNG uploaded, explained, the overlay
image and JSON sent back and the image downloaded. ``classify`` (ten probabilities, no
explanation) is timed the same way beside it: the HTTP and queue cost every request pays.

Prints the machine, then p50 and p95 milliseconds per model, with the median of each part.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from digitnet.checkpoint import ASSETS_DIR, load_checkpoint  # noqa: E402
from digitnet.data import load_training_data, stratified_split  # noqa: E402
from digitnet.drawings import render_drawings  # noqa: E402
from digitnet.explain import explain  # noqa: E402
from digitnet.machine import describe_machine  # noqa: E402
from digitnet.preprocess import canvas_to_mnist  # noqa: E402

DEFAULT_DATA = ASSETS_DIR / "mnist-train-8k.csv.gz"
DRAWINGS = 10  # the figure: 10 drawings, each answered with an image
ROUNDS = 5  # each drawing is timed this many times, for steadier percentiles
WARM_UP = 2  # drawings explained first and not timed (lazy allocations, caches)
# The shipped models' validation split: val_fraction 0.1, seed 0.
VAL_FRACTION, SPLIT_SEED = 0.1, 0


@dataclass(frozen=True)
class ExplainTiming:
    """Milliseconds for one model over all timed requests."""

    model: str
    requests: int
    p50: float  # whole request: preprocess + explain + overlay + JSON
    p95: float
    preprocess_p50: float
    explain_p50: float
    overlay_p50: float
    json_p50: float


def validation_drawings(data: Path, count: int, seed: int = 1) -> list[np.ndarray]:
    """``count`` canvas-like renders of validation digits, as RGB/RGBA arrays."""
    digits = load_training_data(data)
    _, validation = stratified_split(digits.labels, VAL_FRACTION, SPLIT_SEED)
    renders = render_drawings(digits.images[validation[:count]], seed=seed)
    return [np.asarray(image) for image in renders]


def explain_request(model: torch.nn.Module, drawing: np.ndarray) -> list[float]:
    """One endpoint request; returns the milliseconds of each of its four parts."""
    start = time.perf_counter()
    preprocessed = canvas_to_mnist(drawing)
    preprocessed_at = time.perf_counter()
    explanation = explain(model, preprocessed)
    explained_at = time.perf_counter()
    explanation.overlay()
    overlaid_at = time.perf_counter()
    json.dumps(explanation.to_json(tiles=False))  # as the endpoint sends it
    done_at = time.perf_counter()
    marks = (start, preprocessed_at, explained_at, overlaid_at, done_at)
    return [1000 * (end - begin) for begin, end in zip(marks[:-1], marks[1:])]


def bench_explain(
    models: dict[str, torch.nn.Module], drawings: list[np.ndarray], rounds: int
) -> list[ExplainTiming]:
    """p50/p95 of whole requests and the median of each part, per model."""
    results = []
    for name, model in models.items():
        for drawing in drawings[:WARM_UP]:
            explain_request(model, drawing)
        parts = np.array(
            [explain_request(model, drawing) for _ in range(rounds) for drawing in drawings]
        )  # (requests, 4)
        totals = parts.sum(axis=1)
        p50, p95 = np.percentile(totals, [50, 95])
        medians = [statistics.median(column) for column in parts.T]
        results.append(ExplainTiming(name, len(totals), float(p50), float(p95), *medians))
        print(f"  {name}: {len(totals)} requests, p50 {p50:.1f} ms", flush=True)
    return results


@dataclass(frozen=True)
class EndpointTiming:
    """Milliseconds per request through HTTP, for one model and endpoint."""

    model: str
    endpoint: str
    requests: int
    p50: float
    p95: float


def call_endpoint(http, api: str, png: bytes, choice: str, session: str) -> dict | list:
    """One request as an API user sends it, over Gradio's REST API: upload the PNG, call
    the endpoint in the client's ``session`` (as gradio_client does: a new session per call
    costs Gradio ~40 ms of set-up in this app), read its answer from the event stream as
    soon as it completes, and download any image it returns."""
    uploaded = http.post("/gradio_api/upload", files={"files": ("drawing.png", png)})
    file_data = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}
    body = {"data": [file_data, choice], "session_hash": session}
    event = http.post(f"/gradio_api/call/{api}", json=body)
    outputs, kind = None, None
    with http.stream("GET", f"/gradio_api/call/{api}/{event.json()['event_id']}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:") and kind in ("complete", "error"):
                if kind == "error":
                    raise RuntimeError(f"/{api} failed: {line[:200]}")
                outputs = json.loads(line.partition(":")[2])
                break
    if outputs is None:
        raise RuntimeError(f"/{api}: the event stream ended without a result")
    if api == "explain":
        image = http.get(outputs[0]["url"]).content
        if not image.startswith(b"\x89PNG"):
            raise RuntimeError("/explain sent back no PNG overlay")
    return outputs


def bench_endpoint(
    model_names: list[str], drawings: list[np.ndarray], rounds: int
) -> list[EndpointTiming]:
    """Time the app's ``explain`` endpoint (and ``classify``, the HTTP floor) over HTTP
    against the whole app served in-process."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import httpx
    from PIL import Image

    import app

    models, warnings = app.load_models()
    labels = {name.lower(): label for label, name in app.SHIPPED.items()}  # mlp -> MLP
    pngs = []
    for drawing in drawings:
        buffer = io.BytesIO()
        Image.fromarray(drawing).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    demo, url = app.serve_in_background(models, warnings)
    results = []
    try:
        session = uuid.uuid4().hex[:11]  # one client, one session, as gradio_client has
        with httpx.Client(base_url=url, timeout=60) as http:
            for name in model_names:
                choice = labels.get(name, name)
                for api in ("classify", "explain"):
                    for png in pngs[:WARM_UP]:
                        call_endpoint(http, api, png, choice, session)
                    times = []
                    for _ in range(rounds):
                        for png in pngs:
                            start = time.perf_counter()
                            call_endpoint(http, api, png, choice, session)
                            times.append(1000 * (time.perf_counter() - start))
                    p50, p95 = np.percentile(times, [50, 95])
                    results.append(EndpointTiming(name, api, len(times), float(p50), float(p95)))
                    print(f"  {name} /{api}: {len(times)} requests, p50 {p50:.1f} ms", flush=True)
    finally:
        demo.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA), help="labelled digits (Kaggle CSV, IDX or folder)"
    )
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], help="checkpoints")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 drawings, 1 round: checks the script runs, gives no useful figures",
    )
    parser.add_argument(
        "--endpoint",
        action="store_true",
        help="time the app's explain endpoint over HTTP (in-process server), beside classify",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the app serves: one thread a request
    machine_line = describe_machine()
    print(f"machine: {machine_line}", flush=True)
    count, rounds = (3, 1) if args.quick else (DRAWINGS, ROUNDS)
    drawings = validation_drawings(Path(args.data), count)
    if args.endpoint:
        return print_endpoint(
            bench_endpoint(args.models, drawings, rounds), machine_line, count, rounds
        )
    models = {name: load_checkpoint(name)[0] for name in args.models}
    timings = bench_explain(models, drawings, rounds)

    print()
    print(
        f"machine: {machine_line}; {count} validation drawings x {rounds} rounds, "
        f"1 thread, as the app serves"
    )
    print(
        "| explain one drawing (ms) | p50 | p95 | preprocess p50 | explain p50 "
        "| overlay p50 | JSON p50 |"
    )
    print("|---|---|---|---|---|---|---|")
    for t in timings:
        print(
            f"| {t.model} | {t.p50:.1f} | {t.p95:.1f} | {t.preprocess_p50:.1f} | "
            f"{t.explain_p50:.1f} | {t.overlay_p50:.1f} | {t.json_p50:.1f} |"
        )
    return 0


def print_endpoint(
    timings: list[EndpointTiming], machine_line: str, count: int, rounds: int
) -> int:
    print()
    print(
        f"machine: {machine_line}; {count} validation drawings x {rounds} rounds through "
        f"HTTP (Gradio's REST API, server in-process, 1 torch thread)"
    )
    print("| one drawing over HTTP (ms) | endpoint | p50 | p95 |")
    print("|---|---|---|---|")
    for t in timings:
        print(f"| {t.model} | /{t.endpoint} | {t.p50:.1f} | {t.p95:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

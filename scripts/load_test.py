"""Load-test the app's ``classify`` endpoint with canvas-like drawings from many clients.

Renders distinct drawings of validation digits (any size and place, hard strokes; white,
dark and transparent canvases) as PNG files, then sends them from concurrent clients, each
a thread with its own HTTP connection, until ``--requests`` are done or
``--max-seconds`` have passed. Prints requests per second, p50/p95 latency, errors and
accuracy, and the machine it ran on.

    python app.py &                                   # then, from another shell:
    python scripts/load_test.py --clients 20 --requests 200
    python scripts/load_test.py --serve --clients 1 --requests 100   # serve in-process
    python scripts/load_test.py --client gradio   # one gradio_client.Client per thread
    python scripts/load_test.py --client http-no-session gradio --baseline   # against bare Gradio

Ctrl-C stops sending and reports what was measured so far.

``--baseline`` also measures a bare Gradio endpoint of ``classify``'s shape (an image file and
a model choice in, a JSON out, the same handler and models, nothing else in its Blocks),
served by a process of its own as ``python app.py`` is, with the same clients and drawings,
right before the app, and prints the app's throughput as a fraction of it.

``--client http`` (the default) sends the requests through Gradio's documented REST API
(upload, ``/call/classify``, read the event stream) with one keep-alive ``httpx.Client`` per
client thread, so the figures measure the server. ``--client gradio`` uses ``gradio_client``,
as the README's API example does; it costs the client machine ~90 ms of CPU per request (a new
TLS context per upload, 50 ms polling), so on a small machine running clients and server
together it measures mostly itself.

Only a server on this machine (127.0.0.1 / localhost) is ever targeted.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout
from digitnet.data import SAMPLE_DATA, load_training_data  # noqa: E402
from digitnet.drawings import render_drawings  # noqa: E402
from digitnet.machine import describe_machine  # noqa: E402
from digitnet.train import TrainConfig  # noqa: E402

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--url",
        default="http://127.0.0.1:7860/",
        help="a running app on this machine (default: %(default)s)",
    )
    target.add_argument(
        "--serve", action="store_true", help="serve app.py in-process on a free port instead"
    )
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=200, help="requests in all")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="stop sending after this long, done or not"
    )
    parser.add_argument(
        "--drawings",
        type=int,
        default=200,
        help="distinct drawings to send, cycled (default: %(default)s)",
    )
    parser.add_argument(
        "--data",
        default=str(SAMPLE_DATA),
        help="labelled digits (default: $DIGITNET_DATA, else the sample in assets/); "
        "their validation split is drawn",
    )
    parser.add_argument("--model", default=None, help="the app's model choice (default: its own)")
    parser.add_argument("--seed", type=int, default=0, help="drawing styles' seed")
    parser.add_argument(
        "--client",
        nargs="+",
        choices=("gradio", "http", "http-no-session"),
        default=["http"],
        help="gradio_client.Client, or plain HTTP keeping one session per client, or plain "
        "HTTP without a session (what curl following Gradio's REST docs sends); several are "
        "measured one after the other (default: http)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also measure a bare Gradio endpoint of the same shape, and print the ratio",
    )
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("clients", "requests", "drawings"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not args.serve:
        host = urlparse(args.url).hostname
        if host not in LOCAL_HOSTS:
            parser.error(
                f"--url must point at this machine ({', '.join(sorted(LOCAL_HOSTS))}), not {host!r}"
            )
    return args


def write_drawings(data: str, count: int, seed: int, folder: Path) -> list[tuple[Path, int]]:
    """``count`` canvas-like PNG drawings of validation digits, with their labels."""
    digits = load_training_data(data)
    config = TrainConfig()  # the split the shipped models were validated on
    _, val_index = config.split(digits.labels)
    rows = val_index[np.random.default_rng(seed).permutation(len(val_index))[:count]]
    files = []
    for index, (image, row) in enumerate(zip(render_drawings(digits.images[rows], seed), rows)):
        label = int(digits.labels[row])
        path = folder / f"{index:04d}-{label}.png"
        image.save(path)
        files.append((path, label))
    return files


def serve() -> tuple[str, object]:
    """app.py's demo on 127.0.0.1 and a free port, as ``python app.py`` would serve it."""
    import torch

    import app

    torch.set_num_threads(1)  # as app.main() does
    models, warnings = app.load_models()
    if not models:
        sys.exit("error: no model could be loaded: " + "; ".join(warnings))
    demo, url = app.serve_in_background(models, warnings)
    return url, demo


def bare_classify_demo():
    """A bare Gradio endpoint of ``classify``'s shape: file and model in, JSON out, with the
    app's own handler, models and queue settings; nothing else in its Blocks."""
    import gradio as gr

    import app
    from digitnet.ui.draw_tab import make_draw_handlers

    models, warnings = app.load_models()
    if not models:
        sys.exit("error: no model could be loaded: " + "; ".join(warnings))
    handlers = make_draw_handlers(models, app.example_files())
    with gr.Blocks() as demo:
        upload = gr.File(label="An image of a digit", file_types=["image"])
        choice = gr.Radio(list(models), value=next(iter(models)), label="Model")
        answer = gr.JSON(label="Answer")
        upload.change(
            handlers.classify, [upload, choice], answer, api_name="classify", concurrency_limit=4
        )
    demo.queue(default_concurrency_limit=4, max_size=256)
    return demo


def serve_bare() -> int:
    """``--bare-server``: serve the bare endpoint on a free port, print its URL, serve on."""
    import torch

    torch.set_num_threads(1)  # as app.main() does
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = bare_classify_demo()
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        show_error=True,
    )
    print(url, flush=True)
    demo.block_thread()  # until terminated
    return 0


def start_bare() -> tuple[str, subprocess.Popen]:
    """The bare endpoint in a process of its own (as the app is): its URL and the process."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--bare-server"], stdout=subprocess.PIPE, text=True
    )
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        sys.exit("error: the bare Gradio endpoint did not start")
    return url, process


class Run:
    """Shared state of the clients: which request is next, and what each one gave."""

    def __init__(self, total: int, deadline_s: float):
        self.total = total
        self.deadline_s = deadline_s
        self.lock = threading.Lock()
        self.issued = 0
        self.latencies: list[float] = []
        self.correct = 0
        self.errors: Counter[str] = Counter()
        self.start = 0.0
        self.stopped = False  # Ctrl-C: finish the requests in flight, then report

    def next_request(self) -> int | None:
        with self.lock:
            if (
                self.stopped
                or self.issued >= self.total
                or time.perf_counter() - self.start > self.deadline_s
            ):
                return None
            self.issued += 1
            return self.issued - 1

    def record(self, latency: float, correct: bool | None, error: str | None) -> None:
        with self.lock:
            self.latencies.append(latency)
            if error is not None:
                self.errors[error] += 1
            elif correct:
                self.correct += 1


class GradioCaller:
    """One ``gradio_client.Client``: ``classify(path, model)`` -> the Label's value."""

    def __init__(self, url: str):
        from gradio_client import Client

        self.client = Client(url, verbose=False, analytics_enabled=False, download_files=False)

    def classify(self, path: Path, model: str | None) -> dict:
        from gradio_client import handle_file

        extra = () if model is None else (model,)
        return self.client.predict(handle_file(str(path)), *extra, api_name="/classify")


class HttpCaller:
    """Gradio's REST API over one keep-alive connection: upload, call, read the event stream.

    Each caller is one session, as a page or a gradio_client.Client is. With
    ``keep_session=False`` every call goes without a session_hash, as a bare curl does, and
    Gradio sets up a new session for each (``--client http-no-session`` measures that cost).
    """

    def __init__(self, url: str, keep_session: bool = True):
        import httpx

        self.api = url.rstrip("/") + "/gradio_api"
        self.http = httpx.Client(timeout=60.0, trust_env=False)
        self.session = uuid.uuid4().hex[:11] if keep_session else None

    def classify(self, path: Path, model: str | None) -> dict:
        with path.open("rb") as handle:
            response = self.http.post(
                f"{self.api}/upload", files={"files": (path.name, handle, "image/png")}
            )
        response.raise_for_status()
        # The REST API takes every input: null picks the app's default model.
        data = [{"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}, model]
        body = {"data": data}
        if self.session is not None:
            body["session_hash"] = self.session
        response = self.http.post(f"{self.api}/call/classify", json=body)
        response.raise_for_status()
        event_id = response.json()["event_id"]
        event = None
        with self.http.stream("GET", f"{self.api}/call/classify/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = json.loads(line.partition(":")[2])
                    if event == "error":
                        raise RuntimeError((payload or {}).get("error") or "the server failed")
                    return payload[0]
        raise RuntimeError("the event stream ended without a result")


def client_loop(caller, files, run: Run, model: str | None, ready: threading.Barrier) -> None:
    ready.wait()
    while (index := run.next_request()) is not None:
        path, label = files[index % len(files)]
        began = time.perf_counter()
        try:
            result = caller.classify(path, model)
        except Exception as error:  # every failure counts; the message says which
            run.record(time.perf_counter() - began, None, str(error).splitlines()[0][:200])
            continue
        run.record(time.perf_counter() - began, result.get("label") == str(label), None)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


CALLERS = {
    "gradio": GradioCaller,
    "http": HttpCaller,
    "http-no-session": lambda url: HttpCaller(url, keep_session=False),
}


def measure(caller_class, url: str, files, args) -> tuple[Run, float]:
    """``args.clients`` threads sending ``files`` until ``args.requests`` or the deadline."""
    callers = [caller_class(url) for _ in range(args.clients)]
    run = Run(args.requests, args.max_seconds)
    ready = threading.Barrier(args.clients + 1)
    threads = [
        threading.Thread(
            target=client_loop, args=(caller, files, run, args.model, ready), daemon=True
        )
        for caller in callers
    ]
    for thread in threads:
        thread.start()
    run.start = time.perf_counter()
    ready.wait()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:  # Ctrl-C, or SIGINT from latency_benchmark.py
        run.stopped = True
        for thread in threads:
            thread.join()
    return run, time.perf_counter() - run.start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server:
        return serve_bare()
    failed = False
    with tempfile.TemporaryDirectory(prefix="digitnet-load-") as temp:
        files = write_drawings(args.data, args.drawings, args.seed, Path(temp))
        demo = bare = None
        url = args.url
        if args.serve:
            url, demo = serve()
        print(f"machine:     {describe_machine()}")
        print(f"load avg:    {load_average()}")
        try:
            if args.baseline:
                bare_url, bare = start_bare()
            for kind in args.client:
                bare_rate = None
                if args.baseline:
                    run, elapsed = measure(CALLERS[kind], bare_url, files, args)
                    report(args, bare_url, files, run, elapsed, kind, "bare Gradio endpoint")
                    bare_rate = len(run.latencies) / elapsed
                    failed |= bool(run.errors) or not run.latencies
                run, elapsed = measure(CALLERS[kind], url, files, args)
                where = "served in-process" if args.serve else "running app"
                report(args, url, files, run, elapsed, kind, where)
                failed |= bool(run.errors) or not run.latencies
                if bare_rate:
                    rate = len(run.latencies) / elapsed
                    print(f"ratio:       {rate / bare_rate:.2f}x the bare endpoint ({kind})")
        finally:
            if bare is not None:
                bare.terminate()
                bare.wait(timeout=30)
            if demo is not None:
                demo.close()
    print(f"load avg:    {load_average()}, at the end")
    return 1 if failed else 0


def report(args, url: str, files, run: Run, elapsed: float, kind: str, where: str) -> None:
    done = len(run.latencies)
    latencies_ms = np.array(run.latencies) * 1000
    n_errors = sum(run.errors.values())
    answered = done - n_errors
    print(f"target:      {url}classify ({where}), model {args.model or 'default'}")
    print(
        f"load:        {args.clients} {kind} clients, {done} of {args.requests} requests "
        f"({len(files)} distinct drawings) in {elapsed:.1f} s"
    )
    if done:
        print(f"throughput:  {done / elapsed:.1f} requests/s")
        print(
            f"latency:     p50 {np.percentile(latencies_ms, 50):.0f} ms, "
            f"p95 {np.percentile(latencies_ms, 95):.0f} ms, max {latencies_ms.max():.0f} ms"
        )
    print(f"errors:      {n_errors}")
    for message, count in run.errors.most_common(5):
        print(f"  {count} x {message}")
    if answered:
        print(
            f"accuracy:    {100 * run.correct / answered:.1f}% "
            f"({run.correct} of {answered} labels right)"
        )


if __name__ == "__main__":
    sys.exit(main())

"""Simulate a workshop room against the app: many learners training while one keeps drawing.

Each learner is a ``gradio_client`` session that sends ``/train`` and follows it to the end;
meanwhile one more session sends a drawn 7 to ``/predict`` twice a second. For each phase it
prints the refusals, the time until the last learner has their run, ``/predict`` p50/p95,
and the server's memory (RSS) and Gradio cache size.

    python scripts/room_sim.py --start                       # every phase, on its own server
    python scripts/room_sim.py --start --phase same --learners 20
    python app.py &  python scripts/room_sim.py --url http://127.0.0.1:7860 --pid $!

Phases (the issue's "Done when" figures):
- ``hostile``: a /train of 100,000 one-unit layers and a CNN "460, 1" with val_fraction 0.99
  arrive together; each refusal's time, and /predict from then until 30 s after;
- ``same``: every learner sends the "tiny and fast" knobs at once;
- ``distinct``: the same knobs with 3 epochs and seeds 1..N;
- ``kept``: one learner trains, then 24 others each train one, 8 at a time; the first
  learner's run must still answer /classify.

Only a server on this machine (127.0.0.1 / localhost) is ever targeted; ``--start`` runs
``python app.py`` on a free port with its runs, drawings and Gradio cache in a temporary
folder, and stops it at the end. Learners, phases and seconds are bounded.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import multiprocessing  # noqa: E402
import queue  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout
from digitnet.strokes import PenStyle, digit_strokes  # noqa: E402

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
PHASES = ("hostile", "same", "distinct", "kept")
MAX_LEARNERS = 40
READY_LINE = "digitnet: training is ready"
TINY_AND_FAST = {"hidden_sizes": "256", "epochs": 10, "thickness_prob": 0, "hard_stroke_prob": 0}
HOSTILE = {
    "100,000 layers": {"hidden_sizes": ", ".join(["1"] * 100_000)},
    'cnn "460, 1"': {
        "architecture": "cnn",
        "cnn_channels": "460, 1",
        "val_fraction": 0.99,
        "train_size": 10,
        "batch_size": 10,
        "epochs": 1,
    },
}
EXAMPLE = REPO / "assets" / "examples" / "small-in-a-corner-7.png"
DRAW_EVERY_S = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running app on this machine")
    target.add_argument("--start", action="store_true", help="run python app.py on a free port")
    parser.add_argument("--pid", type=int, help="the server's process id, for its memory")
    parser.add_argument("--cache", type=Path, help="the server's GRADIO_TEMP_DIR, for its size")
    parser.add_argument("--phase", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--learners", type=int, default=20, help=f"at most {MAX_LEARNERS}")
    parser.add_argument("--others", type=int, default=24, help="the kept phase's other learners")
    parser.add_argument("--at-once", type=int, default=8, help="the kept phase's wave size")
    parser.add_argument("--max-seconds", type=float, default=600, help="per phase, at most 900")
    args = parser.parse_args(argv)
    if not 1 <= args.learners <= MAX_LEARNERS or not 0 <= args.others <= MAX_LEARNERS:
        parser.error(f"--learners and --others: from 1 to {MAX_LEARNERS}")
    if args.url and urlparse(args.url).hostname not in LOCAL_HOSTS:
        parser.error("--url: only a server on this machine (127.0.0.1 or localhost)")
    args.max_seconds = min(args.max_seconds, 900)
    return args


# ---------------------------------------------------------------------------
# The server


@dataclass
class Server:
    url: str
    pid: int | None
    cache: Path | None
    process: subprocess.Popen | None = None

    def memory(self) -> str:
        if self.pid is None:
            return "RSS unknown (no --pid)"
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return "RSS unknown"
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return f"RSS {kb / 1024:.0f} MB"

    def cache_size(self) -> str:
        if self.cache is None or not self.cache.is_dir():
            return "Gradio cache unknown (no --cache)"
        files = [p for p in self.cache.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        return f"Gradio cache {size / 1e6:.1f} MB in {len(files)} files"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_server(folder: Path) -> Server:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = folder / "gradio"
    env = {
        **os.environ,
        "GRADIO_TEMP_DIR": str(cache),
        "DIGITNET_RUNS_DIR": str(folder / "runs"),
        "DIGITNET_DB": str(folder / "drawings.sqlite"),
    }
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited ({process.returncode}); see {folder / 'server.log'}")
        # A room arrives at a server that is up: wait until it listens and its training
        # worker has warmed up (app.py prints READY_LINE), as minutes before a workshop.
        if READY_LINE in (folder / "server.log").read_text(errors="replace"):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return Server(url, process.pid, cache, process)
            except OSError:
                pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("app.py was not listening and ready to train within 120 s")


def new_client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


# ---------------------------------------------------------------------------
# Learners and the drawing client


@dataclass
class Outcome:
    who: str
    sent: float  # time.monotonic() when /train was sent
    run: str | None = None
    refusal: str | None = None
    state: str | None = None
    answer_s: float = 0.0  # from sending /train to its answer


def learn(
    url: str, who: str, knobs: dict, gate: threading.Barrier | None = None, keep: list | None = None
) -> Outcome:
    """One learner: a session of their own sends /train and follows it to its run.

    With a ``gate``, every learner's page is open (their session made) before any of them
    presses Start: the time measured is the server's, not the clients' start-up.
    """
    try:
        client = new_client(url)
    except Exception as error:
        if gate is not None:
            gate.abort()  # the others go on without this one
        return Outcome(who, time.monotonic(), refusal=f"could not connect: {first_line(error)}")
    if gate is not None:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=300)
    sent = time.monotonic()
    try:
        job = client.submit(**knobs, api_name="/train")
        for _ in job:  # the live updates, as the page draws them
            pass
        summary = job.result()[0]
        outcome = Outcome(who, sent, summary.get("run"), None, summary["state"])
    except Exception as error:  # gradio_client's AppError carries the one-line refusal
        outcome = Outcome(who, sent, refusal=first_line(error))
    outcome.answer_s = time.monotonic() - sent
    if keep is not None:
        keep.append(client)  # the session stays live
    else:
        client.close()
    return outcome


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


def latency_line(latencies: list[float]) -> str:
    if not latencies:
        return "predict: no answer"
    ms = 1000 * np.array(latencies)
    return (
        f"predict: {len(ms)} calls, p50 {np.percentile(ms, 50):.0f} ms, "
        f"p95 {np.percentile(ms, 95):.0f} ms, max {ms.max():.0f} ms"
    )


def draw_until(url: str, ready, stop, results) -> None:
    """The drawing visitor's loop, in a process of its own (see :class:`Drawer`)."""
    client = new_client(url)
    strokes = {"strokes": digit_strokes(7, PenStyle(200, (140, 140), 0.1))}
    latencies, errors = [], []
    ready.set()
    try:
        while not stop.is_set():
            began = time.perf_counter()
            try:
                client.predict(strokes, "MLP", api_name="/predict")
                latencies.append(time.perf_counter() - began)
            except Exception as error:
                errors.append(first_line(error))
            stop.wait(max(0.0, DRAW_EVERY_S - (time.perf_counter() - began)))
    finally:
        client.close()
        results.put((latencies, errors))


@dataclass
class Drawer:
    """One visitor sending a drawn 7 to /predict twice a second, from a process of its own:
    in the simulator's, its clock also ran while the learners' 20 clients held the GIL."""

    url: str
    drawn: list[float] | None = None  # every phase's latencies, for the figure across phases
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __enter__(self) -> Drawer:
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop, self._results = context.Event(), context.Event(), context.Queue()
        self._process = context.Process(
            target=draw_until, args=(self.url, self._ready, self._stop, self._results)
        )
        self._process.start()
        if not self._ready.wait(timeout=120):  # connected: its first call is the phase's
            self._process.kill()
            raise SystemExit("the drawing client did not connect within 120 s")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        try:
            self.latencies, self.errors = self._results.get(timeout=60)
        except queue.Empty:
            self.errors.append("the drawing process sent no figures")
        self._process.join(10)
        if self.drawn is not None:
            self.drawn.extend(self.latencies)

    def report(self) -> str:
        errors = f", errors {len(self.errors)}: {self.errors[0]}" if self.errors else ""
        return latency_line(self.latencies) + errors


# ---------------------------------------------------------------------------
# Phases


def crowd(url: str, requests: list[tuple[str, dict]], at_once: int, limit_s: float) -> list:
    """Learners ``at_once`` at a time; when all are at once, they press Start together."""
    gate = threading.Barrier(len(requests)) if at_once >= len(requests) else None
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        futures = [pool.submit(learn, url, who, knobs, gate) for who, knobs in requests]
        deadline = time.monotonic() + limit_s
        outcomes = []
        for (who, _), future in zip(requests, futures):
            try:
                outcomes.append(future.result(timeout=max(1.0, deadline - time.monotonic())))
            except TimeoutError:
                outcomes.append(Outcome(who, time.monotonic(), refusal="no answer in time"))
    return outcomes


def summarize(outcomes: list[Outcome]) -> list[str]:
    refused = [o for o in outcomes if o.refusal or o.state != "done"]
    done = [o for o in outcomes if not o.refusal and o.state == "done"]
    lines = [f"refused or not done: {len(refused)} of {len(outcomes)}"]
    lines += [f"  {o.who}: {o.refusal or o.state}" for o in refused[:5]]
    if done:
        start = min(o.sent for o in outcomes)
        times = sorted(o.sent + o.answer_s - start for o in done)
        lines.append(
            f"runs, from the first Start: first in {times[0]:.1f} s, median "
            f"{np.median(times):.1f} s, last in {times[-1]:.1f} s"
        )
    return lines


def phase_hostile(server: Server, args) -> list[str]:
    lines = []
    with Drawer(server.url, args.drawn) as drawer:
        time.sleep(2)  # predict from just before the requests arrive
        gate = threading.Barrier(len(HOSTILE))  # both arrive together
        began = time.monotonic()
        with ThreadPoolExecutor(len(HOSTILE)) as pool:
            futures = {
                name: pool.submit(learn, server.url, name, knobs, gate)
                for name, knobs in HOSTILE.items()
            }
            for name, future in futures.items():
                outcome = future.result(timeout=args.max_seconds)
                what = outcome.refusal or f"NOT refused: {outcome.state} {outcome.run}"
                lines.append(f"{name}: answered {outcome.answer_s:.2f} s after sending: {what}")
        time.sleep(max(0.0, 30 - (time.monotonic() - began)))
    return lines + [drawer.report()]


def phase_same(server: Server, args) -> list[str]:
    requests = [(f"learner-{i}", TINY_AND_FAST) for i in range(1, args.learners + 1)]
    with Drawer(server.url, args.drawn) as drawer:
        outcomes = crowd(server.url, requests, args.learners, args.max_seconds)
    return summarize(outcomes) + [drawer.report()]


def phase_distinct(server: Server, args) -> list[str]:
    requests = [
        (f"learner-{seed}", {**TINY_AND_FAST, "epochs": 3, "seed": seed})
        for seed in range(1, args.learners + 1)
    ]
    with Drawer(server.url, args.drawn) as drawer:
        outcomes = crowd(server.url, requests, args.learners, args.max_seconds)
    return summarize(outcomes) + [drawer.report()]


def phase_kept(server: Server, args) -> list[str]:
    from gradio_client import handle_file

    knobs = {**TINY_AND_FAST, "epochs": 1}
    keep: list = []
    first = learn(server.url, "first", {**knobs, "seed": 100}, keep=keep)
    if first.refusal or first.state != "done":
        return [f"the first learner got no run: {first.refusal or first.state}"]
    requests = [(f"other-{i}", {**knobs, "seed": 100 + i}) for i in range(1, args.others + 1)]
    outcomes = crowd(server.url, requests, args.at_once, args.max_seconds)
    (client,) = keep
    try:
        label = client.predict(handle_file(str(EXAMPLE)), first.run, api_name="/classify")
        answer = f"{first.run} still answers /classify: {label.get('label')}"
    except Exception as error:
        answer = f"{first.run} is GONE: {first_line(error)}"
    finally:
        client.close()
    return [answer] + summarize(outcomes)


RUNNERS = {
    "hostile": phase_hostile,
    "same": phase_same,
    "distinct": phase_distinct,
    "kept": phase_kept,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.drawn = []  # /predict's latencies in every phase, for the figure across them
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="digitnet-room-") as temp:
        server = start_server(Path(temp)) if args.start else Server(args.url, args.pid, args.cache)
        try:
            print(f"server: {server.url} ({server.memory()}, {server.cache_size()})")
            for phase in args.phase:
                began = time.monotonic()
                print(f"\n## {phase}")
                for line in RUNNERS[phase](server, args):
                    print(f"- {line}")
                print(
                    f"- took {time.monotonic() - began:.0f} s; server {server.memory()}, "
                    f"{server.cache_size()}; load average "
                    f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}"
                )
            if len(args.phase) > 1:
                print(f"\n## across the phases\n- {latency_line(args.drawn)}")
        except KeyboardInterrupt:
            print("interrupted")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

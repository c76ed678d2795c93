"""Soak the app's ``predict`` endpoint and watch Gradio's cache: does the disk stay bounded?

Serves app.py in-process on a free port with a cache folder of its own (``GRADIO_TEMP_DIR``;
Gradio's default, /tmp/gradio, is shared by every Gradio process on the machine), then sends
``--calls`` drawn digits, each different, from ``--clients`` threads over plain HTTP (half the
calls with a session, half without, as a page and a ``curl`` would), until the calls are done
or ``--max-seconds`` have passed. Every ``--every`` calls it prints the cache's files and
bytes and the server's memory.

    python scripts/soak_test.py                          # 2,000 calls, 4 clients
    python scripts/soak_test.py --calls 5000 --clients 8

Only 127.0.0.1 is ever targeted. Exits 1 if a call failed or the cache grew.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
CACHE = tempfile.mkdtemp(prefix="digitnet-soak-cache-")
os.environ["GRADIO_TEMP_DIR"] = CACHE  # before gradio is imported: every block reads it

import argparse  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout
from digitnet.machine import describe_machine  # noqa: E402
from digitnet.strokes import PenStyle, digit_strokes  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="predict calls in all")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--every", type=int, default=250, help="report every this many calls")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after")
    args = parser.parse_args(argv)
    for name in ("calls", "clients", "every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def drawing(nth: int) -> dict:
    """The ``nth`` drawing: digits 0-9 in turn, each a size, place and slant of its own."""
    style = PenStyle(120 + nth % 131, (110 + nth % 61, 110 + nth % 53), -0.2 + (nth % 41) / 100)
    return {"strokes": digit_strokes(nth % 10, style)}


def folder_size(folder: Path) -> tuple[int, int]:
    """(files, bytes) under ``folder``."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def resident_mb() -> float:
    """This process's resident memory (the server runs in it), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Soak:
    """The calls' shared counter, failures and checkpoints."""

    def __init__(self, args, url: str):
        self.args = args
        self.api = url.rstrip("/") + "/gradio_api"
        self.lock = threading.Lock()
        self.issued = self.done = 0
        self.failures: list[str] = []
        self.start = time.perf_counter()

    def next_call(self) -> int | None:
        with self.lock:
            late = time.perf_counter() - self.start > self.args.max_seconds
            if late or self.issued >= self.args.calls:
                return None
            self.issued += 1
            return self.issued - 1

    def client(self) -> None:
        import httpx

        session = uuid.uuid4().hex[:11]
        with httpx.Client(timeout=60.0, trust_env=False) as http:
            while (nth := self.next_call()) is not None:
                body = {"data": [drawing(nth), None]}
                if nth % 2:
                    body["session_hash"] = session
                try:
                    posted = http.post(f"{self.api}/call/predict", json=body)
                    posted.raise_for_status()
                    event = posted.json()["event_id"]
                    events = http.get(f"{self.api}/call/predict/{event}").text
                    if "event: complete" not in events:
                        raise RuntimeError(events.strip().splitlines()[-1][:200])
                except Exception as error:  # every failure counts; the message says which
                    with self.lock:
                        self.failures.append(str(error).splitlines()[0][:200])
                with self.lock:
                    self.done += 1
                    if self.done % self.args.every == 0:
                        self.checkpoint()

    def checkpoint(self) -> None:
        files, size = folder_size(Path(CACHE))
        elapsed = time.perf_counter() - self.start
        print(
            f"{self.done:>7,} {elapsed:>8.1f} {files:>8,} {size / 1024:>10.1f} "
            f"{resident_mb():>8.0f}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    import app

    torch.set_num_threads(1)  # as app.main() does
    models, warnings = app.load_models()
    if not models:
        sys.exit("error: no model could be loaded: " + "; ".join(warnings))
    demo, url = app.serve_in_background(models, warnings)
    print(f"machine:  {describe_machine()}")
    print(f"target:   {url}predict, served in-process; cache {CACHE}")
    print(f"load:     {args.calls:,} calls from {args.clients} clients, half without a session")
    print(f"{'calls':>7} {'seconds':>8} {'files':>8} {'cache KiB':>10} {'RSS MiB':>8}")
    before_files, before_size = folder_size(Path(CACHE))
    start_row = f"{0:>7} {0.0:>8.1f} {before_files:>8,} {before_size / 1024:>10.1f}"
    print(f"{start_row} {resident_mb():>8.0f}")
    soak = Soak(args, url)
    threads = [threading.Thread(target=soak.client, daemon=True) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        demo.close()
    elapsed = time.perf_counter() - soak.start
    files, size = folder_size(Path(CACHE))
    print(
        f"done:     {soak.done:,} calls in {elapsed:.1f} s ({soak.done / elapsed:.1f}/s), "
        f"{len(soak.failures)} failed"
    )
    for failure in sorted(set(soak.failures))[:5]:
        print(f"  {soak.failures.count(failure)} x {failure}")
    print(
        f"cache:    {before_files} -> {files} files, {before_size / 1024:.1f} -> "
        f"{size / 1024:.1f} KiB ({(size - before_size) / max(soak.done, 1):.1f} bytes per call)"
    )
    shutil.rmtree(CACHE, ignore_errors=True)
    return 1 if soak.failures or size > before_size else 0


if __name__ == "__main__":
    sys.exit(main())

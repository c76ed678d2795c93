"""Measure the Train tab's figures, through the same service and API the app uses.

    python scripts/train_benchmark.py            # every figure, about 5 minutes here
    python scripts/train_benchmark.py --quick    # a smoke run of every section, in miniature

Prints the machine, then:
- each preset on the shipped 8,000 digits: training seconds, best validation accuracy, the
  seconds it took to first reach 95% and 97.5% (epoch times summed), drawing accuracy, and
  the seconds from submitting to a saved run;
- Stop: seconds from ``stop()`` to the end of the training loop (median and max of several);
- drawing while a run trains: ``classify`` latency (one HTTP client, canvas-like drawings)
  with the server quiet, then while digitnet's recipe trains, for each training thread
  nice value given;
- the API: a 5-epoch MLP through ``train`` with gradio_client (updates streamed, seconds,
  validation accuracy), then ``classify`` with that run on 100 canvas-like drawings.

Every figure on a shared machine moves with what else runs there; the load average is printed.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout
from digitnet.data import SAMPLE_DATA  # noqa: E402
from digitnet.jobs import TRAINING, Job  # noqa: E402
from digitnet.knobs import PRESETS  # noqa: E402
from digitnet.machine import describe_machine  # noqa: E402
from digitnet.train import EpochReport  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402

TARGETS = (0.95, 0.975)
SECTIONS = ("presets", "stop", "drawing", "api")


def load_sibling(name: str):
    """Another script of this folder as a module (its HTTP caller)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every section, in miniature")
    parser.add_argument("--stops", type=int, default=5, help="Stop presses to time")
    parser.add_argument("--requests", type=int, default=60, help="classify calls per phase")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="measure only these sections (default: all)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        nargs="+",
        default=[0, 10],
        help="training thread nice values to compare while drawing (default: 0 10)",
    )
    return parser.parse_args(argv)


def wait(job: Job) -> None:
    while not job.finished:
        time.sleep(0.02)


def reached(history: list[EpochReport], target: float) -> str:
    """Seconds of training (epoch times summed) until validation first reached ``target``."""
    elapsed = 0.0
    for report in history:
        elapsed += report.seconds
        if report.val_accuracy is not None and report.val_accuracy >= target:
            return f"{elapsed:.1f}"
    return "never"


def bench_presets(service: TrainingService, quick: bool) -> None:
    extra = {"epochs": 1, "train_size": 500} if quick else {}
    for name, knobs in PRESETS.items():
        began = time.perf_counter()
        job = service.submit("bench", {**knobs, **extra})
        wait(job)
        total = time.perf_counter() - began
        snapshot = job.snapshot()
        if snapshot.record is None:
            print(f"| {name} | failed: {snapshot.error} |")
            continue
        summary = snapshot.summary()
        history = snapshot.epochs
        print(
            f"| {name} | {service.nice} | {summary['epochs']} | {summary['seconds']:.1f} "
            f"| {100 * summary['val_accuracy']:.2f}% | {reached(history, TARGETS[0])} "
            f"| {reached(history, TARGETS[1])} | {100 * summary['drawing_accuracy']:.1f}% "
            f"| {total:.1f} |"
        )


def bench_stop(service: TrainingService, repeats: int, quick: bool) -> str:
    """Seconds from stop() to the training loop's end, with digitnet's recipe training."""
    latencies = []
    for repeat in range(repeats):
        # A seed of its own: an identical run would be handed over, already trained.
        job = service.submit("bench", {**PRESETS["digitnet's recipe"], "seed": 1000 + repeat})
        while not (job.state == TRAINING and job.snapshot().last_step is not None):
            time.sleep(0.01)
        time.sleep(0.5 if quick else 2.0)
        began = time.perf_counter()
        service.stop("bench")
        while job.state == TRAINING:
            time.sleep(0.002)
        latencies.append(time.perf_counter() - began)
        wait(job)
    return (
        f"Stop -> training loop ended (thread nice {service.nice}): median "
        f"{1000 * statistics.median(latencies):.0f} ms, max {1000 * max(latencies):.0f} ms "
        f"over {repeats} stops of digitnet's recipe"
    )


def classify_latencies(caller, files, count: int) -> list[float]:
    latencies = []
    for index in range(count):
        path, _ = files[index % len(files)]
        began = time.perf_counter()
        caller.classify(path, None)
        latencies.append(time.perf_counter() - began)
    return latencies


def percentiles(latencies: list[float]) -> str:
    ms = 1000 * np.array(latencies)
    return f"p50 {np.percentile(ms, 50):.0f} ms, p90 {np.percentile(ms, 90):.0f} ms"


def bench_drawing_while_training(args, runs_dir: Path, files) -> None:
    import app

    load_test = load_sibling("load_test")
    print("\nclassify while a run trains (one HTTP client, sequential, canvas-like drawings):")
    for nice in args.nice:
        service = TrainingService(runs_dir / f"nice{nice}", nice=nice)
        demo, url = app.serve_in_background(*app.load_models(), training=service)
        try:
            caller = load_test.HttpCaller(url)
            classify_latencies(caller, files, 3)  # warm the connection
            quiet = classify_latencies(caller, files, args.requests)
            job = service.submit("bench", PRESETS["digitnet's recipe"])
            while not (job.state == TRAINING and job.snapshot().last_step is not None):
                time.sleep(0.05)
            busy = classify_latencies(caller, files, args.requests)
            still_training = job.state == TRAINING
            service.stop("bench")
            wait(job)
        finally:
            demo.close()
            service.close()
        note = "" if still_training else " (the run ended before the last request)"
        print(f"- quiet:                        {percentiles(quiet)}")
        print(f"- training, thread nice {nice:>2}:     {percentiles(busy)}{note}")


def bench_api(args, runs_dir: Path, files) -> None:
    from gradio_client import Client, handle_file

    import app

    service = TrainingService(runs_dir / "api")
    demo, url = app.serve_in_background(*app.load_models(), training=service)
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        wait(service.submit("warm-up", {"epochs": 1, "train_size": 100}))  # once a server
        epochs = 1 if args.quick else 5
        began = time.perf_counter()
        job = client.submit(architecture="mlp", epochs=epochs, api_name="/train")
        updates = sum(1 for _ in job)
        summary = job.result()[0]
        seconds = time.perf_counter() - began
        right = sum(
            client.predict(handle_file(str(path)), summary["run"], api_name="/classify")["label"]
            == str(label)
            for path, label in files
        )
        client.close()
    finally:
        demo.close()
        service.close()
    print(
        f"\nAPI: a {epochs}-epoch MLP streamed {updates} updates, finished in {seconds:.1f} s "
        f"({summary['seconds']:.1f} s training), validation {100 * summary['val_accuracy']:.2f}%; "
        f"classify with {summary['run']} read {right} of {len(files)} canvas-like drawings"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # as the app serves
    load_test = load_sibling("load_test")
    print(f"machine: {describe_machine()}")
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="digitnet-train-bench-") as temp:
        runs_dir = Path(temp)
        drawings = load_test.write_drawings(
            str(SAMPLE_DATA), 10 if args.quick else 100, 7, runs_dir
        )
        if args.quick:
            args.requests, args.nice, args.stops = 3, args.nice[:1], 1
        if "presets" in args.only:
            print("\n| preset | nice | epochs | training s | best val | s to 95% | s to 97.5% "
                  "| drawings | submit to saved s |")  # fmt: skip
            print("|---|---|---|---|---|---|---|---|---|")
        stops = []
        for nice in args.nice if {"presets", "stop"} & set(args.only) else []:
            service = TrainingService(runs_dir / f"presets-nice{nice}", nice=nice)
            try:
                wait(service.submit("warm-up", {"epochs": 1, "train_size": 100}))  # not counted
                if "presets" in args.only:
                    bench_presets(service, args.quick)
                if "stop" in args.only:
                    stops.append(bench_stop(service, args.stops, args.quick))
            finally:
                service.close()
        print("\n" + "\n".join(stops) if stops else "", end="\n" if stops else "")
        if "drawing" in args.only:
            bench_drawing_while_training(args, runs_dir, drawings)
        if "api" in args.only:
            bench_api(args, runs_dir, drawings)
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

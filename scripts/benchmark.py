"""Benchmark digitnet against the tutorial it started from, in one process, on one machine.

1. Training: the tutorial's recipe (SGD lr 0.01, batch 100, no shuffling, 100 epochs) against
   digitnet's default, on the same data and the same validation split.
2. Kaggle-size prediction: a 28,000-row test CSV (test.csv repeated) to submission.csv, the
   tutorial's way (one row at a time) against digitnet's (batched).
3. Latency of one drawing in the app: preprocessing plus forward pass, p50 and p95.

    python scripts/benchmark.py                  # the 8,000 MNIST digits shipped in assets/
    python scripts/benchmark.py --data ../shared/data/mnist-10k/train.csv \
        --test ../shared/data/mnist-10k/test.csv   # Kaggle-format files elsewhere
    python scripts/benchmark.py --quick          # a smoke run

Prints a table with medians, ratios and the machine it ran on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from digitnet.checkpoint import load_checkpoint  # noqa: E402
from digitnet.data import PIXEL_COLUMNS, SAMPLE_DATA, Digits, load_training_data  # noqa: E402
from digitnet.drawings import render_drawings  # noqa: E402
from digitnet.machine import describe_machine  # noqa: E402
from digitnet.predict import classify_drawing, predict_submission, write_submission  # noqa: E402
from digitnet.preprocess import digits_to_inputs  # noqa: E402
from digitnet.train import TrainConfig, train_model, tutorial_config  # noqa: E402

KAGGLE_TEST_ROWS = 28_000


def bench_training(digits: Digits, quick: bool) -> list[tuple[str, float, float]]:
    """(recipe, seconds, validation accuracy) for the tutorial and digitnet's default."""
    if quick:
        digits = digits.subset(np.arange(1000))
    inputs = digits_to_inputs(digits.images)
    train_index, val_index = TrainConfig().split(digits.labels)  # the shipped models' split
    recipes = [
        ("tutorial (SGD, 100 epochs)", tutorial_config(device="cpu")),
        ("digitnet default", TrainConfig.from_knobs(device="cpu")),
    ]
    results = []
    for name, config in recipes:
        if quick:
            config = config.replace(epochs=1)
        start = time.perf_counter()
        result = train_model(
            config,
            inputs[train_index],
            digits.labels[train_index],
            inputs[val_index],
            digits.labels[val_index],
        )
        seconds = time.perf_counter() - start
        accuracy = result.history[result.best_epoch - 1].val_accuracy  # the kept weights' score
        results.append((name, seconds, accuracy))
        print(f"  trained {name}: {seconds:.1f}s, validation {100 * accuracy:.2f}%", flush=True)
    return results


def write_test_csv(digits: Digits, folder: Path) -> Path:
    """The digits as a Kaggle test CSV (pixels only), for the prediction benchmark."""
    path = folder / "test.csv"
    frame = pd.DataFrame(digits.images.reshape(len(digits), -1), columns=PIXEL_COLUMNS)
    frame.to_csv(path, index=False)
    return path


def predict_row_by_row(model: torch.nn.Module, csv_path: Path, out_path: Path) -> None:
    """The tutorial's way: read the CSV, then one forward pass per row."""
    test = pd.read_csv(csv_path)
    labels = []
    model.eval()
    with torch.no_grad():
        for i in range(len(test)):
            x = torch.FloatTensor(test.iloc[i].values.astype(np.float32)) / 255.0
            labels.append(int(model(x.view(1, -1)).argmax(dim=1)))
    pd.DataFrame({"ImageId": range(1, len(labels) + 1), "Label": labels}).to_csv(
        out_path, index=False
    )


def predict_batched(model: torch.nn.Module, csv_path: Path, out_path: Path) -> None:
    write_submission(predict_submission(model, csv_path), out_path)


def bench_prediction(
    model: torch.nn.Module, test_csv: Path, rows: int, repeats: int
) -> list[tuple[str, float]]:
    """Median seconds for each way of turning a ``rows``-row test CSV into a submission."""
    with tempfile.TemporaryDirectory() as folder:
        big_csv = Path(folder) / "test.csv"
        test = pd.read_csv(test_csv).drop(columns="label", errors="ignore")  # Kaggle's test format
        copies = -(-rows // len(test))
        pd.concat([test] * copies).head(rows).to_csv(big_csv, index=False)
        outputs = {}
        results = []
        for name, predict in (
            ("row by row (tutorial)", predict_row_by_row),
            ("batched (digitnet)", predict_batched),
        ):
            times = []
            for _ in range(repeats):
                out = Path(folder) / f"{name.split()[0]}.csv"
                start = time.perf_counter()
                predict(model, big_csv, out)
                times.append(time.perf_counter() - start)
            outputs[name] = pd.read_csv(out)["Label"].to_numpy()
            results.append((name, statistics.median(times)))
            print(f"  predicted {rows} rows {name}: {statistics.median(times):.2f}s", flush=True)
        first, second = outputs.values()
        assert (first == second).all(), "the two ways disagree"
    return results


def bench_latency(
    models: dict[str, torch.nn.Module], digits: Digits, count: int
) -> list[tuple[str, float, float]]:
    """p50 and p95 milliseconds of preprocessing + forward for one canvas-like drawing."""
    _, val_index = TrainConfig().split(digits.labels)
    drawings = [
        np.asarray(image) for image in render_drawings(digits.images[val_index[:count]], seed=1)
    ]
    results = []
    for name, model in models.items():
        for drawing in drawings[:5]:  # warm-up
            classify_drawing(model, drawing)
        times = []
        for drawing in drawings:
            start = time.perf_counter()
            classify_drawing(model, drawing)
            times.append(1000 * (time.perf_counter() - start))
        p50, p95 = np.percentile(times, [50, 95])
        results.append((name, float(p50), float(p95)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=str(SAMPLE_DATA),
        help="labelled digits, a file or folder (default: $DIGITNET_DATA, else the sample "
        "in assets/)",
    )
    parser.add_argument(
        "--test",
        default=None,
        help="a Kaggle test CSV to predict (default: the --data digits without their labels)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes: checks the script runs, gives no useful figures",
    )
    args = parser.parse_args(argv)
    machine_line = describe_machine()
    print(f"machine: {machine_line}", flush=True)

    digits = load_training_data(args.data)  # read once, used twice
    test_csv = Path(args.test) if args.test else write_test_csv(digits, Path(tempfile.mkdtemp()))
    training = bench_training(digits, args.quick)
    torch.set_num_threads(1)  # prediction and latency as the app serves them: one thread a request
    mlp, _ = load_checkpoint("mlp")
    models = {"mlp": mlp}
    try:
        models["cnn"] = load_checkpoint("cnn")[0]
    except Exception as error:  # the CNN is optional for the benchmark
        print(f"  (no CNN: {error})")
    rows = 2_000 if args.quick else KAGGLE_TEST_ROWS
    prediction = bench_prediction(mlp, test_csv, rows, repeats=1 if args.quick else 3)
    latency = bench_latency(models, digits, 20 if args.quick else 300)

    (tutorial_name, tutorial_s, tutorial_acc), (ours_name, ours_s, ours_acc) = training
    (slow_name, slow_s), (fast_name, fast_s) = prediction
    print()
    print(f"machine: {machine_line}; prediction and latency with 1 thread, as the app serves")
    print("| what | tutorial | digitnet | ratio |")
    print("|---|---|---|---|")
    print(
        f"| training time (s) | {tutorial_s:.1f} | {ours_s:.1f} | "
        f"{tutorial_s / ours_s:.1f}x faster |"
    )
    error_ratio = (1 - tutorial_acc) / (1 - ours_acc) if ours_acc < 1 else float("inf")
    print(
        f"| validation accuracy | {100 * tutorial_acc:.2f}% | {100 * ours_acc:.2f}% | "
        f"{error_ratio:.1f}x fewer errors |"
    )
    print(
        f"| predict {rows:,} rows to submission.csv (s, median) | {slow_s:.2f} | "
        f"{fast_s:.2f} | {slow_s / fast_s:.1f}x faster |"
    )
    print()
    print("| one drawing: preprocess + forward | p50 (ms) | p95 (ms) |")
    print("|---|---|---|")
    for name, p50, p95 in latency:
        print(f"| {name} | {p50:.2f} | {p95:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

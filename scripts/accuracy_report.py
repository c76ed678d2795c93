"""The README's headline table: each model on data it never chose anything by, through the CLI.

For each model, everything goes through ``python -m digitnet predict`` as a user runs it:

1. MNIST's 10,000 test digits (t10k) as a Kaggle ``test.csv``, scored on t10k's labels;
2. canvas-like renders of test digits (random size, place and stroke; white, dark and
   transparent canvases) as PNG files: accuracy, top-label ECE over 15 bins from predict's
   ``confidence``, and the share refused (``is_digit`` 0);
3. other writers: scikit-learn's 1,797 UCI digits, upscaled to 64x64 grey PNGs;
4. held-out non-digits (letters, symbols, shapes, scribbles, noise from fonts and shapes the
   models never trained on) as PNG files: the share refused.

    python scripts/accuracy_report.py                     # the shipped mlp and cnn
    python scripts/accuracy_report.py --models runs/mlp --renders 300 --nondigits 300
    python scripts/accuracy_report.py --json report.json  # keep the figures

Intervals are 95% Wilson intervals.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from digitnet.calibration import reliability  # noqa: E402
from digitnet.cli import main as digitnet_cli  # noqa: E402
from digitnet.data import PIXEL_COLUMNS, load_mnist  # noqa: E402
from digitnet.drawing_data import load_uci_digits, render_uci_digit, wilson_interval  # noqa: E402
from digitnet.drawings import render_drawings  # noqa: E402
from digitnet.machine import describe_machine  # noqa: E402
from digitnet.nondigits import nondigit_drawings  # noqa: E402

RENDER_SEED = 2026  # the renders of test digits: not the seeds training or calibration used


def write_inputs(folder: Path, renders: int, nondigits: int, seed: int) -> dict:
    """Every input file, written once for all models; returns their paths and labels."""
    test = load_mnist("test")
    frame = pd.DataFrame(test.images.reshape(len(test), -1), columns=PIXEL_COLUMNS)
    frame.to_csv(folder / "test.csv", index=False)

    drawn = folder / "renders"
    drawn.mkdir()
    chosen = np.random.default_rng(seed).choice(len(test), renders, replace=False)
    for index, image in zip(chosen, render_drawings(test.images[chosen], seed=seed)):
        image.save(drawn / f"{index:05d}.png")

    uci = folder / "uci"
    uci.mkdir()
    uci_images, uci_labels = load_uci_digits()
    for index, image in enumerate(uci_images):
        render_uci_digit(image).save(uci / f"{index:04d}.png")

    others = folder / "nondigits"
    others.mkdir()
    for index, image in enumerate(nondigit_drawings(nondigits, seed=seed)):
        image.save(others / f"{index:04d}.png")
    return {
        "test_labels": test.labels,
        "render_labels": {f"{i:05d}.png": int(test.labels[i]) for i in chosen},
        "uci_labels": {f"{i:04d}.png": int(label) for i, label in enumerate(uci_labels)},
    }


def predict(model: str, inputs: Path, out: Path) -> list[dict]:
    """``python -m digitnet predict --model MODEL INPUTS --out OUT``; the rows it wrote."""
    with contextlib.redirect_stdout(io.StringIO()):
        code = digitnet_cli(["predict", "--model", model, str(inputs), "--out", str(out)])
    if code != 0:
        raise SystemExit(f"predict {model} {inputs} failed with exit {code}")
    with out.open() as handle:
        return list(csv.DictReader(handle))


def share(correct: int, total: int) -> dict:
    low, high = wilson_interval(correct, total)
    return {"share": correct / total, "count": total, "low": low, "high": high}


def measure(model: str, folder: Path, files: dict) -> dict:
    submission = predict(model, folder / "test.csv", folder / "submission.csv")
    predicted = np.array([int(row["Label"]) for row in submission])
    t10k = share(int((predicted == files["test_labels"]).sum()), len(predicted))

    rows = predict(model, folder / "renders", folder / "renders.csv")
    labels = np.array([files["render_labels"][Path(row["file"]).name] for row in rows])
    right = np.array([int(row["label"]) for row in rows]) == labels
    confidence = np.array([float(row["confidence"]) for row in rows])
    ece, _ = reliability(confidence, right)
    refused = sum(row["is_digit"] == "0" for row in rows)

    uci_rows = predict(model, folder / "uci", folder / "uci.csv")
    uci_right = sum(
        int(row["label"]) == files["uci_labels"][Path(row["file"]).name] for row in uci_rows
    )
    other_rows = predict(model, folder / "nondigits", folder / "nondigits.csv")
    return {
        "t10k": t10k,
        "drawings": share(int(right.sum()), len(rows)),
        "drawings_ece": ece,
        "drawings_refused": share(refused, len(rows)),
        "uci": share(uci_right, len(uci_rows)),
        "nondigits_refused": share(sum(r["is_digit"] == "0" for r in other_rows), len(other_rows)),
    }


def percent(figure: dict) -> str:
    return f"{100 * figure['share']:.2f}% ({100 * figure['low']:.2f}-{100 * figure['high']:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--renders", type=int, default=1000, help="renders of test digits")
    parser.add_argument("--nondigits", type=int, default=1000, help="held-out non-digits")
    parser.add_argument("--seed", type=int, default=RENDER_SEED)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    print(describe_machine())
    start = time.perf_counter()
    report = {}
    with tempfile.TemporaryDirectory(prefix="digitnet-report-") as temp:
        folder = Path(temp)
        files = write_inputs(folder, args.renders, args.nondigits, args.seed)
        print(f"inputs written in {time.perf_counter() - start:.0f}s")
        for model in args.models:
            report[model] = measure(model, folder, files)
    print(
        "\n| model | MNIST t10k | canvas-like drawings | other writers (UCI) "
        "| non-digits refused | real drawings refused | ECE (drawings) |"
    )
    print("|---|---|---|---|---|---|---|")
    for model, figures in report.items():
        print(
            f"| {model} | {percent(figures['t10k'])} | {percent(figures['drawings'])} "
            f"| {percent(figures['uci'])} | {percent(figures['nondigits_refused'])} "
            f"| {percent(figures['drawings_refused'])} | {figures['drawings_ece']:.4f} |"
        )
    print(
        f"\n{args.renders:,} renders of test digits and {args.nondigits:,} held-out non-digits "
        f"(seed {args.seed}); 95% Wilson intervals; {time.perf_counter() - start:.0f}s in all"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

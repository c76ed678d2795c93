"""Write the app's example drawings to assets/examples/ from validation digits.

Each is a real MNIST digit from the validation split of train.csv (never trained on),
drawn the hard way users draw: small in a corner, thick strokes, a dark canvas.

    python scripts/make_examples.py     # from the MNIST sample in assets/ (or --data FILE)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from digitnet.data import SAMPLE_DATA, load_training_data  # noqa: E402
from digitnet.drawings import DrawingStyle, render_drawing  # noqa: E402
from digitnet.train import TrainConfig  # noqa: E402

CANVAS = (280, 280)  # the app's canvas
# (file name, digit, style): each shows a case a naive 28x28 resize gets wrong.
EXAMPLES = [
    ("small-in-a-corner", 7, DrawingStyle(CANVAS, 70, 5, "white", (0.05, 0.05))),
    ("thick-strokes", 4, DrawingStyle(CANVAS, 200, 25, "white", (0.5, 0.5))),
    ("dark-canvas", 3, DrawingStyle(CANVAS, 180, 11, "dark", (0.6, 0.4))),
    ("off-centre", 2, DrawingStyle(CANVAS, 120, 9, "white", (0.95, 0.9))),
    ("big", 9, DrawingStyle(CANVAS, 270, 13, "white", (0.5, 0.5))),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=str(SAMPLE_DATA),
        help="labelled digits (default: $DIGITNET_DATA, else the sample in assets/)",
    )
    parser.add_argument("--out", default="assets/examples")
    args = parser.parse_args()
    digits = load_training_data(args.data)
    config = TrainConfig()  # the split the shipped models were validated on
    _, val_index = config.split(digits.labels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, digit, style in EXAMPLES:
        row = int(val_index[np.flatnonzero(digits.labels[val_index] == digit)[0]])
        image = render_drawing(digits.images[row], style)
        path = out / f"{name}-{digit}.png"
        image.save(path)
        print(f"wrote {path} (validation row {row})")


if __name__ == "__main__":
    main()

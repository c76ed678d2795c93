"""Fine-tune on other people's handwriting and measure it: issue 9's "Done when".

scikit-learn's 1,797 UCI digits (43 writers who are not MNIST's, drawn and preprocessed
as the app does) stand in for a workshop's drawings. They go into a temporary drawings
store; for each seed, half are held out, the model is fine-tuned on the other half mixed
with the MNIST sample's training split, and both figures are measured before and after:

- held-out drawing accuracy, which must rise by >= 5 points;
- MNIST validation accuracy (the base model's own split), which may drop by <= 0.5 points.

Nothing is saved: the shipped weights are read, never written.

    python scripts/finetune_benchmark.py                 # the shipped MLP, seeds 0 1 2
    python scripts/finetune_benchmark.py --model runs/mlp --seeds 0
    python scripts/finetune_benchmark.py --quick         # a smoke run (1 epoch, 1 seed)

Prints the machine, each seed's figures with their 95% intervals and seconds, and a table.
Exits 1 when a full run misses either bar.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from digitnet.checkpoint import load_checkpoint  # noqa: E402
from digitnet.data import SAMPLE_DATA, load_training_data  # noqa: E402
from digitnet.drawing_data import import_sklearn_digits  # noqa: E402
from digitnet.finetune import FinetuneConfig, drawings_from_store, finetune  # noqa: E402
from digitnet.machine import describe_machine  # noqa: E402
from digitnet.store import SOURCE_SKLEARN, open_store  # noqa: E402

MIN_HELD_OUT_RISE = 5.0  # points the held-out drawing accuracy must rise by
MAX_MNIST_DROP = 0.5  # points MNIST validation accuracy may fall by
QUICK_MNIST_DIGITS = 1000  # --quick trains on this many MNIST digits


def build_parser() -> argparse.ArgumentParser:
    defaults = FinetuneConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mlp", help="base checkpoint (default: mlp, shipped)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="S")
    parser.add_argument("--held-out", type=float, default=0.5, help="share held out (0.5)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--drawing-share", type=float, default=defaults.drawing_share)
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 epoch, the first seed, 1,000 MNIST"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)  # a shared 2-core machine; also makes runs repeatable
    command = shlex.join(["python", "scripts/finetune_benchmark.py", *argv])
    seeds = args.seeds[:1] if args.quick else args.seeds
    epochs = 1 if args.quick else args.epochs
    print(f"machine: {describe_machine()}", flush=True)
    print(f"command: {command}", flush=True)

    model, metadata = load_checkpoint(args.model)
    mnist = load_training_data(SAMPLE_DATA)
    if args.quick:
        mnist = mnist.subset(np.arange(QUICK_MNIST_DIGITS))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "uci-digits.sqlite"
        with open_store(db) as store:
            start = time.perf_counter()
            imported = import_sklearn_digits(store)
            print(
                f"imported {imported.added} UCI digits as drawings in "
                f"{time.perf_counter() - start:.1f}s",
                flush=True,
            )
            for seed in seeds:
                settings = FinetuneConfig(
                    epochs=epochs,
                    lr=args.lr,
                    drawing_share=args.drawing_share,
                    augment=args.augment,
                    held_out_fraction=args.held_out,
                    seed=seed,
                )
                split = drawings_from_store(store, settings, source=SOURCE_SKLEARN)
                start = time.perf_counter()
                result = finetune(
                    model, metadata, split, settings, mnist=mnist, base_name=args.model
                )
                seconds = time.perf_counter() - start
                rows.append((seed, result, seconds))
                mix = result.metadata["finetune"]["mix"]
                print(
                    f"seed {seed}: {len(split.train)} drawings trained (x{mix['drawing_repeats']}, "
                    f"{100 * mix['drawing_share']:.0f}% of each epoch) with "
                    f"{mix['mnist_train_count']} MNIST digits, {len(split.held_out)} held out; "
                    f"{seconds:.1f}s",
                    flush=True,
                )
                for label, measured in (("before", result.before), ("after", result.after)):
                    print(
                        f"  {label:<6} held-out drawings {measured.held_out.percent()}, "
                        f"MNIST validation {measured.mnist_validation.percent()} "
                        f"of {measured.mnist_validation.total}",
                        flush=True,
                    )
                cli = (
                    f"python -m digitnet drawings finetune --db DB --source {SOURCE_SKLEARN} "
                    f"--model {args.model} --held-out {args.held_out:g} --seed {seed} "
                    f"--epochs {epochs} --out runs/finetuned-{seed}"
                )
                print(f"  the same with the CLI: {cli}", flush=True)
        if not args.quick and not all(
            r.metadata["finetune"]["mnist_validation_unseen_by_base"] for _, r, _ in rows
        ):
            print(
                "warning: the base model's metadata does not show this MNIST validation split "
                "as its own (another split or other data), so it may have trained on some of "
                "these 'validation' digits",
                flush=True,
            )

    print()
    print(
        "| seed | held-out before | held-out after | change (pts) "
        "| MNIST val before | MNIST val after | change (pts) | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    passed = True
    for seed, result, seconds in rows:
        rise = 100 * (result.after.held_out.value - result.before.held_out.value)
        change = 100 * (result.after.mnist_validation.value - result.before.mnist_validation.value)
        passed &= rise >= MIN_HELD_OUT_RISE and -change <= MAX_MNIST_DROP
        print(
            f"| {seed} | {result.before.held_out.percent()} | {result.after.held_out.percent()} "
            f"| {rise:+.2f} | {result.before.mnist_validation.percent()} "
            f"| {result.after.mnist_validation.percent()} | {change:+.2f} | {seconds:.1f} |"
        )
    print(f"median seconds per fine-tune: {statistics.median(s for _, _, s in rows):.1f}")
    verdict = "meets" if passed else "MISSES"
    print(
        f"{verdict} the bar (held-out +{MIN_HELD_OUT_RISE:g} points or more, MNIST validation "
        f"-{MAX_MNIST_DROP:g} points or less) on every seed; base model {args.model}"
    )
    return 0 if passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())

"""``python -m digitnet train | evaluate | predict | info | download``.

Every expected failure is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

from digitnet.errors import DigitnetError

EXIT_FAILURE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "digitnet", *argv])
    try:
        return args.handler(args)
    except (DigitnetError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # output piped into `head` and the like
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from digitnet.model import ARCHITECTURES
    from digitnet.train import DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m digitnet", description="Train, evaluate and use MNIST digit models."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model and save NAME.safetensors + NAME.json",
        description="Train an MLP or CNN on labelled digits; keep the "
        "best weights by validation accuracy.",
    )
    train.add_argument(
        "--data",
        required=True,
        metavar="FILE_OR_DIR",
        help="Kaggle train.csv, MNIST IDX images file, or a folder of either; "
        "'mnist' downloads MNIST's 60,000 training digits",
    )
    train.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="writes PATH.safetensors and PATH.json (default: runs/ARCH)",
    )

    # Recipe flags are absent from ``args`` unless typed (SUPPRESS), so --tutorial can tell
    # "left at the default" from "typed the default value".
    def recipe_flag(flag: str, dest: str, help_text: str, **kwargs) -> None:
        shown = getattr(defaults, dest)
        if isinstance(shown, tuple):
            shown = " ".join(map(str, shown))
        train.add_argument(
            flag,
            dest=dest,
            default=argparse.SUPPRESS,
            help=f"{help_text} (default: {shown})",
            **kwargs,
        )

    recipe_flag("--arch", "architecture", "model", choices=ARCHITECTURES)
    recipe_flag(
        "--hidden", "hidden_sizes", "MLP hidden layer sizes", type=int, nargs="+", metavar="UNITS"
    )
    recipe_flag("--dropout", "dropout", "dropout probability", type=float)
    recipe_flag("--optimizer", "optimizer", "optimizer", choices=OPTIMIZERS)
    recipe_flag("--lr", "lr", "peak learning rate", type=float)
    recipe_flag("--momentum", "momentum", "SGD momentum", type=float)
    recipe_flag(
        "--schedule",
        "schedule",
        "learning-rate schedule",
        choices=SCHEDULES,
    )
    recipe_flag("--epochs", "epochs", "passes over the training digits", type=int)
    recipe_flag("--batch-size", "batch_size", "digits per step", type=int)
    recipe_flag("--weight-decay", "weight_decay", "weight decay", type=float)
    recipe_flag("--label-smoothing", "label_smoothing", "label smoothing", type=float)
    train.add_argument(
        "--no-shuffle",
        dest="shuffle",
        action="store_false",
        default=argparse.SUPPRESS,
        help="keep the file's order every epoch",
    )
    train.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        default=argparse.SUPPRESS,
        help="turn off augmentation (rotation, zoom, shift, shear, thickness, hard strokes)",
    )
    recipe_flag(
        "--warmup-fraction", "warmup_fraction", "onecycle: share of steps warming up", type=float
    )
    recipe_flag(
        "--cnn-channels",
        "cnn_channels",
        "CNN channels of its two conv blocks",
        type=int,
        nargs=2,
        metavar="C",
    )
    recipe_flag("--cnn-hidden", "cnn_hidden", "CNN dense layer units", type=int)
    recipe_flag(
        "--rotate-degrees", "rotate_degrees", "augmentation: rotation within +/-", type=float
    )
    recipe_flag("--scale-range", "scale_range", "augmentation: zoom within 1 +/-", type=float)
    recipe_flag(
        "--shift-pixels", "shift_pixels", "augmentation: shift within +/- pixels", type=float
    )
    recipe_flag("--shear", "shear", "augmentation: shear within +/-", type=float)
    recipe_flag(
        "--thickness-prob",
        "thickness_prob",
        "augmentation: chance of thicker strokes (and the same of thinner)",
        type=float,
    )
    recipe_flag(
        "--thickness-max", "thickness_max", "augmentation: strongest thickening (0-1)", type=float
    )
    recipe_flag(
        "--hard-stroke-prob",
        "hard_stroke_prob",
        "augmentation: chance of hard-edged canvas-like strokes",
        type=float,
    )
    recipe_flag("--val-fraction", "val_fraction", "share of each class held out", type=float)
    recipe_flag("--seed", "seed", "seed for split, weights, order and augmentation", type=int)
    recipe_flag("--device", "device", "where to train", choices=DEVICES)
    train.add_argument(
        "--tutorial",
        action="store_true",
        help="the tutorial's recipe (SGD lr 0.01, batch 100, no shuffle, "
        "100 epochs, no augmentation); other flags given still apply",
    )
    train.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="use only the first N digits (quick runs and smoke tests)",
    )
    train.add_argument(
        "--drawings",
        type=int,
        default=0,
        metavar="N",
        help="also measure accuracy on N canvas-like drawings rendered from "
        "validation digits (about 20 ms each)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy, per-class table, confusion matrix",
        description="Evaluate a model on labelled digits.",
    )
    evaluate.add_argument(
        "--model",
        default="mlp",
        metavar="M",
        help="mlp, cnn (shipped weights) or a checkpoint path",
    )
    evaluate.add_argument(
        "--data",
        required=True,
        metavar="FILE_OR_DIR",
        help="labelled digits: Kaggle train-format CSV, IDX, or folder",
    )
    evaluate.add_argument(
        "--validation-only",
        action="store_true",
        help="only the digits the model held out for validation (--data must be its training data)",
    )
    evaluate.add_argument(
        "--drawings",
        type=int,
        default=0,
        metavar="N",
        help="also measure N canvas-like drawings rendered from the digits",
    )
    evaluate.add_argument(
        "--drawing-seed", type=int, default=0, metavar="S", help="seed of the drawings' styles"
    )
    evaluate.add_argument(
        "--json",
        dest="json_out",
        default=None,
        metavar="FILE",
        help="also write the full metrics as JSON",
    )
    evaluate.set_defaults(handler=run_evaluate)

    predict = commands.add_parser(
        "predict",
        help="label a test CSV or image files",
        description="A test CSV gives a Kaggle submission "
        "(ImageId,Label); image files or folders give "
        "file,label,confidence.",
    )
    predict.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="test CSV, image file, or folder of images"
    )
    predict.add_argument(
        "--model",
        default="mlp",
        metavar="M",
        help="mlp, cnn (shipped weights) or a checkpoint / model.pt path",
    )
    predict.add_argument("--out", required=True, metavar="FILE", help="CSV to write")
    predict.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable or blank images (listed on stderr) instead of stopping",
    )
    predict.set_defaults(handler=run_predict)

    info = commands.add_parser(
        "info",
        help="show a model's card",
        description="Print a checkpoint's architecture, training and metrics.",
    )
    info.add_argument("--model", default="mlp", metavar="M")
    info.set_defaults(handler=run_info)

    download = commands.add_parser(
        "download",
        help="download MNIST (needs the internet)",
        description="Fetch the four MNIST IDX files, checking SHA-256.",
    )
    download.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="folder to keep them in (default: $DIGITNET_CACHE or ~/.cache/digitnet/mnist)",
    )
    download.set_defaults(handler=run_download)
    return parser


# ---------------------------------------------------------------------------


def _load_labelled(path: str):
    from digitnet.data import load_training_data

    if path == "mnist":
        from digitnet.download import download_mnist

        return load_training_data(
            download_mnist(log=lambda line: print(line, file=sys.stderr), progress=_download_bar)
        )
    return load_training_data(path)


def run_train(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import checkpoint_files, save_checkpoint
    from digitnet.data import summarize
    from digitnet.evaluate import evaluate, evaluate_drawings, format_per_class_table
    from digitnet.files import check_writable, refuse_overwriting_inputs
    from digitnet.preprocess import digits_to_inputs
    from digitnet.train import TrainConfig, train_model, tutorial_config

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    config = tutorial_config(**given) if args.tutorial else TrainConfig(**given)
    out = Path(args.out) if args.out else Path("runs") / config.architecture
    if out.is_dir():
        raise DigitnetError(
            f"{out}: is a folder; --out takes a name, e.g. {out / config.architecture}"
        )
    weights_path, meta_path = checkpoint_files(out)
    refuse_overwriting_inputs(weights_path, [args.data])
    refuse_overwriting_inputs(meta_path, [args.data])
    check_writable(weights_path)

    print("config " + json.dumps(config.to_dict()), flush=True)
    digits = _load_labelled(args.data)
    if args.limit is not None:
        digits = digits.subset(np.arange(min(args.limit, len(digits))))
    summary = summarize(digits)
    print(
        f"data {summary['source']}: {summary['count']} digits, per class "
        f"{summary['class_counts']}, fingerprint {summary['fingerprint']}",
        flush=True,
    )
    train_index, val_index = config.split(digits.labels)
    inputs = digits_to_inputs(digits.images)
    print(
        f"split {len(train_index)} train / {len(val_index)} validation (seed {config.seed})",
        flush=True,
    )
    if len(val_index) == 0:
        print(
            "warning: no validation digits, so the last epoch's weights are kept and no "
            "accuracy is measured; use more data or a larger --val-fraction",
            file=sys.stderr,
        )
    if len(np.unique(digits.labels)) < 2:
        print(
            "warning: every digit has the same label; the model can only learn that one",
            file=sys.stderr,
        )

    result = train_model(
        config,
        inputs[train_index],
        digits.labels[train_index],
        inputs[val_index],
        digits.labels[val_index],
        on_epoch=lambda report: print(report.log_line(), flush=True),
        progress=not args.quiet,
    )
    print(
        f"trained in {result.seconds:.1f}s on {result.device}; best epoch {result.best_epoch}",
        flush=True,
    )

    metadata = {
        "history": [r.to_dict() for r in result.history],
        "best_epoch": result.best_epoch,
        "training_seconds": round(result.seconds, 2),
        "command": args.command_line,
        "device": result.device,
        "data": {**summary, "train_count": len(train_index), "val_count": len(val_index)},
    }
    if len(val_index):
        metrics = evaluate(result.model, inputs[val_index], digits.labels[val_index])
        for mistake in metrics["mistakes"]:
            row = int(val_index[mistake["index"]])
            mistake["row"] = row  # 0-based row in the data file
            # The 28x28 digit itself, so the dashboard can show it without the data.
            mistake["pixels"] = base64.b64encode(digits.images[row].tobytes()).decode("ascii")
        metadata["metrics"] = {"validation": metrics}
        print(format_per_class_table(metrics), flush=True)
        if args.drawings:
            drawn = evaluate_drawings(
                result.model,
                digits.images[val_index[: args.drawings]],
                digits.labels[val_index[: args.drawings]],
                seed=config.seed,
            )
            metadata["metrics"]["drawings"] = drawn
            print(
                f"canvas-like drawings: {100 * drawn['accuracy']:.2f}% of {drawn['count']} right",
                flush=True,
            )
    weights_path, meta_path = save_checkpoint(out, result.model, config, metadata)
    print(f"saved {weights_path} and {meta_path}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import load_checkpoint, model_files
    from digitnet.data import fingerprint
    from digitnet.evaluate import evaluate, evaluate_drawings, format_per_class_table
    from digitnet.files import refuse_overwriting_inputs, write_text_atomically
    from digitnet.preprocess import digits_to_inputs
    from digitnet.train import TrainConfig

    if args.json_out:
        refuse_overwriting_inputs(args.json_out, [args.data, *model_files(args.model)])
    model, metadata = load_checkpoint(args.model)
    digits = _load_labelled(args.data)
    trained_on_this = fingerprint(digits) == metadata.get("data", {}).get("fingerprint")
    if args.validation_only:
        if not trained_on_this:
            raise DigitnetError(
                f"{args.data}: not the data this model was trained on (fingerprint differs), "
                f"so its validation split is unknown; drop --validation-only"
            )
        _, val_index = TrainConfig.from_dict(metadata["config"]).split(digits.labels)
        digits = digits.subset(val_index)
        print(f"the model's validation split: {len(digits)} digits", file=sys.stderr)
    elif trained_on_this:
        print(
            "note: this is the data the model was trained on, so this accuracy is "
            "optimistic; add --validation-only for the digits it held out",
            file=sys.stderr,
        )
    metrics = evaluate(model, digits_to_inputs(digits.images), digits.labels)
    print(format_per_class_table(metrics))
    if args.drawings:
        count = min(args.drawings, len(digits))
        metrics["drawings"] = evaluate_drawings(
            model, digits.images[:count], digits.labels[:count], seed=args.drawing_seed
        )
        print(
            f"canvas-like drawings (seed {args.drawing_seed}): "
            f"{100 * metrics['drawings']['accuracy']:.2f}% of {count} right"
        )
    if args.json_out:
        write_text_atomically(args.json_out, json.dumps(metrics, indent=1) + "\n")
        print(f"saved {args.json_out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import load_checkpoint, model_files
    from digitnet.files import refuse_overwriting_inputs
    from digitnet.predict import (
        list_image_files,
        predict_image_files,
        predict_submission,
        write_image_predictions,
        write_submission,
    )

    refuse_overwriting_inputs(args.out, [*args.inputs, *model_files(args.model)])
    csv_inputs = [p for p in args.inputs if Path(p).suffix.lower() == ".csv"]
    if csv_inputs and len(args.inputs) > 1:
        raise DigitnetError("give one test CSV, or image files and folders, not both")
    model, _ = load_checkpoint(args.model)
    start = time.perf_counter()
    if csv_inputs:
        labels = predict_submission(model, csv_inputs[0])
        write_submission(labels, args.out)
        print(f"wrote {args.out}: {len(labels)} predictions in {time.perf_counter() - start:.2f}s")
        return 0
    paths = [path for item in args.inputs for path in list_image_files(item)]
    rows, problems = predict_image_files(model, paths, skip_bad=args.skip_bad)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not rows:
        raise DigitnetError("no image could be classified; nothing was written")
    write_image_predictions(rows, args.out)
    print(
        f"wrote {args.out}: {len(rows)} predictions"
        + (f", {len(problems)} skipped" if problems else "")
    )
    return 0


def run_info(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import load_checkpoint, model_card

    _, metadata = load_checkpoint(args.model)
    for key, value in model_card(metadata).items():
        print(f"{key:<16} {value}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from digitnet.download import download_mnist

    folder = download_mnist(
        args.cache, log=lambda line: print(line, file=sys.stderr), progress=_download_bar
    )
    print(f"MNIST is in {folder}")
    return 0


def _download_bar(name: str):
    """A terminal progress bar for one file's download, as a (done, total) callback."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=name, unit="B", unit_scale=True, leave=False)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update

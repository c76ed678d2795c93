"""``python -m digitnet predict``: label a test CSV or image files."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from digitnet.cli.options import add_model_option
from digitnet.errors import DigitnetError


def add_parser(commands) -> None:
    predict = commands.add_parser(
        "predict",
        help="label a test CSV or image files",
        description="A test CSV gives a Kaggle submission "
        "(ImageId,Label); image files or folders give "
        "file,label,confidence; --numbers FOLDER reads each image as a number of several "
        "digits: file,text,confidence.",
    )
    predict.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="test CSV, image file, or folder of images"
    )
    predict.add_argument(
        "--numbers",
        metavar="FOLDER",
        help="read each image in FOLDER (or one image) as a number of up to 12 digits",
    )
    add_model_option(predict, "the model to ask")
    predict.add_argument("--out", required=True, metavar="FILE", help="CSV to write")
    predict.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable or blank images (listed on stderr) instead of stopping",
    )
    predict.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import load_checkpoint, model_files
    from digitnet.files import refuse_overwriting_inputs

    if bool(args.numbers) == bool(args.inputs):
        raise DigitnetError(
            "give a test CSV, image files or folders, or --numbers FOLDER (one of them)"
        )
    numbers = [args.numbers] if args.numbers else []
    refuse_overwriting_inputs(args.out, [*args.inputs, *numbers, *model_files(args.model)])
    csv_inputs = [p for p in args.inputs if Path(p).suffix.lower() == ".csv"]
    if csv_inputs and len(args.inputs) > 1:
        raise DigitnetError("give one test CSV, or image files and folders, not both")
    model, _ = load_checkpoint(args.model)
    if args.numbers:
        return _predict_numbers(model, args.numbers, args.out, skip_bad=args.skip_bad)
    if csv_inputs:
        return _predict_submission(model, csv_inputs[0], args.out)
    return _predict_images(model, args.inputs, args.out, skip_bad=args.skip_bad)


def _predict_submission(model, csv_path: str, out: str) -> int:
    """A Kaggle submission (ImageId,Label) for a test CSV."""
    from digitnet.predict import predict_submission, write_submission

    start = time.perf_counter()
    labels = predict_submission(model, csv_path)
    write_submission(labels, out)
    print(f"wrote {out}: {len(labels)} predictions in {time.perf_counter() - start:.2f}s")
    return 0


def _predict_images(model, inputs: list[str], out: str, *, skip_bad: bool) -> int:
    """file,label,confidence,is_digit for image files and folders of them."""
    from digitnet.predict import list_image_files, predict_image_files, write_image_predictions

    paths = [path for item in inputs for path in list_image_files(item)]
    rows, problems = predict_image_files(model, paths, skip_bad=skip_bad)
    return _write_rows(rows, problems, write_image_predictions, out, "classified", "predictions")


def _predict_numbers(model, folder: str, out: str, *, skip_bad: bool) -> int:
    """file,text,confidence for images of numbers of several digits."""
    from digitnet.number_images import read_image_files, write_number_predictions
    from digitnet.predict import list_image_files

    rows, problems = read_image_files(model, list_image_files(folder), skip_bad=skip_bad)
    return _write_rows(rows, problems, write_number_predictions, out, "read", "numbers")


def _write_rows(rows, problems: list[str], write, out: str, verb: str, noun: str) -> int:
    """Say what was skipped, refuse an empty result in one line, write the rest."""
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not rows:
        raise DigitnetError(f"no image could be {verb}; nothing was written")
    write(rows, out)
    skipped = f", {len(problems)} skipped" if problems else ""
    print(f"wrote {out}: {len(rows)} {noun}{skipped}")
    return 0

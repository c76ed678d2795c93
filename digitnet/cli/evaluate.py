"""``python -m digitnet evaluate``: accuracy, per-class table, confusion matrix."""

from __future__ import annotations

import argparse
import json
import sys

from digitnet.cli.options import add_data_option, add_model_option, data_paths
from digitnet.errors import DigitnetError


def add_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy, per-class table, confusion matrix",
        description="Evaluate a model on labelled digits.",
    )
    add_model_option(evaluate, "the model to evaluate")
    add_data_option(evaluate)
    evaluate.add_argument(
        "--validation-only",
        action="store_true",
        help="only the digits the model held out for validation (--data must be its training data)",
    )
    evaluate.add_argument(
        "--test",
        action="store_true",
        help="MNIST's 10,000 test digits (t10k, in assets/mnist): for reporting only, never "
        "for choosing a model",
    )
    evaluate.add_argument(
        "--record",
        action="store_true",
        help="with --test: keep the test accuracy in the model's JSON, for its model card",
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
    evaluate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from digitnet.calibration import calibration_of, reliability
    from digitnet.checkpoint import load_checkpoint, model_files, record_test_accuracy
    from digitnet.data import fingerprint, load_mnist, load_training_sources
    from digitnet.drawing_data import Accuracy
    from digitnet.evaluate import evaluate, evaluate_drawings, format_per_class_table
    from digitnet.files import refuse_overwriting_inputs, write_text_atomically
    from digitnet.predict import predict_probs
    from digitnet.preprocess import digits_to_inputs

    if args.json_out:
        refuse_overwriting_inputs(args.json_out, [*(args.data or []), *model_files(args.model)])
    if args.test and (args.data or args.validation_only):
        raise DigitnetError("--test reads MNIST's test digits; drop --data and --validation-only")
    model, metadata = load_checkpoint(args.model)
    if args.test:
        digits = load_mnist("test")
        print(f"MNIST's test digits (t10k): {len(digits):,}", file=sys.stderr)
    else:
        digits, _ = load_training_sources(data_paths(args))
    trained_on_this = fingerprint(digits) == metadata.get("data", {}).get("fingerprint")
    if args.validation_only:
        digits = _validation_split(digits, metadata, trained_on_this)
        print(f"the model's validation split: {len(digits)} digits", file=sys.stderr)
    elif trained_on_this:
        print(
            "note: this is the data the model was trained on, so this accuracy is "
            "optimistic; add --validation-only for the digits it held out",
            file=sys.stderr,
        )
    inputs = digits_to_inputs(digits.images)
    metrics = evaluate(model, inputs, digits.labels)
    print(format_per_class_table(metrics))
    correct = round(metrics["accuracy"] * metrics["count"])
    print(f"  with its 95% interval: {Accuracy(correct, metrics['count']).percent(2, '-')}")
    probs = predict_probs(model, inputs)
    refused = int((probs.max(axis=1) < calibration_of(model).reject_below).sum())
    ece, _ = reliability(probs.max(axis=1), probs.argmax(axis=1) == digits.labels)
    metrics["refused"], metrics["ece"] = refused, ece
    print(
        f"  refused as not a digit: {refused} of {len(digits)}; calibration error (ECE) {ece:.4f}"
    )
    if args.drawings:
        count = min(args.drawings, len(digits))
        metrics["drawings"] = evaluate_drawings(
            model, digits.images[:count], digits.labels[:count], seed=args.drawing_seed
        )
        print(
            f"canvas-like drawings (seed {args.drawing_seed}): "
            f"{100 * metrics['drawings']['accuracy']:.2f}% of {count} right"
        )
    if args.record:
        if not args.test:
            raise DigitnetError("--record keeps the --test figures; add --test")
        low, high = Accuracy(correct, metrics["count"]).interval
        record_test_accuracy(args.model, {**metrics, "low": low, "high": high})
        print(f"recorded in {args.model}'s metadata")
    if args.json_out:
        write_text_atomically(args.json_out, json.dumps(metrics, indent=1) + "\n")
        print(f"saved {args.json_out}")
    return 0


def _validation_split(digits, metadata: dict, trained_on_this: bool):
    """The digits the model held out, rebuilt from its config; refused where unknowable."""
    from digitnet.data import rows_fingerprint
    from digitnet.train import TrainConfig

    if not trained_on_this:
        raise DigitnetError(
            f"{digits.source}: not the data this model was trained on (fingerprint "
            f"differs), so its validation split is unknown; drop --validation-only"
        )
    _, val_index = TrainConfig.from_dict(metadata["config"]).split(digits.labels)
    recorded = metadata["data"].get("val_rows")  # absent before digitnet recorded it
    if recorded is not None and rows_fingerprint(val_index) != recorded:
        trained_with = metadata.get("versions", {}).get("scikit-learn") or "another version"
        raise DigitnetError(
            f"this scikit-learn draws a different validation split from the one the model "
            f"was trained with (scikit-learn {trained_with}); drop --validation-only or "
            f"install that version"
        )
    return digits.subset(val_index)

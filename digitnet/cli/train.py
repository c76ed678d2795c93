"""``python -m digitnet train``: train a model and save NAME.safetensors + NAME.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from digitnet.cli.interrupt import CtrlC, SkipMeasuring, hold_measuring_for_tests
from digitnet.cli.options import (
    EXIT_INTERRUPTED,
    add_data_option,
    add_knob_flags,
    add_quiet_option,
    data_paths,
    knob_values,
    positive_int,
)
from digitnet.errors import DigitnetError


def add_parser(commands) -> None:
    from digitnet.model import ModelConfig
    from digitnet.train import TrainConfig

    train = commands.add_parser(
        "train",
        help="train a model and save NAME.safetensors + NAME.json",
        description="Train an MLP or CNN on labelled digits; keep the best weights by "
        "validation accuracy. Ctrl-C stops after the current step and saves the best so far.",
    )
    add_data_option(train)
    train.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="writes PATH.safetensors and PATH.json (default: runs/ARCH)",
    )
    add_knob_flags(train, ModelConfig, ModelConfig())
    add_knob_flags(train, TrainConfig, TrainConfig())
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
    add_quiet_option(train)
    train.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import checkpoint_files, save_checkpoint
    from digitnet.evaluate import format_per_class_table
    from digitnet.files import check_writable, refuse_overwriting_inputs
    from digitnet.model import ModelConfig
    from digitnet.runs import prepare_data
    from digitnet.train import EpochReport, TrainConfig, TrainingRun, tutorial_config

    given = knob_values(args, ModelConfig, TrainConfig)
    config = tutorial_config(**given) if args.tutorial else TrainConfig.from_knobs(**given)
    architecture = config.model.architecture
    out = Path(args.out) if args.out else Path("runs") / architecture
    if out.is_dir():
        raise DigitnetError(f"{out}: is a folder; --out takes a name, e.g. {out / architecture}")
    weights_path, meta_path = checkpoint_files(out)
    sources = args.data or []
    refuse_overwriting_inputs(weights_path, sources)
    refuse_overwriting_inputs(meta_path, sources)
    check_writable(weights_path)

    print("config " + json.dumps(config.to_dict()), flush=True)
    data = prepare_data(config, _announced_data_paths(args), limit=args.limit)
    _print_data(data, config, args.limit)

    run = TrainingRun(config, *data.train, *data.val, progress=not args.quiet)
    with CtrlC(run) as ctrl_c:
        for report in run:
            if isinstance(report, EpochReport):
                print(report.log_line(), flush=True)
        result = run.result
        print(
            f"trained in {result.seconds:.1f}s on {result.device}; best epoch {result.best_epoch}",
            flush=True,
        )
        metadata = _measure(ctrl_c, result, config, data, args)
        metrics = metadata["metrics"]
        if "validation" in metrics:
            print(format_per_class_table(metrics["validation"]), flush=True)
        if "drawings" in metrics:
            drawn = metrics["drawings"]
            print(
                f"canvas-like drawings: {100 * drawn['accuracy']:.2f}% of {drawn['count']} right",
                flush=True,
            )
        weights_path, meta_path = save_checkpoint(out, result.model, config, metadata)
    if result.stopped:
        last = result.history[-1]
        print(
            f"stopped at epoch {last.epoch}/{last.epochs}; saved the best weights so far "
            f"(epoch {result.best_epoch}) to {weights_path} and {meta_path}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if ctrl_c.pressed:
        print(
            f"interrupted after training; saved the weights (epoch {result.best_epoch}) without "
            f"the drawings measurement to {weights_path} and {meta_path}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(f"saved {weights_path} and {meta_path}")
    return 0


def _announced_data_paths(args: argparse.Namespace) -> list[str]:
    from digitnet.data import DATA_ENV

    if not args.data:
        print(f"data: none given, so the default (set ${DATA_ENV} or --data)", file=sys.stderr)
    return data_paths(args)


def _print_data(data, config, limit: int | None) -> None:
    """Each source, the split, and a warning where the data cannot train a useful model."""
    for source in data.sources:
        print(
            f"data {source['source']}: {source['count']} digits, per class "
            f"{source['class_counts']}, fingerprint {source['fingerprint']}",
            flush=True,
        )
    if limit is not None:
        print(f"limit: using the first {len(data.digits)} digits", flush=True)
    print(
        f"split {len(data.train_index)} train / {len(data.val_index)} validation "
        f"(seed {config.seed})",
        flush=True,
    )
    if len(data.val_index) == 0:
        print(
            "warning: no validation digits, so the last epoch's weights are kept and no "
            "accuracy is measured; use more data or a larger --val-fraction",
            file=sys.stderr,
        )
    if len(np.unique(data.digits.labels)) < 2:
        print(
            "warning: every digit has the same label; the model can only learn that one",
            file=sys.stderr,
        )


def _measure(ctrl_c: CtrlC, result, config, data, args: argparse.Namespace) -> dict:
    """The run's metadata with its metrics; Ctrl-C during the drawings measurement skips it.

    A run stopped by Ctrl-C is not measured on drawings: the person wants the weights now.
    The phase changes inside the ``try``, so a press at any moment lands in it or after it.
    """
    from digitnet.runs import run_metadata

    drawings = 0 if ctrl_c.pressed else args.drawings
    try:
        ctrl_c.phase = ctrl_c.MEASURING
        if drawings:
            hold_measuring_for_tests()
        metadata = run_metadata(result, config, data, drawings=drawings, command=args.command_line)
        ctrl_c.phase = ctrl_c.SAVING
    except SkipMeasuring:
        ctrl_c.phase = ctrl_c.SAVING
        metadata = run_metadata(result, config, data, drawings=0, command=args.command_line)
    return metadata

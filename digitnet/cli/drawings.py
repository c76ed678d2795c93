"""``python -m digitnet drawings export | import | stats | finetune``: people's drawings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from digitnet.cli.interrupt import CtrlC
from digitnet.cli.options import (
    EXIT_INTERRUPTED,
    add_db_option,
    add_knob_flags,
    add_model_option,
    add_quiet_option,
    knob_values,
)
from digitnet.errors import DigitnetError


def add_parser(commands) -> None:
    drawings = commands.add_parser(
        "drawings",
        help="the drawings database: export, import, stats",
        description="People's labelled drawings, kept in SQLite by the app ($DIGITNET_DB, "
        "default runs/drawings.sqlite). Export them as a Kaggle train CSV to train on with "
        "--data, or import a CSV or scikit-learn's UCI digits.",
    )
    actions = drawings.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write the labelled digits as a Kaggle train CSV (drawings kept as not a digit "
        "are left out: the format has no label for them)",
    )
    add_db_option(export)
    export.add_argument("--out", required=True, metavar="FILE", help="CSV to write")
    export.add_argument("--source", default=None, help="only rows from this source")
    export.set_defaults(handler=run_export)
    importer = actions.add_parser(
        "import", help="add a Kaggle train CSV's digits, or scikit-learn's UCI digits"
    )
    importer.add_argument("csv", nargs="?", metavar="FILE.csv", help="a Kaggle train CSV")
    importer.add_argument(
        "--sklearn-digits",
        action="store_true",
        help="scikit-learn's 1,797 UCI digits (8x8, 43 writers who are not MNIST's), "
        "drawn and preprocessed as the app does; added once",
    )
    add_db_option(importer)
    importer.set_defaults(handler=run_import)
    stats = actions.add_parser(
        "stats",
        help="count the drawings per label and source; with --model, measure models on them",
        description="Count the drawings per label (0-9 and 'not a digit') and per source. "
        "With --model (once or more), each model's accuracy on the labelled drawings, overall "
        "and per label, with 95%% Wilson intervals: a model is right on a digit when it gives "
        "that digit without refusing it, and on a non-digit when it refuses it.",
    )
    add_db_option(stats)
    stats.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="M",
        help="a model to measure on the drawings: mlp, cnn, or a checkpoint path (repeatable)",
    )
    stats.set_defaults(handler=run_stats)
    _add_finetune_parser(actions)


def _add_finetune_parser(actions) -> None:
    from digitnet.finetune import FinetuneConfig

    finetune = actions.add_parser(
        "finetune",
        help="fine-tune a model on the labelled drawings (mixed with MNIST) and measure it",
        description="Hold out a share of the drawings (seeded), train a few epochs from --model "
        "on the rest mixed with the MNIST sample's training split (the model's own split, so "
        "its validation digits stay unseen), and print held-out drawing accuracy and MNIST "
        "validation accuracy before and after, with 95% intervals. Saves NAME.safetensors + "
        "NAME.json like train. Ctrl-C stops after the current step and saves what it has.",
    )
    add_db_option(finetune)
    add_model_option(finetune, "the model to start from")
    finetune.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="writes PATH.safetensors and PATH.json (default: runs/ARCH-finetuned); "
        "never inside assets/",
    )
    finetune.add_argument(
        "--source", default=None, help="only drawings from this source (e.g. app, sklearn-digits)"
    )
    add_quiet_option(finetune)
    # --epochs, --lr, --drawing-share, --no-augment, --held-out, --seed: from FinetuneConfig
    add_knob_flags(finetune, FinetuneConfig, FinetuneConfig())
    finetune.set_defaults(handler=run_finetune)


def run_export(args: argparse.Namespace) -> int:
    from digitnet.drawing_data import count_not_digits, export_kaggle_csv
    from digitnet.store import open_store

    with open_store(args.db) as store:
        count = export_kaggle_csv(store, args.out, source=args.source)
        left_out = count_not_digits(store, source=args.source)
    print(f"wrote {args.out}: {count} labelled drawings (train with --data {args.out})")
    if left_out:
        print(f"left out {left_out} drawings kept as not a digit (a Kaggle label is a digit 0-9)")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from digitnet.drawing_data import import_kaggle_csv, import_sklearn_digits
    from digitnet.store import open_store

    if bool(args.csv) == bool(args.sklearn_digits):
        raise DigitnetError("give a Kaggle train CSV or --sklearn-digits (one of the two)")
    with open_store(args.db) as store:
        if args.sklearn_digits:
            result = import_sklearn_digits(store)
            what = "scikit-learn's UCI digits"
        else:
            result = import_kaggle_csv(store, args.csv)
            what = args.csv
        if result.added == 0 and args.sklearn_digits:
            print(f"{store.path} already holds {what}; nothing added ({result.total} drawings)")
        else:
            print(
                f"added {result.added} drawings from {what} to {store.path} ({result.total} in all)"
            )
    return 0


STATS_COLUMNS = [*map(str, range(10)), "not a digit"]


def run_stats(args: argparse.Namespace) -> int:
    from digitnet.store import open_store

    with open_store(args.db) as store:
        stats = store.stats()
        digits = store.labelled_digits() if args.model else None
    print(
        f"{stats.path}: {stats.count} drawings, {stats.size_bytes / 2**20:.1f} of "
        f"{stats.max_bytes / 2**20:.0f} MiB"
    )
    print("label  " + "  ".join(f"{name:>5}" for name in STATS_COLUMNS))
    print("count  " + "  ".join(f"{n:>5}" for n in stats.per_label))
    for source, count in sorted(stats.per_source.items()):
        print(f"source {source}: {count}")
    if args.model:
        _print_accuracy(args.model, digits)
    return 0


def _print_accuracy(names: list[str], digits) -> None:
    """Each model's accuracy on the drawings, overall and per label, with 95% intervals."""
    from digitnet.checkpoint import load_checkpoint
    from digitnet.drawing_data import accuracy_on_drawings

    if len(digits) == 0:
        print("no labelled drawings to measure the models on")
        return
    models = {name: load_checkpoint(name)[0] for name in names}
    print(
        "accuracy on the drawings (a digit: given, not refused; a non-digit: refused), "
        "% [95% interval] of how many"
    )
    for name, accuracy in accuracy_on_drawings(models, digits).items():
        print(f"{name}: {accuracy.overall.percent()} of {accuracy.overall.total}")
        for label, each in zip(STATS_COLUMNS, accuracy.per_label):
            if each.total:
                print(f"  {label:>11}: {each.percent(0, '-')} of {each.total}")


def run_finetune(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import load_checkpoint, save_checkpoint
    from digitnet.finetune import FinetuneConfig, FinetuneReport, FinetuneRun

    settings = FinetuneConfig(**knob_values(args, FinetuneConfig))
    model, metadata = load_checkpoint(args.model)
    out = _finetune_out(args, metadata)
    split = _drawing_split(args, settings, metadata)
    run = FinetuneRun(
        model,
        metadata,
        split,
        settings,
        base_name=args.model,
        drawings_source=args.source,
        command=args.command_line,
        progress=not args.quiet,
    )
    mix = f"{run.repeats}x, {100 * run.drawing_share:.0f}% of each epoch"
    print(
        f"fine-tuning {args.model} for {settings.epochs} epochs on {len(split.train)} drawings "
        f"({mix}) and {len(run.mnist.train_index)} MNIST training digits",
        flush=True,
    )
    with CtrlC(run) as ctrl_c:
        for report in run:
            if isinstance(report, FinetuneReport):
                print(report.log_line(), flush=True)
        ctrl_c.phase = ctrl_c.SAVING  # the before/after figures were measured inside the run
        result = run.result
        figures = [
            ("held-out drawings", result.before.held_out, result.after.held_out),
            ("MNIST validation", result.before.mnist_validation, result.after.mnist_validation),
        ]
        if result.after.held_out_not_a_digit.total:
            refused = result.before.held_out_not_a_digit, result.after.held_out_not_a_digit
            figures.insert(1, ("held-out non-digits refused", *refused))
        for name, before, after in figures:
            change = 100 * (after.value - before.value)
            print(
                f"{name}: {before.percent()} -> {after.percent()} "
                f"({change:+.2f} points, {after.total})"
            )
        weights_path, meta_path = save_checkpoint(out, result.model, result.config, result.metadata)
    if result.stopped:
        print(
            f"stopped early; saved the weights so far to {weights_path} and {meta_path}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(f"saved {weights_path} and {meta_path}")
    return 0


def _finetune_out(args: argparse.Namespace, metadata: dict) -> Path:
    """Where the fine-tune is saved, checked to be writable before any work."""
    from digitnet.checkpoint import checkpoint_files, model_files
    from digitnet.files import check_writable, refuse_overwriting_inputs
    from digitnet.finetune import refuse_shipped_location
    from digitnet.model import ModelConfig

    architecture = ModelConfig.from_dict(metadata["config"]).architecture
    out = Path(args.out) if args.out else Path("runs") / f"{architecture}-finetuned"
    if out.is_dir():
        raise DigitnetError(f"{out}: is a folder; --out takes a name, e.g. {out / architecture}")
    refuse_shipped_location(out)
    weights_path, meta_path = checkpoint_files(out)
    for path in (weights_path, meta_path):
        refuse_overwriting_inputs(path, model_files(args.model))
    check_writable(weights_path)
    return out


def _drawing_split(args: argparse.Namespace, settings, metadata: dict):
    """The stored drawings split into training and held out, announced on stdout."""
    from digitnet.finetune import drawings_from_store, trained_on_drawings
    from digitnet.store import NOT_A_DIGIT, open_store

    with open_store(args.db) as store:
        split = drawings_from_store(
            store, settings, source=args.source, trained_before=trained_on_drawings(metadata)
        )
        nondigits = len(split.train_nondigits) + int((split.held_out.labels == NOT_A_DIGIT).sum())
        print(
            f"drawings {store.path}{f' (source {args.source})' if args.source else ''}: "
            f"{split.count} labelled, training on {len(split.train)}, holding out "
            f"{len(split.held_out)} (share {settings.held_out_fraction:g}, seed {settings.seed})"
            f"{f'; {nondigits} kept as not a digit learn to be refused' if nondigits else ''}",
            flush=True,
        )
    missing = split.digits_without_training_drawings
    if missing:
        print(
            f"warning: no training drawings of {', '.join(map(str, missing))}; the fine-tune "
            "cannot learn your style of those",
            file=sys.stderr,
        )
    return split

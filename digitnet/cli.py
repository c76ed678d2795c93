"""``python -m digitnet train | evaluate | predict | info | download | export | drawings``.

Every expected failure is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digitnet.errors import DigitnetError

EXIT_FAILURE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "digitnet", *argv])
    try:
        return args.handler(args)
    except DigitnetError as error:  # a user's mistake; anything else is a bug and shows its trace
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # output piped into `head` and the like
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_knob_flags(parser: argparse.ArgumentParser, config_type: type, defaults: object) -> None:
    """One flag per field of ``config_type`` made with ``knob()``: help, range and choices
    come from the field's metadata, so they are written once.

    Flags are absent from ``args`` unless typed (SUPPRESS), so --tutorial can tell "left at
    the default" from "typed the default value".
    """
    from digitnet.config import describe_range, knobs

    for field in knobs(config_type):
        meta = field.metadata
        flag = meta["flag"] or "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if field.type == "bool":
            # Both --augment and --no-augment: a recipe such as --tutorial turns some off, and
            # the person may want one back on.
            parser.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f"{meta['help']} ({'on' if default else 'off'} by default)",
            )
            continue
        options: dict = {}
        if meta["choices"] is not None:
            options["choices"] = meta["choices"]
        elif isinstance(default, tuple):
            options.update(type=int, nargs=meta["length"] or "+", metavar="N")
        else:
            options.update(type=type(default), metavar="N" if type(default) is int else "X")
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        bound = describe_range(field)
        parser.add_argument(
            flag,
            dest=field.name,
            default=argparse.SUPPRESS,
            help=f"{meta['help']} (default: {shown}{'; ' + bound if bound else ''})",
            **options,
        )


def build_parser() -> argparse.ArgumentParser:
    from digitnet.data import DATA_ENV
    from digitnet.finetune import FinetuneConfig
    from digitnet.model import ModelConfig
    from digitnet.train import TrainConfig

    parser = argparse.ArgumentParser(
        prog="python -m digitnet", description="Train, evaluate and use MNIST digit models."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_help = (
        "Kaggle train CSV (.csv or .csv.gz), MNIST IDX images file, or a folder of either; "
        "'mnist' downloads MNIST's 60,000 training digits. Give it more than once to train "
        f"on several sources together (default: ${DATA_ENV}, else the 8,000 MNIST digits "
        "in assets/)"
    )

    train = commands.add_parser(
        "train",
        help="train a model and save NAME.safetensors + NAME.json",
        description="Train an MLP or CNN on labelled digits; keep the best weights by "
        "validation accuracy. Ctrl-C stops after the current step and saves the best so far.",
    )
    train.add_argument("--data", action="append", metavar="FILE_OR_DIR", help=data_help)
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
        action="append",
        metavar="FILE_OR_DIR",
        help="labelled digits: Kaggle train-format CSV, IDX, or folder; more than once "
        f"concatenates them (default: ${DATA_ENV}, else the 8,000 MNIST digits in assets/)",
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

    export = commands.add_parser(
        "export",
        help="export a model for the browser (the app's in-page answers)",
        description="Write a checkpoint as a web model file: the forward pass as plain "
        "operations (batch norm folded into the convolutions) and float32 weights in a "
        "safetensors file, which the app's digitnet/ui/static/pipeline.js runs.",
    )
    export.add_argument(
        "--model", default="mlp", metavar="M", help="mlp, cnn (shipped weights) or a checkpoint"
    )
    export.add_argument(
        "--format", choices=("web",), default="web", help="web: for the browser (the only one)"
    )
    export.add_argument(
        "--out", required=True, metavar="PATH", help="writes PATH.safetensors (the web model)"
    )
    export.set_defaults(handler=run_export)

    drawings = commands.add_parser(
        "drawings",
        help="the drawings database: export, import, stats",
        description="People's labelled drawings, kept in SQLite by the app ($DIGITNET_DB, "
        "default runs/drawings.sqlite). Export them as a Kaggle train CSV to train on with "
        "--data, or import a CSV or scikit-learn's UCI digits.",
    )
    actions = drawings.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_help = "the SQLite database (default: $DIGITNET_DB, else runs/drawings.sqlite)"
    export = actions.add_parser("export", help="write the labelled drawings as a Kaggle train CSV")
    export.add_argument("--db", default=None, metavar="PATH", help=db_help)
    export.add_argument("--out", required=True, metavar="FILE", help="CSV to write")
    export.add_argument("--source", default=None, help="only rows from this source")
    export.set_defaults(handler=run_drawings_export)
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
    importer.add_argument("--db", default=None, metavar="PATH", help=db_help)
    importer.set_defaults(handler=run_drawings_import)
    stats = actions.add_parser("stats", help="count the drawings per digit and source")
    stats.add_argument("--db", default=None, metavar="PATH", help=db_help)
    stats.set_defaults(handler=run_drawings_stats)
    finetune = actions.add_parser(
        "finetune",
        help="fine-tune a model on the labelled drawings (mixed with MNIST) and measure it",
        description="Hold out a share of the drawings (seeded), train a few epochs from --model "
        "on the rest mixed with the MNIST sample's training split (the model's own split, so "
        "its validation digits stay unseen), and print held-out drawing accuracy and MNIST "
        "validation accuracy before and after, with 95% intervals. Saves NAME.safetensors + "
        "NAME.json like train. Ctrl-C stops after the current step and saves what it has.",
    )
    finetune.add_argument("--db", default=None, metavar="PATH", help=db_help)
    finetune.add_argument(
        "--model",
        default="mlp",
        help="the model to start from: mlp, cnn (shipped) or a checkpoint path (default: mlp)",
    )
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
    finetune.add_argument("--quiet", action="store_true", help="no progress bar")
    # --epochs, --lr, --drawing-share, --no-augment, --held-out, --seed: from FinetuneConfig
    add_knob_flags(finetune, FinetuneConfig, FinetuneConfig())
    finetune.set_defaults(handler=run_drawings_finetune)
    return parser


# ---------------------------------------------------------------------------


def _data_paths(args: argparse.Namespace) -> list[str]:
    """The --data sources as given, else $DIGITNET_DATA or the shipped sample; 'mnist'
    stands for MNIST downloaded (and cached)."""
    from digitnet.data import default_data

    paths = []
    for path in args.data or [default_data()]:
        if path == "mnist":
            from digitnet.download import download_mnist

            path = str(
                download_mnist(
                    log=lambda line: print(line, file=sys.stderr), progress=_download_bar
                )
            )
        paths.append(path)
    return paths


class _SkipMeasuring(BaseException):
    """Ctrl-C while a finished run is being measured: save it without that measurement.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it.
    """


class _CtrlC:
    """Ctrl-C never throws a run away. The first press stops training after its current step;
    pressed after training, it skips the slow measurement on drawings; pressed while saving,
    it waits for the save. Either way the best weights so far are saved. A second press quits
    at once without saving, as Ctrl-C usually does.
    """

    TRAINING, MEASURING, SAVING = "training", "measuring", "saving"

    def __init__(self, run) -> None:
        self.run = run
        self.phase = self.TRAINING
        self.pressed = False

    def __enter__(self) -> _CtrlC:
        self.previous = signal.signal(signal.SIGINT, self._first_press)
        return self

    def __exit__(self, *exc_info) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def _first_press(self, signum, frame) -> None:
        signal.signal(signal.SIGINT, self.previous)
        self.pressed = True
        doing = {
            self.TRAINING: "stopping after this step to save the best weights so far",
            self.MEASURING: "skipping the drawings measurement to save the weights now",
            self.SAVING: "saving the weights; one moment",
        }[self.phase]
        print(f"\n{doing} (Ctrl-C again to quit without saving)", file=sys.stderr, flush=True)
        if self.phase == self.TRAINING:
            self.run.stop()
        elif self.phase == self.MEASURING:
            raise _SkipMeasuring


def run_train(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import checkpoint_files, save_checkpoint
    from digitnet.data import DATA_ENV
    from digitnet.evaluate import format_per_class_table
    from digitnet.files import check_writable, refuse_overwriting_inputs
    from digitnet.runs import prepare_data, run_metadata
    from digitnet.train import EpochReport, TrainConfig, TrainingRun, tutorial_config

    given = {name: value for name, value in vars(args).items() if name in _knob_names()}
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
    if not args.data:
        print(f"data: none given, so the default (set ${DATA_ENV} or --data)", file=sys.stderr)
    data = prepare_data(config, _data_paths(args), limit=args.limit)
    digits = data.digits
    for source in data.sources:
        print(
            f"data {source['source']}: {source['count']} digits, per class "
            f"{source['class_counts']}, fingerprint {source['fingerprint']}",
            flush=True,
        )
    if args.limit is not None:
        print(f"limit: using the first {len(digits)} digits", flush=True)
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
    if len(np.unique(digits.labels)) < 2:
        print(
            "warning: every digit has the same label; the model can only learn that one",
            file=sys.stderr,
        )

    run = TrainingRun(config, *data.train, *data.val, progress=not args.quiet)
    with _CtrlC(run) as ctrl_c:
        for report in run:
            if isinstance(report, EpochReport):
                print(report.log_line(), flush=True)
        result = run.result
        print(
            f"trained in {result.seconds:.1f}s on {result.device}; best epoch {result.best_epoch}",
            flush=True,
        )
        ctrl_c.phase = ctrl_c.MEASURING
        # Stopped by Ctrl-C, the person wants the weights now, not a measurement on drawings.
        drawings = 0 if ctrl_c.pressed else args.drawings
        try:
            metadata = run_metadata(
                result, config, data, drawings=drawings, command=args.command_line
            )
        except _SkipMeasuring:
            metadata = run_metadata(result, config, data, drawings=0, command=args.command_line)
        ctrl_c.phase = ctrl_c.SAVING
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


def _knob_names() -> set[str]:
    from digitnet.config import knobs
    from digitnet.model import ModelConfig
    from digitnet.train import TrainConfig

    return {f.name for config_type in (ModelConfig, TrainConfig) for f in knobs(config_type)}


def run_evaluate(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import load_checkpoint, model_files
    from digitnet.data import fingerprint, load_training_sources, rows_fingerprint
    from digitnet.evaluate import evaluate, evaluate_drawings, format_per_class_table
    from digitnet.files import refuse_overwriting_inputs, write_text_atomically
    from digitnet.preprocess import digits_to_inputs
    from digitnet.train import TrainConfig

    if args.json_out:
        refuse_overwriting_inputs(args.json_out, [*(args.data or []), *model_files(args.model)])
    model, metadata = load_checkpoint(args.model)
    digits, _ = load_training_sources(_data_paths(args))
    trained_on_this = fingerprint(digits) == metadata.get("data", {}).get("fingerprint")
    if args.validation_only:
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


def run_export(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import load_checkpoint, model_files
    from digitnet.export import WEB_SUFFIX, export_web
    from digitnet.files import refuse_overwriting_inputs

    out = Path(args.out)
    if out.suffix != WEB_SUFFIX:
        out = out.with_name(out.name + WEB_SUFFIX)
    refuse_overwriting_inputs(out, model_files(args.model))
    model, metadata = load_checkpoint(args.model)
    path = export_web(model, metadata, out)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB, format {args.format})")
    return 0


def run_drawings_export(args: argparse.Namespace) -> int:
    from digitnet.drawing_data import export_kaggle_csv
    from digitnet.store import open_store

    with open_store(args.db) as store:
        count = export_kaggle_csv(store, args.out, source=args.source)
    print(f"wrote {args.out}: {count} labelled drawings (train with --data {args.out})")
    return 0


def run_drawings_import(args: argparse.Namespace) -> int:
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


def run_drawings_stats(args: argparse.Namespace) -> int:
    from digitnet.store import open_store

    with open_store(args.db) as store:
        stats = store.stats()
    print(
        f"{stats.path}: {stats.count} drawings, {stats.size_bytes / 2**20:.1f} of "
        f"{stats.max_bytes / 2**20:.0f} MiB"
    )
    print("digit  " + "  ".join(f"{d:>5}" for d in range(10)))
    print("count  " + "  ".join(f"{n:>5}" for n in stats.per_digit))
    for source, count in sorted(stats.per_source.items()):
        print(f"source {source}: {count}")
    return 0


def run_drawings_finetune(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import checkpoint_files, load_checkpoint, model_files, save_checkpoint
    from digitnet.config import knobs
    from digitnet.files import check_writable, refuse_overwriting_inputs
    from digitnet.finetune import (
        FinetuneConfig,
        FinetuneReport,
        FinetuneRun,
        drawings_from_store,
        points,
        refuse_shipped_location,
        trained_on_drawings,
    )
    from digitnet.model import ModelConfig
    from digitnet.store import open_store

    given = {f.name: getattr(args, f.name) for f in knobs(FinetuneConfig) if hasattr(args, f.name)}
    settings = FinetuneConfig(**given)
    model, metadata = load_checkpoint(args.model)
    architecture = ModelConfig.from_dict(metadata["config"]).architecture
    out = Path(args.out) if args.out else Path("runs") / f"{architecture}-finetuned"
    if out.is_dir():
        raise DigitnetError(f"{out}: is a folder; --out takes a name, e.g. {out / architecture}")
    refuse_shipped_location(out)
    weights_path, meta_path = checkpoint_files(out)
    for path in (weights_path, meta_path):
        refuse_overwriting_inputs(path, model_files(args.model))
    check_writable(weights_path)

    with open_store(args.db) as store:
        split = drawings_from_store(
            store, settings, source=args.source, trained_before=trained_on_drawings(metadata)
        )
        print(
            f"drawings {store.path}{f' (source {args.source})' if args.source else ''}: "
            f"{split.count} labelled, training on {len(split.train)}, holding out "
            f"{len(split.held_out)} (share {settings.held_out_fraction:g}, seed {settings.seed})",
            flush=True,
        )
    missing = split.digits_without_training_drawings
    if missing:
        print(
            f"warning: no training drawings of {', '.join(map(str, missing))}; the fine-tune "
            "cannot learn your style of those",
            file=sys.stderr,
        )
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
    with _CtrlC(run) as ctrl_c:
        for report in run:
            if isinstance(report, FinetuneReport):
                print(report.log_line(), flush=True)
        ctrl_c.phase = ctrl_c.SAVING  # the before/after figures were measured inside the run
        result = run.result
        for name, before, after in (
            ("held-out drawings", result.before.held_out, result.after.held_out),
            ("MNIST validation", result.before.mnist_validation, result.after.mnist_validation),
        ):
            change = 100 * (after.value - before.value)
            print(
                f"{name}: {points(before)} -> {points(after)} ({change:+.2f} points, {after.total})"
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


def _download_bar(name: str):
    """A terminal progress bar for one file's download, as a (done, total) callback."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=name, unit="B", unit_scale=True, leave=False)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update

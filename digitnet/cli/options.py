"""What several subcommands share: exit codes, flags written once, and the --data sources."""

from __future__ import annotations

import argparse
import sys

EXIT_FAILURE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

DB_HELP = "the SQLite database (default: $DIGITNET_DB, else runs/drawings.sqlite)"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_model_option(parser: argparse.ArgumentParser, role: str) -> None:
    """``--model``, the one way every subcommand names a model; ``role`` says what it is for."""
    parser.add_argument(
        "--model",
        default="mlp",
        metavar="M",
        help=f"{role}: mlp, cnn (the shipped weights), a checkpoint path or a tutorial "
        "model.pt (default: mlp)",
    )


def add_data_option(parser: argparse.ArgumentParser) -> None:
    """``--data``, labelled digits from one or several sources."""
    from digitnet.data import DATA_ENV

    parser.add_argument(
        "--data",
        action="append",
        metavar="FILE_OR_DIR",
        help="labelled digits: Kaggle train CSV (.csv or .csv.gz), MNIST IDX images file, or a "
        "folder of either; 'mnist' downloads MNIST's 60,000 training digits. Give it more than "
        f"once to use several sources together (default: ${DATA_ENV}, else the 8,000 MNIST "
        "digits in assets/)",
    )


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, metavar="PATH", help=DB_HELP)


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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


def knob_values(args: argparse.Namespace, *config_types: type) -> dict:
    """The knob flags typed on the command line (see :func:`add_knob_flags`), by field name."""
    from digitnet.config import knobs

    names = {field.name for config_type in config_types for field in knobs(config_type)}
    return {name: value for name, value in vars(args).items() if name in names}


def data_paths(args: argparse.Namespace) -> list[str]:
    """The --data sources as given, else $DIGITNET_DATA or the shipped sample; 'mnist'
    stands for MNIST downloaded (and cached)."""
    from digitnet.data import default_data

    paths = []
    for path in args.data or [default_data()]:
        if path == "mnist":
            from digitnet.download import download_mnist

            path = str(download_mnist(log=print_to_stderr, progress=download_bar))
        paths.append(path)
    return paths


def print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def download_bar(name: str):
    """A terminal progress bar for one file's download, as a (done, total) callback."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=name, unit="B", unit_scale=True, leave=False)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update

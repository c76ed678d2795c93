"""``python -m digitnet train | evaluate | ... | drawings | room``: the command line.

Each subcommand's parser sits beside its handler, one module per subcommand:
``train``, ``evaluate``, ``predict``, ``info``, ``download``, ``export``, ``drawings``
(``export``, ``import``, ``stats``, ``finetune``) and ``room`` (``list``, ``remove``).
``options`` holds the flags several share, ``interrupt`` what Ctrl-C does to a run.

Every expected failure is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from digitnet.cli import (
    calibrate,
    download,
    drawings,
    evaluate,
    export,
    info,
    predict,
    room,
    train,
)
from digitnet.cli.options import EXIT_FAILURE, EXIT_INTERRUPTED
from digitnet.errors import DigitnetError

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "build_parser", "main"]

SUBCOMMANDS = (
    train,
    evaluate,
    calibrate,
    predict,
    info,
    download,
    export,
    drawings,
    room,
)  # in --help's order


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m digitnet", description="Train, evaluate and use MNIST digit models."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(commands)
    return parser

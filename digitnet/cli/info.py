"""``python -m digitnet info``: a model's card."""

from __future__ import annotations

import argparse

from digitnet.cli.options import add_model_option


def add_parser(commands) -> None:
    info = commands.add_parser(
        "info",
        help="show a model's card",
        description="Print a checkpoint's architecture, training and metrics.",
    )
    add_model_option(info, "the model to describe")
    info.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from digitnet.checkpoint import load_checkpoint, model_card

    _, metadata = load_checkpoint(args.model)
    for key, value in model_card(metadata).items():
        print(f"{key:<16} {value}")
    return 0

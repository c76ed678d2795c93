"""``python -m digitnet download``: MNIST's four IDX files, SHA-256 checked."""

from __future__ import annotations

import argparse

from digitnet.cli.options import download_bar, print_to_stderr


def add_parser(commands) -> None:
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
    download.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from digitnet.download import download_mnist

    folder = download_mnist(args.cache, log=print_to_stderr, progress=download_bar)
    print(f"MNIST is in {folder}")
    return 0

"""``python -m digitnet export``: a model for the browser (the app's in-page answers)."""

from __future__ import annotations

import argparse
from pathlib import Path

from digitnet.cli.options import add_model_option


def add_parser(commands) -> None:
    export = commands.add_parser(
        "export",
        help="export a model for the browser (the app's in-page answers)",
        description="Write a checkpoint as a web model file: the forward pass as plain "
        "operations (batch norm folded into the convolutions) and float32 weights in a "
        "safetensors file, which the app's digitnet/ui/static/pipeline.js runs.",
    )
    add_model_option(export, "the model to export")
    export.add_argument(
        "--format", choices=("web",), default="web", help="web: for the browser (the only one)"
    )
    export.add_argument(
        "--out", required=True, metavar="PATH", help="writes PATH.safetensors (the web model)"
    )
    export.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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

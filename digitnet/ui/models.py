"""The models the app serves: loaded once at start, and exported for the browser."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from digitnet.checkpoint import SHIPPED_MODELS, load_checkpoint
from digitnet.errors import DigitnetError
from digitnet.export import web_bytes, write_web_file

SHIPPED = {name.upper(): name for name in SHIPPED_MODELS}  # model choice -> --model name


@dataclass(frozen=True)
class LoadedModel:
    name: str
    model: nn.Module
    metadata: dict


def load_models(
    extra: str | None = None, shipped: dict[str, str] | None = None
) -> tuple[dict[str, LoadedModel], list[str]]:
    """The shipped MLP and CNN, plus ``extra`` (a checkpoint path) first if given.

    A model that cannot be loaded is skipped with a one-line warning, so the app still
    starts with whatever does load.
    """
    models: dict[str, LoadedModel] = {}
    warnings: list[str] = []
    shipped = SHIPPED if shipped is None else shipped
    wanted = ([(f"Custom: {Path(extra).stem}", extra)] if extra else []) + list(shipped.items())
    for name, source in wanted:
        try:
            model, metadata = load_checkpoint(source)
        except DigitnetError as error:
            warnings.append(f"could not load {source}: {error}")
            continue
        models[name] = LoadedModel(name, model, metadata)
    return models, warnings


def export_for_browser(
    models: dict[str, LoadedModel], folder: Path
) -> tuple[dict[str, Path], list[str]]:
    """Each model as a web model file in ``folder`` (a temporary folder if that is not
    writable), named by its content so browsers may cache it for good.

    A model that cannot be exported stays on the server, with a one-line warning.
    """
    files: dict[str, Path] = {}
    warnings: list[str] = []
    for name, loaded in models.items():
        try:
            data = web_bytes(loaded.model, loaded.metadata)
        except DigitnetError as error:
            warnings.append(f"{name} answers from the server only: {error}")
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"
        for where in (folder, Path(tempfile.gettempdir()) / "digitnet-web"):
            try:
                files[name] = write_web_file(data, where, slug)
            except (OSError, DigitnetError):
                continue
            break
        else:
            warnings.append(f"{name} answers from the server only: {folder} is not writable")
    return files, warnings

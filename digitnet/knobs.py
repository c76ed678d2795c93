"""Knobs as a UI or an API sends them: parsing raw values into a checked config, their help
text, and the presets a UI offers.

Values arrive as a visitor typed them (strings, a slider's floats, lists); :func:`parse_knobs`
turns them into a :class:`digitnet.train.TrainConfig` or one line saying what is wrong.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping

import numpy as np

from digitnet.config import ConfigError, describe_range, knobs
from digitnet.model import ModelConfig
from digitnet.train import TrainConfig, tutorial_config

SERVER_KNOBS = ("device",)  # where to train is the server's choice, not a visitor's
MIN_TRAIN_SIZE = 10


def _preset(config: TrainConfig, **changes) -> dict:
    values = {**config.knob_values(), **changes}
    return {name: value for name, value in values.items() if name not in SERVER_KNOBS}


# Presets a UI offers: flat knobs, as TrainConfig.from_knobs takes them. Measured on the shipped
# 8,000 digits on this 2-core machine, one thread (scripts/train_benchmark.py):
# - "tiny and fast" reaches 95% validation in well under 20 s: one hidden layer, and only the
#   cheap geometric augmentations (hard strokes and thickness cost 75% of an augmented step);
# - "digitnet's recipe" runs 15 of the CLI's 30 epochs, which fits a minute: 97.6% in 44 s,
#   where 20 epochs gave 97.75% in 56 s.
PRESETS: dict[str, dict] = {
    "digitnet's recipe": _preset(TrainConfig(), epochs=15),
    # No non-digits either: "tiny and fast" shows what a small net learns in seconds.
    "tiny and fast": _preset(
        TrainConfig(),
        hidden_sizes=(256,),
        epochs=10,
        thickness_prob=0.0,
        hard_stroke_prob=0.0,
        nondigit_fraction=0.0,
    ),
    # The tutorial trained 100 epochs; 20 fit a workshop and still show plain SGD's slow climb.
    "the original tutorial": _preset(tutorial_config(), epochs=20),
}
DEFAULT_PRESET = "digitnet's recipe"


def knob_fields() -> list[dataclasses.Field]:
    """Every knob a visitor may set, model's first, with its help, range and choices."""
    fields = [*knobs(ModelConfig), *knobs(TrainConfig)]
    return [f for f in fields if f.name not in SERVER_KNOBS]


def _knob_types() -> dict[str, type]:
    return {**typing.get_type_hints(ModelConfig), **typing.get_type_hints(TrainConfig)}


def parse_knobs(values: Mapping[str, object]) -> tuple[TrainConfig, int | None]:
    """A validated config and the training-set size from raw UI or API values.

    Values may be strings ("0.01", "512, 512"), floats for whole numbers (a slider's 10.0),
    or lists for sizes. Anything else, out of range or unknown is a one-line ConfigError.
    ``train_size`` None (or absent) means every training digit.
    """
    values = dict(values)
    train_size = _whole("train_size", values.pop("train_size", None))
    if train_size is not None and train_size < MIN_TRAIN_SIZE:
        raise ConfigError(f"train_size must be at least {MIN_TRAIN_SIZE}, got {train_size}")
    server = sorted(set(values) & set(SERVER_KNOBS))
    if server:
        raise ConfigError(f"{', '.join(server)} is chosen by the server, not per run")
    types = _knob_types()
    settings = {}
    for name, value in values.items():
        if value is None or name not in types:
            settings[name] = value  # unknown names: from_knobs says so in one line
            continue
        settings[name] = _typed(name, value, types[name])
    return TrainConfig.from_knobs(**settings), train_size


def _typed(name: str, value: object, kind: object) -> object:
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if kind is int:
        return _whole(name, value)
    if kind is float:
        return _number(name, value)
    if typing.get_origin(kind) is tuple:
        return _sizes(name, value)
    return value if not isinstance(value, str) else value.strip()


def _number(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return number


def _whole(name: str, value: object) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _number(name, value)
    if number != int(number):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _sizes(name: str, value: object) -> tuple[int, ...]:
    """``"512, 512"``, ``"[64, 64]"``, ``"256"``, ``[64, 64]`` -> a tuple of whole numbers."""
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        parts = [part for part in re.split(r"[,\s]+", text) if part]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    if not parts:
        raise ConfigError(f"{name} needs at least one size, e.g. 512, 512")
    return tuple(_whole(name, part) for part in parts)


def knob_text(value: object) -> object:
    """A knob's value as a UI shows it: sizes as "512, 512", everything else as it is."""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    return value


def knob_help(field: dataclasses.Field) -> str:
    """A field's help with its range, as one line for a UI."""
    meta, bound = field.metadata, describe_range(field)
    if meta["choices"] or not bound:
        return meta["help"]
    if typing.get_origin(_knob_types()[field.name]) is tuple:
        return f"{meta['help']}: comma-separated, each {bound}"
    return f"{meta['help']}, {bound}"

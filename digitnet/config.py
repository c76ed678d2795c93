"""Config dataclasses whose fields say what they are: help, range and choices, written once.

A field made with :func:`knob` carries its help text, its bounds and its choices in the
dataclass field's metadata. From that one source:

- :func:`check_knobs` validates a config with one-line :class:`ConfigError` messages;
- the CLI generates its flags (``digitnet.cli``), and a UI can generate its sliders.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import Field
from typing import Any

from digitnet.errors import DigitnetError


class ConfigError(DigitnetError, ValueError):
    """A config value out of range, not among the choices, or contradicting another."""


def knob(
    default: Any,
    help: str,  # noqa: A002 - the name argparse and every reader expect
    *,
    low: float | None = None,
    high: float | None = None,
    high_open: bool = False,
    low_open: bool = False,
    choices: Sequence[str] | None = None,
    flag: str | None = None,
    length: int | None = None,
) -> Any:
    """A dataclass field with its documentation and bounds in ``metadata``.

    ``low``/``high`` bound numbers (and each number of a tuple), inclusive unless
    ``low_open``/``high_open``; ``length`` fixes a tuple's length (None: one or more);
    ``flag`` overrides the CLI flag derived from the name (``batch_size`` -> ``--batch-size``).
    """
    metadata = {
        "help": help,
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "choices": tuple(choices) if choices is not None else None,
        "flag": flag,
        "length": length,
    }
    if isinstance(default, tuple):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def knobs(config_type: type) -> Iterator[Field]:
    """The fields of a config class made with :func:`knob`, in declaration order."""
    return (f for f in dataclasses.fields(config_type) if "help" in f.metadata)


def describe_range(field: Field) -> str:
    """``[0, 1)``, ``>= 1``, ``> 0``... as a person reads a bound; '' when unbounded."""
    meta = field.metadata
    low, high = meta["low"], meta["high"]
    if low is not None and high is not None:
        opening = "(" if meta["low_open"] else "["
        closing = ")" if meta["high_open"] else "]"
        return f"{opening}{low:g}, {high:g}{closing}"
    if low is not None:
        return f"{'>' if meta['low_open'] else '>='} {low:g}"
    if high is not None:
        return f"{'<' if meta['high_open'] else '<='} {high:g}"
    return ""


def check_knobs(config: Any) -> None:
    """Raise a one-line ConfigError for the first field outside its range or choices."""
    for field in knobs(type(config)):
        value = getattr(config, field.name)
        meta = field.metadata
        name = field.name
        if meta["choices"] is not None and value not in meta["choices"]:
            raise ConfigError(f"{name} must be one of {', '.join(meta['choices'])}, got {value!r}")
        numbers = value if isinstance(value, tuple) else (value,)
        if isinstance(value, tuple):
            if meta["length"] is not None and len(value) != meta["length"]:
                raise ConfigError(f"{name} needs {meta['length']} sizes, got {len(value)}")
            if not value:
                raise ConfigError(f"{name} needs at least one size")
        if field.type in ("bool", bool) or meta["choices"] is not None:
            continue
        for number in numbers:
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise ConfigError(f"{name} must be a number, got {number!r}")
            if not math.isfinite(number):  # NaN passes every comparison, so say it here
                raise ConfigError(f"{name} must be a finite number, got {number!r}")
            if not _within(number, meta):
                raise ConfigError(f"{name} must be {_range_words(field)}, got {number!r}")


def _within(number: float, meta: dict) -> bool:
    low, high = meta["low"], meta["high"]
    if low is not None and (number <= low if meta["low_open"] else number < low):
        return False
    return not (high is not None and (number >= high if meta["high_open"] else number > high))


def _range_words(field: Field) -> str:
    bound = describe_range(field)
    return f"in {bound}" if bound.startswith(("[", "(")) else bound


def coerce_tuples(config: Any) -> None:
    """Lists from JSON or a UI become tuples of ints, so configs compare and hash alike."""
    for field in knobs(type(config)):
        value = getattr(config, field.name)
        if isinstance(value, list | tuple):
            try:
                object.__setattr__(config, field.name, tuple(int(v) for v in value))
            except (TypeError, ValueError):
                raise ConfigError(f"{field.name} needs whole numbers, got {value!r}") from None


def known_values(config_type: type, values: dict) -> dict:
    """The entries of ``values`` that name fields of ``config_type`` (saved files may hold more)."""
    names = {f.name for f in dataclasses.fields(config_type)}
    return {k: v for k, v in values.items() if k in names}

"""A training setup as a link: the Train tab's knobs in a page's URL query, and back.

``?preset=tiny+and+fast&epochs=3&lr=0.01&hidden_sizes=64`` names a preset and the knobs that
differ from it, by the names the ``train`` API takes. :func:`setup_from_query` reads such a
query with the knob parser the Train tab and the API use (:func:`digitnet.knobs.parse_knobs`),
so a link is held to the same checks as a run; a value it cannot use keeps the preset's and
says so in one line. :func:`setup_query` writes the query for a setup: the preset's name and
only what differs from it, so links stay short.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode

from digitnet.admission import Caps
from digitnet.config import ConfigError
from digitnet.knobs import DEFAULT_PRESET, PRESETS, knob_fields, parse_knobs
from digitnet.train import TrainConfig

PRESET_PARAM = "preset"
TRAIN_SIZE = "train_size"  # not a config field: the first N training digits (None: all)
# What else a page's query may carry that is not a setup: the presenter view (``view``) and
# Gradio's own theme switch (``__theme``); these pass without a note.
PAGE_PARAMS = frozenset({"view", "__theme"})
SIZES_SEPARATOR = ","  # "64,32": a comma stays readable in a URL (urlencode keeps it)
MAX_SHOWN = 40  # characters of a link's name or value a note repeats (a link may hold anything)
MAX_NAMES_SHOWN = 5  # unknown names a note lists before "and N more"


# Knobs of whole numbers (counts, sizes), for a note that says "not a whole number".
_WHOLE = {
    name
    for name, value in TrainConfig().knob_values().items()
    if isinstance(value, (int, list)) and not isinstance(value, bool)
} | {TRAIN_SIZE}


def link_knob_names() -> list[str]:
    """Every knob a link may set, in the Train tab's order: the config's, then train_size."""
    return [field.name for field in knob_fields()] + [TRAIN_SIZE]


@dataclass(frozen=True)
class LinkedSetup:
    """What a link sets: a preset and every knob's value, with a line for each thing unused.

    ``values`` holds every knob of :func:`link_knob_names`, typed as the config holds them
    (sizes as tuples, ``train_size`` None for every digit); ``changed`` names those the link
    set; ``notes`` says, one line each, what in the link was not used and why.
    """

    preset: str
    values: dict[str, object]
    changed: tuple[str, ...]
    notes: tuple[str, ...]


def preset_values(preset: str) -> dict[str, object]:
    """The preset's knobs, typed as a link's are read (train_size: None, every digit)."""
    config, train_size = parse_knobs(PRESETS[preset])
    return _typed_values(config, train_size)


def _typed_values(config, train_size: int | None) -> dict[str, object]:
    values = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in config.knob_values().items()
    }
    knobs = {field.name: values[field.name] for field in knob_fields()}
    return {**knobs, TRAIN_SIZE: train_size}


def setup_from_query(
    query: Mapping[str, str] | Iterable[tuple[str, str]], caps: Caps | None = None
) -> LinkedSetup:
    """The setup a page's query asks for (a mapping or its (name, value) pairs; the last of a
    repeated name counts). Never raises: what it cannot use is kept from the preset, with a
    note. ``caps`` are the server's: an epochs or train_size over them is not used either."""
    pairs = list(query.items() if isinstance(query, Mapping) else query)
    given = {str(name): str(value) for name, value in pairs}
    notes: list[str] = []
    preset = given.pop(PRESET_PARAM, DEFAULT_PRESET).strip() or DEFAULT_PRESET
    if preset not in PRESETS:
        notes.append(
            f"{PRESET_PARAM}={shorten(preset)} in the link is not one of the presets "
            f"({', '.join(PRESETS)}); kept {DEFAULT_PRESET}"
        )
        preset = DEFAULT_PRESET
    base = preset_values(preset)
    names = link_knob_names()
    unknown = [name for name in given if name not in names and name not in PAGE_PARAMS]
    values = dict(base)
    changed = []
    for name in names:
        if name not in given:
            continue
        value, problem = _read_one(preset, name, given[name], caps)
        if problem:
            kept = "every digit" if base[name] is None else f"the preset's {show_value(base[name])}"
            notes.append(f"{problem}; kept {kept}")
        elif value != base[name]:
            values[name] = value
            changed.append(name)
    if unknown:
        listed = ", ".join(f"{shorten(name)}=" for name in unknown[:MAX_NAMES_SHOWN])
        more = len(unknown) - MAX_NAMES_SHOWN
        listed += f" and {more} more" if more > 0 else ""
        notes.append(
            f"ignored {listed} in the link: "
            f"{'not a knob' if len(unknown) == 1 else 'not knobs'} of the Train tab"
        )
    return LinkedSetup(preset, values, tuple(changed), tuple(notes))


def _read_one(preset: str, name: str, raw: str, caps: Caps | None) -> tuple[object, str]:
    """(the typed value, '') for one knob of a link, checked against its preset's others;
    (None, what is wrong) where it cannot be used."""
    said = f"{name}={shorten(raw)}"
    if not raw.strip() and name != TRAIN_SIZE:  # an empty train_size: every digit
        return None, f"{said} in the link is empty"
    text = raw.replace(SIZES_SEPARATOR, ", ")  # "64,32": the parser's own "64, 32"
    try:
        config, train_size = parse_knobs({**PRESETS[preset], name: text})
    except ConfigError as error:
        return None, f"{said} in the link {_reason(name, str(error))}"
    value = _typed_values(config, train_size)[name]
    limit = _server_limit(name, caps)
    if limit is not None and value is not None and value > limit:
        return None, f"{said} in the link is over this server's {limit:,}"
    return value, ""


def shorten(text: str) -> str:
    """``text`` as a note repeats it: at most MAX_SHOWN characters."""
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _reason(name: str, message: str) -> str:
    """ "epochs must be a number, got 'abc'" -> "is not a whole number": the link already
    shows the value, so the parser's echo of it goes."""
    if not message.startswith(f"{name} "):
        return f"is not usable ({message})"
    reason = message[len(name) + 1 :].split(", got ")[0]
    if reason in ("must be a number", "must be a whole number"):
        return "is not a whole number" if name in _WHOLE else "is not a number"
    return reason


def _server_limit(name: str, caps: Caps | None) -> int | None:
    """The server's most for the knobs whose inputs stop there (a run would be refused)."""
    if caps is None:
        return None
    return {"epochs": caps.max_epochs, TRAIN_SIZE: caps.max_train_size}.get(name)


def show_value(value: object) -> str:
    """A knob's value as a note says it: sizes "64, 32", every digit "all"."""
    if value is None:
        return "all"
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def link_value(value: object) -> str:
    """A knob's value as a link says it: sizes "64,32", booleans "true", numbers as short as
    they read back exactly (Python's repr of a float)."""
    if isinstance(value, (tuple, list)):
        return SIZES_SEPARATOR.join(str(int(v)) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def setup_query(preset: str, values: Mapping[str, object], caps: Caps | None = None) -> str:
    """The query of a link to this setup: the preset, then each knob that differs from it.

    ``values`` are the knobs as a UI holds them (strings, a slider's floats, lists; missing
    ones are the preset's). They are checked as a run's are: a ConfigError names the first
    knob that is wrong. ``train_size`` None is every digit, and so is the most ``caps`` allow
    (what the server trains on when a run leaves it out).
    """
    if preset not in PRESETS:
        raise ConfigError(f"{preset!r} is not a preset; pick one of {', '.join(PRESETS)}")
    base = preset_values(preset)
    config, train_size = parse_knobs({**PRESETS[preset], **values})
    if caps is not None and train_size is not None and train_size >= caps.max_train_size:
        train_size = None
    current = _typed_values(config, train_size)
    pairs = [(PRESET_PARAM, preset)]
    for name in link_knob_names():
        if not _same(current[name], base[name]):
            pairs.append((name, link_value(current[name])))
    return urlencode(pairs, safe=SIZES_SEPARATOR, quote_via=quote_plus)


def _same(value: object, other: object) -> bool:
    if isinstance(value, float) and isinstance(other, float):
        return math.isclose(value, other, rel_tol=1e-12, abs_tol=0.0)
    return value == other

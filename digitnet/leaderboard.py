"""A room's leaderboard, as figures: nicknames made safe, a run's knobs as what differs from
its preset, its accuracy on MNIST's test digits and on the room's drawings, and the rows.

Plain functions of models, metadata and stored entries (:mod:`digitnet.room_store`); the
room (:mod:`digitnet.room`) decides when they run. Nothing here is HTML: a nickname is text,
and whoever shows it escapes it.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Mapping

import numpy as np
from torch import nn

from digitnet.data import Digits, load_mnist
from digitnet.drawing_data import Accuracy, AnswerCache
from digitnet.errors import DigitnetError
from digitnet.finetune import trained_on_drawings
from digitnet.knobs import PRESETS, SERVER_KNOBS, knob_text
from digitnet.predict import predict_logits
from digitnet.preprocess import digits_to_inputs
from digitnet.room_store import StoredEntry
from digitnet.train import TrainConfig

NICKNAME_MAX = 24  # characters: fits a leaderboard column on a projector
TEST_SET = "MNIST test (t10k)"  # what test_accuracy is measured on: never trained or tuned on
# Knobs that mean nothing for the other kind of network: never shown as a difference.
ARCHITECTURE_ONLY = {"mlp": ("cnn_channels", "cnn_hidden"), "cnn": ("hidden_sizes",)}


class RoomError(DigitnetError):
    """A publish, a removal or a room fine-tune that is refused; one line saying why."""


def clean_nickname(text: object) -> str:
    """A nickname as it is kept: control and format characters (bidi overrides, zero-width
    marks) dropped, any run of spaces, tabs or newlines one space, at most NICKNAME_MAX
    characters. It stays text: ``<b>bob</b>`` is kept as typed, and shown as typed."""
    if not isinstance(text, str):
        raise RoomError(f"nickname: give a short text, e.g. ada (got {type(text).__name__})")
    spaced = "".join(" " if character.isspace() else character for character in text)
    kept = "".join(c for c in spaced if not unicodedata.category(c).startswith("C"))
    nickname = " ".join(kept.split())
    if not nickname:
        raise RoomError(f"nickname: give one, 1-{NICKNAME_MAX} characters, e.g. ada")
    if len(nickname) > NICKNAME_MAX:
        raise RoomError(
            f"nickname: at most {NICKNAME_MAX} characters, got {len(nickname)}; "
            f"choose a shorter one"
        )
    return nickname


def preset_differences(config: TrainConfig) -> tuple[str, dict[str, object]]:
    """The preset nearest ``config`` (fewest knobs changed) and the knobs that differ from
    it, as the Train tab shows them (sizes as "64, 32")."""
    values = {k: v for k, v in config.knob_values().items() if k not in SERVER_KNOBS}
    ignored = ARCHITECTURE_ONLY.get(config.model.architecture, ())

    def changed(preset: Mapping[str, object]) -> dict[str, object]:
        return {
            name: knob_text(value)
            for name, value in values.items()
            if name not in ignored and knob_text(preset.get(name)) != knob_text(value)
        }

    name = min(PRESETS, key=lambda preset: len(changed(PRESETS[preset])))
    return name, changed(PRESETS[name])


def knobs_text(metadata: dict) -> tuple[str, str | None, dict[str, object]]:
    """A run's key knobs in one line, the preset they start from, and what differs from it.

    A fine-tune says what it was tuned from instead: its recipe is its base's."""
    finetune = metadata.get("finetune")
    if finetune:
        drawings = finetune.get("drawings", {}).get("train_count", 0)
        epochs = len(metadata.get("history", []))
        base = finetune.get("base_model")
        epochs_text = "1 epoch" if epochs == 1 else f"{epochs} epochs"
        return f"fine-tuned {base} on {drawings} drawings, {epochs_text}", None, {}
    preset, changed = preset_differences(TrainConfig.from_dict(metadata.get("config") or {}))
    if not changed:
        return preset, preset, {}
    shown = ", ".join(f"{name} {value}" for name, value in changed.items())
    return f"{preset} + {shown}", preset, changed


# ---------------------------------------------------------------------------
# Measuring

_TEST_LOCK = threading.Lock()
_TEST_INPUTS: list[tuple[np.ndarray, np.ndarray]] = []  # loaded once: 31 MB of float32


def test_digits() -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 10,000 test digits as model inputs and labels (read once per process)."""
    with _TEST_LOCK:
        if not _TEST_INPUTS:
            digits = load_mnist("test")
            _TEST_INPUTS.append((digits_to_inputs(digits.images), digits.labels))
        return _TEST_INPUTS[0]


def test_accuracy(model: nn.Module) -> Accuracy:
    """The share of MNIST's test digits whose top digit is right (as ``evaluate --test``)."""
    inputs, labels = test_digits()
    answers = predict_logits(model, inputs).argmax(dim=1).numpy()
    return Accuracy(int((answers == labels).sum()), len(labels))


def room_accuracy(
    model: nn.Module, metadata: dict, ids: np.ndarray, drawings: Digits, answers: AnswerCache
) -> Accuracy:
    """Accuracy on the room's drawings this model never trained on (a fine-tune's own
    training drawings left out): a digit right when given, a non-digit when refused."""
    keep = ~np.isin(ids, np.asarray(trained_on_drawings(metadata), dtype=np.int64))
    if not keep.any():
        return Accuracy(0, 0)
    given = answers.answers(model, ids, drawings)
    right = given[keep] == drawings.labels[keep]
    return Accuracy(int(right.sum()), int(keep.sum()))


def entry_figures(model: nn.Module, metadata: dict, room: Accuracy) -> dict:
    """What an entry keeps when it is published (JSON): the run's figures, its accuracy on
    MNIST's test digits (measured now: 10,000 digits) and on the room's drawings so far."""
    metrics = metadata.get("metrics", {})
    validation = metrics.get("validation", {})
    test = test_accuracy(model)
    text, preset, changed = knobs_text(metadata)
    config = TrainConfig.from_dict(metadata.get("config") or {})
    return {
        "model": config.model.describe(),
        "knobs": text,
        "preset": preset,
        "changed": changed,
        "train_digits": metadata.get("data", {}).get("train_count"),
        "val_accuracy": validation.get("accuracy"),
        "val_count": validation.get("count"),
        "test_accuracy": test.value,
        "test_count": test.total,
        "test_interval": list(test.interval),
        "room_correct": room.correct,
        "room_count": room.total,
        "train_seconds": metadata.get("training_seconds"),
    }


def entry_row(entry: StoredEntry, room: Accuracy | None, gone: bool) -> dict:
    """One leaderboard row: the entry's kept figures, with the room's accuracy as measured
    now (``room``; None when its run's files are gone: then as it was when published)."""
    figures = entry.figures
    if room is None:
        room = Accuracy(figures.get("room_correct", 0), figures.get("room_count", 0))
    return {
        "entry": entry.id,
        "nickname": entry.nickname,
        "run": entry.run,
        "kind": entry.kind,  # "run", or "room": the room's model
        "model": figures.get("model"),
        "knobs": figures.get("knobs"),
        "preset": figures.get("preset"),
        "changed": figures.get("changed", {}),
        "train_digits": figures.get("train_digits"),
        "val_accuracy": figures.get("val_accuracy"),
        "test_accuracy": figures.get("test_accuracy"),
        "test_count": figures.get("test_count"),
        "test_set": TEST_SET,
        "room_accuracy": room.value,
        "room_count": room.total,
        "room_interval": list(room.interval) if room.total else None,
        "train_seconds": figures.get("train_seconds"),
        "published": entry.created_at,
        "run_gone": gone,
    }


def best_first(rows: list[dict]) -> list[dict]:
    """Rows by validation accuracy, best first; ties (and rows without one) by who published
    first."""
    return sorted(
        rows,
        key=lambda row: (row["val_accuracy"] is None, -(row["val_accuracy"] or 0), row["entry"]),
    )

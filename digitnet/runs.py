"""A training run end to end, as the CLI, the app and the tests all do it.

:func:`prepare_data` loads and splits the digits; :func:`run_metadata` is the one place a
run's metadata is built (config, history, metrics with the mistakes' pixels, data sources,
command); ``digitnet.checkpoint.save_checkpoint`` adds the format, versions and date.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitnet.data import Digits, load_training_sources, rows_fingerprint, summarize
from digitnet.evaluate import evaluate, evaluate_drawings
from digitnet.preprocess import digits_to_inputs
from digitnet.train import TrainConfig, TrainResult


@dataclass(frozen=True)
class PreparedData:
    """Digits, their model inputs and this config's split, ready to train on."""

    digits: Digits
    inputs: np.ndarray  # (N, 28, 28) float32 in [0, 1]
    train_index: np.ndarray
    val_index: np.ndarray
    sources: list[dict]  # summarize() of each source, in order

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.inputs[self.train_index], self.digits.labels[self.train_index]

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.inputs[self.val_index], self.digits.labels[self.val_index]


def prepare_data(
    config: TrainConfig,
    paths: Sequence[str | Path] | None = None,
    *,
    digits: Digits | None = None,
    limit: int | None = None,
) -> PreparedData:
    """Load ``paths`` (or take ``digits``), keep the first ``limit``, and split by ``config``."""
    if digits is None:
        digits, sources = load_training_sources(list(paths or []))
    else:
        sources = [summarize(digits)]
    if limit is not None:
        digits = digits.subset(np.arange(min(limit, len(digits))))
    train_index, val_index = config.split(digits.labels)
    return PreparedData(digits, digits_to_inputs(digits.images), train_index, val_index, sources)


def run_metadata(
    result: TrainResult,
    config: TrainConfig,
    data: PreparedData,
    *,
    drawings: int = 0,
    command: str | None = None,
    extra: dict | None = None,
) -> dict:
    """Everything a run's checkpoint records beside its weights.

    Measures the kept weights on the validation split (per-digit report, confusion matrix,
    the most confident mistakes with their 28x28 pixels, so a dashboard shows them without
    the data) and, with ``drawings`` > 0, on that many canvas-like renders of validation
    digits. ``extra`` adds keys (the app's run name, a fine-tune's starting model...).
    """
    digits = data.digits
    metadata = {
        "config": config.to_dict(),
        "history": [report.to_dict() for report in result.history],
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "training_seconds": round(result.seconds, 2),
        "device": result.device,
        "data": {
            **summarize(digits),
            "sources": data.sources,
            "train_count": len(data.train_index),
            "val_count": len(data.val_index),
            # Which rows were held out, so `evaluate --validation-only` can tell when a newer
            # scikit-learn would draw a different split from the same seed.
            "val_rows": rows_fingerprint(data.val_index),
        },
        "metrics": {},
    }
    if command:
        metadata["command"] = command
    if len(data.val_index):
        val_inputs, val_labels = data.val
        metrics = evaluate(result.model, val_inputs, val_labels)
        for mistake in metrics["mistakes"]:
            row = int(data.val_index[mistake["index"]])
            mistake["row"] = row  # 0-based row in the (concatenated) data
            mistake["pixels"] = base64.b64encode(digits.images[row].tobytes()).decode("ascii")
        metadata["metrics"]["validation"] = metrics
        if drawings:
            chosen = data.val_index[:drawings]
            metadata["metrics"]["drawings"] = evaluate_drawings(
                result.model, digits.images[chosen], digits.labels[chosen], seed=config.seed
            )
    return {**metadata, **(extra or {})}

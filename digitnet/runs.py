"""A training run end to end, as the CLI, the app and the tests all do it.

:func:`prepare_data` loads and splits the digits; :func:`run_metadata` is the one place a
run's metadata is built (config, history, metrics with the mistakes' pixels, data sources,
command); ``digitnet.checkpoint.save_checkpoint`` adds the format, versions and date.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from digitnet.calibration import (
    DIGITS_REFUSED,
    Calibration,
    calibrated_probs,
    fit_temperature,
    rejection_threshold,
    reliability,
    set_calibration,
)
from digitnet.checkpoint import checkpoint_files, load_checkpoint, resolve_model_path
from digitnet.data import Digits, fingerprint, load_training_sources, rows_fingerprint, summarize
from digitnet.errors import DataError
from digitnet.evaluate import drawing_inputs, evaluate, evaluate_drawings
from digitnet.files import write_text_atomically
from digitnet.nondigits import make_nondigits
from digitnet.predict import predict_logits
from digitnet.preprocess import digits_to_inputs
from digitnet.train import TrainConfig, TrainResult

CALIBRATION_DRAWINGS = 2000  # canvas-like renders of validation digits the temperature fits
CALIBRATION_NONDIGITS = 1000  # held-out non-digits the refusal rate is measured on


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
    calibration_drawings: int = CALIBRATION_DRAWINGS,
) -> dict:
    """Everything a run's checkpoint records beside its weights.

    Measures the kept weights on the validation split (per-digit report, confusion matrix,
    the most confident mistakes with their 28x28 pixels, so a dashboard shows them without
    the data) and, with ``drawings`` > 0, on that many canvas-like renders of validation
    digits. ``extra`` adds keys (the app's run name, a fine-tune's starting model...).
    With validation digits, it also fits the model's calibration (:func:`fit_calibration`,
    on up to ``calibration_drawings`` renders) and keeps it on the model and in the metadata.
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
        metadata.update(
            calibrate_and_measure(
                result.model,
                data,
                seed=config.seed,
                drawings=drawings,
                calibration_drawings=calibration_drawings,
            )
        )
    return {**metadata, **(extra or {})}


def calibrate_and_measure(
    model: nn.Module,
    data: PreparedData,
    *,
    seed: int = 0,
    drawings: int = 0,
    calibration_drawings: int = CALIBRATION_DRAWINGS,
    digits_refused: float = DIGITS_REFUSED,
) -> dict:
    """The ``calibration`` and validation ``metrics`` of a run's metadata.

    Fits the calibration and keeps it on ``model`` (so the mistakes' confidences are
    calibrated), then measures the validation digits (per-digit report, confusion matrix, the
    most confident mistakes with their 28x28 pixels, so a dashboard shows them without the
    data) and, with ``drawings`` > 0, that many canvas-like renders of them.
    """
    calibration, report = fit_calibration(
        model, data, seed=seed, drawings=calibration_drawings, digits_refused=digits_refused
    )
    set_calibration(model, calibration)
    val_inputs, val_labels = data.val
    metrics = {"validation": evaluate(model, val_inputs, val_labels)}
    for mistake in metrics["validation"]["mistakes"]:
        row = int(data.val_index[mistake["index"]])
        mistake["row"] = row  # 0-based row in the (concatenated) data
        mistake["pixels"] = base64.b64encode(data.digits.images[row].tobytes()).decode("ascii")
    if drawings:
        chosen = data.val_index[:drawings]
        metrics["drawings"] = evaluate_drawings(
            model, data.digits.images[chosen], data.digits.labels[chosen], seed=seed
        )
    return {"calibration": {**calibration.to_dict(), **report}, "metrics": metrics}


def fit_calibration(
    model: nn.Module,
    data: PreparedData,
    *,
    seed: int = 0,
    drawings: int = CALIBRATION_DRAWINGS,
    digits_refused: float = DIGITS_REFUSED,
) -> tuple[Calibration, dict]:
    """The temperature and refusal threshold for ``model``, from its validation digits only.

    The temperature is fitted on canvas-like renders of up to ``drawings`` validation digits
    (what people draw, harder than clean MNIST); the threshold refuses at most
    ``digits_refused`` of those renders and of the clean validation digits. Returns the
    calibration and a report: the renders' ECE before and after, their reliability bins, the
    share of digits refused, and the share of held-out non-digits refused.
    """
    val_inputs, val_labels = data.val
    chosen = data.val_index[:drawings]
    labels = data.digits.labels[chosen]
    render_inputs = drawing_inputs(data.digits.images[chosen], seed=seed + 1)
    set_calibration(model, Calibration())  # raw logits below
    render_logits = predict_logits(model, render_inputs)
    temperature = fit_temperature(render_logits, labels)
    calibration = Calibration(temperature=temperature)

    def confidences(logits, with_calibration: Calibration = calibration) -> np.ndarray:
        return calibrated_probs(logits, with_calibration).max(dim=1).values.numpy()

    render_confidence = confidences(render_logits)
    clean_confidence = confidences(predict_logits(model, val_inputs))
    threshold = min(
        rejection_threshold(render_confidence, digits_refused),
        rejection_threshold(clean_confidence, digits_refused),
    )
    nondigits = make_nondigits(CALIBRATION_NONDIGITS, seed=seed, split="heldout")
    nondigit_confidence = confidences(predict_logits(model, nondigits.inputs))
    correct = render_logits.argmax(dim=1).numpy() == labels
    ece_before, _ = reliability(confidences(render_logits, Calibration()), correct)
    ece_after, bins = reliability(render_confidence, correct)
    report = {
        "fitted_on": f"{len(chosen):,} canvas-like renders of the validation digits",
        "digits_refused_target": digits_refused,
        "ece_before": ece_before,
        "ece": ece_after,
        "reliability": bins,
        "digits_refused": {
            "drawings": round(float((render_confidence < threshold).mean()), 5),
            "validation": round(float((clean_confidence < threshold).mean()), 5),
        },
        "nondigits_refused": round(float((nondigit_confidence < threshold).mean()), 5),
        "nondigits_count": len(nondigit_confidence),
    }
    return Calibration(temperature, threshold), report


def calibrate_checkpoint(
    path: str | Path, data_paths: Sequence[str | Path], digits_refused: float = DIGITS_REFUSED
) -> dict:
    """Fit (again) the calibration of a saved run on its own validation split, and measure.

    ``data_paths`` must be the run's training data (its fingerprint is checked), so the split
    rebuilt from the run's config is the one it held out. Rewrites only ``PATH.json``'s
    ``calibration`` and validation ``metrics``; the weights are untouched. Returns the
    calibration.
    """
    model, metadata = load_checkpoint(path)
    config = TrainConfig.from_dict(metadata["config"])
    data = prepare_data(config, data_paths)
    if fingerprint(data.digits) != metadata.get("data", {}).get("fingerprint"):
        raise DataError(
            f"{data.digits.source}: not the data this model was trained on (fingerprint "
            f"differs); give the run's own training data"
        )
    drawings = metadata.get("metrics", {}).get("drawings", {}).get("count", 0)
    measured = calibrate_and_measure(
        model, data, seed=config.seed, drawings=drawings, digits_refused=digits_refused
    )
    metadata["calibration"] = measured["calibration"]
    metadata.setdefault("metrics", {}).update(measured["metrics"])
    _, meta_path = checkpoint_files(resolve_model_path(path))
    write_text_atomically(meta_path, json.dumps(metadata, indent=1) + "\n")
    return metadata["calibration"]

"""Honest probabilities and "that isn't a digit": a temperature and a rejection threshold.

A model trained with label smoothing says "91% sure" of a clean 7 it gets right 99.9% of the
time, and says something about every drawing, digit or not. Two numbers, fitted after
training on the validation digits (never the test digits) and stored in the checkpoint's
metadata, fix both, in Python and in the browser alike:

- ``temperature``: probabilities are ``softmax(logits / temperature)``, the temperature that
  makes them most likely on canvas-like renders of the validation digits (Guo et al., 2017);
- ``reject_below``: a calibrated top probability under this is "not a digit". It is set so
  that a small share of validation digits (``DIGITS_REFUSED``) would be refused; a model
  trained with non-digits (``nondigit_fraction``) gives them flat, low probabilities.

:func:`set_calibration` keeps both on the model as non-persistent buffers, so the weights
file and strict loading are untouched and every inference path applies them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import nn
from torch.nn import functional as F

ECE_BINS = 15
DIGITS_REFUSED = 0.004  # share of validation digits the threshold may refuse
TEMPERATURE_RANGE = (0.05, 20.0)


@dataclass(frozen=True)
class Calibration:
    """How a model's logits become the probabilities and the answer people see."""

    temperature: float = 1.0
    reject_below: float = 0.0  # 0: every drawing gets a digit

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: object) -> Calibration:
        """From a checkpoint's metadata; missing or malformed values mean no calibration."""
        if not isinstance(values, dict):
            return cls()
        temperature = values.get("temperature", 1.0)
        reject_below = values.get("reject_below", 0.0)
        if not all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in (temperature, reject_below)
        ):
            return cls()
        if not TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1]:
            return cls()
        return cls(float(temperature), float(min(max(reject_below, 0.0), 1.0)))


def set_calibration(model: nn.Module, calibration: Calibration) -> nn.Module:
    """Keep ``calibration`` on ``model`` (buffers that move with it and are never saved)."""
    for name, value in (
        ("temperature", calibration.temperature),
        ("reject_below", calibration.reject_below),
    ):
        model.register_buffer(
            name, torch.tensor(float(value), dtype=torch.float64), persistent=False
        )
    return model


def calibration_of(model: nn.Module) -> Calibration:
    """The calibration kept on ``model``; none for a model that was never calibrated."""
    temperature = getattr(model, "temperature", None)
    reject_below = getattr(model, "reject_below", None)
    if not isinstance(temperature, torch.Tensor) or not isinstance(reject_below, torch.Tensor):
        return Calibration()
    return Calibration(float(temperature), float(reject_below))


def calibrated_probs(logits: torch.Tensor, calibration: Calibration) -> torch.Tensor:
    """softmax(logits / temperature), (N, 10)."""
    return torch.softmax(logits.float() / calibration.temperature, dim=1)


def fit_temperature(logits: torch.Tensor, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``labels``."""
    targets = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    logits = logits.double()

    def nll(log_temperature: float) -> float:
        return F.cross_entropy(logits / math.exp(log_temperature), targets).item()

    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    found = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return round(math.exp(found.x), 4)


def rejection_threshold(digit_confidences: np.ndarray, refused: float = DIGITS_REFUSED) -> float:
    """The top probability under which only ``refused`` of these real digits fall."""
    if len(digit_confidences) == 0:
        return 0.0
    return round(float(np.quantile(np.asarray(digit_confidences), refused)), 4)


def reliability(
    confidences: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> tuple[float, list[dict]]:
    """Top-label expected calibration error and its reliability diagram's bins.

    Each bin (equal width over 0-1) holds its count, mean confidence and accuracy; the ECE is
    the count-weighted mean gap between them.
    """
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidences, edges[1:-1], right=True), 0, bins - 1)
    table, gap = [], 0.0
    for index in range(bins):
        inside = which == index
        count = int(inside.sum())
        if count:
            confidence = float(confidences[inside].mean())
            accuracy = float(correct[inside].mean())
            gap += count * abs(confidence - accuracy)
            table.append(
                {
                    "low": round(float(edges[index]), 4),
                    "high": round(float(edges[index + 1]), 4),
                    "count": count,
                    "confidence": round(confidence, 4),
                    "accuracy": round(accuracy, 4),
                }
            )
    ece = gap / len(confidences) if len(confidences) else 0.0
    return round(float(ece), 5), table

"""Measuring a model: loss, accuracy, per-class accuracy, confusion matrix, worst mistakes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from digitnet.data import NUM_CLASSES
from digitnet.predict import predict_logits, predict_probs

MISTAKES_KEPT = 24  # how many of the most confident mistakes the dashboard shows


def loss_and_accuracy(
    model: nn.Module, inputs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (0-1)."""
    logits = predict_logits(model, inputs)
    targets = torch.tensor(np.asarray(labels), dtype=torch.int64)
    loss = F.cross_entropy(logits, targets).item()
    accuracy = (logits.argmax(dim=1) == targets).float().mean().item()
    return loss, accuracy


def evaluate(
    model: nn.Module, inputs: np.ndarray, labels: np.ndarray, mistakes_kept: int = MISTAKES_KEPT
) -> dict:
    """Everything the tutorial's table and the dashboard need, as plain JSON-ready values.

    ``mistakes`` lists the most confident wrong answers with their index in ``inputs``.
    """
    logits = predict_logits(model, inputs)
    targets = torch.tensor(np.asarray(labels), dtype=torch.int64)
    probs = torch.softmax(logits, dim=1)
    confidence, predicted = probs.max(dim=1)
    predicted_np, targets_np = predicted.numpy(), targets.numpy()

    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)  # rows: true, cols: predicted
    np.add.at(confusion, (targets_np, predicted_np), 1)
    per_class = []
    for digit in range(NUM_CLASSES):
        count = int(confusion[digit].sum())
        correct = int(confusion[digit, digit])
        per_class.append(
            {
                "digit": digit,
                "count": count,
                "correct": correct,
                "accuracy": correct / count if count else None,
            }
        )

    wrong = np.flatnonzero(predicted_np != targets_np)
    worst_first = wrong[np.argsort(-confidence.numpy()[wrong], kind="stable")][:mistakes_kept]
    mistakes = [
        {
            "index": int(i),
            "true": int(targets_np[i]),
            "predicted": int(predicted_np[i]),
            "confidence": round(float(confidence[i]), 4),
        }
        for i in worst_first
    ]
    return {
        "count": int(len(targets_np)),
        "loss": float(F.cross_entropy(logits, targets).item()) if len(targets_np) else None,
        "accuracy": float((predicted == targets).float().mean().item())
        if len(targets_np)
        else None,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "mistakes": mistakes,
    }


def format_per_class_table(metrics: dict) -> str:
    """The tutorial's per-class table as fixed-format text lines."""
    lines = ["digit  correct/count  accuracy"]
    for row in metrics["per_class"]:
        accuracy = "-" if row["accuracy"] is None else f"{100 * row['accuracy']:6.2f}%"
        lines.append(f"{row['digit']:>5}  {row['correct']:>7}/{row['count']:<5}  {accuracy:>8}")
    lines.append(
        f"  all  {sum(r['correct'] for r in metrics['per_class']):>7}/{metrics['count']:<5}  "
        f"{100 * metrics['accuracy']:6.2f}%  (loss {metrics['loss']:.4f})"
    )
    return "\n".join(lines)


def evaluate_drawings(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, seed: int = 0
) -> dict:
    """Accuracy on canvas-like renders of ``images`` through the app's preprocessing."""
    from digitnet.drawings import render_drawings
    from digitnet.preprocess import canvas_to_mnist

    drawings = render_drawings(images, seed=seed)
    inputs = np.stack([canvas_to_mnist(drawing).image for drawing in drawings])
    predicted = predict_probs(model, inputs).argmax(axis=1)
    return {
        "count": int(len(labels)),
        "seed": seed,
        "accuracy": float((predicted == np.asarray(labels)).mean()),
    }

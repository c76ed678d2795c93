"""Inference: logits and probabilities for batches, one drawing, image folders, Kaggle submissions.

Evaluation builds on this module, never the reverse."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitnet.calibration import calibrated_probs, calibration_of
from digitnet.data import NUM_CLASSES, load_kaggle_csv
from digitnet.errors import DigitnetError, ImageError
from digitnet.files import write_atomically
from digitnet.preprocess import Preprocessed, canvas_to_mnist, digits_to_inputs, load_image_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
UNSURE_BELOW = 0.6  # a top probability under this is reported as unsure
MOST_SURE = 99.9  # percent: the most an answer claims (the pad caps it the same way)
NOT_A_LABEL = "not a digit"  # the API's label for a drawing the model refuses
# The answer to a refused drawing: the best guess stays visible, but small (the pad fills in
# {digit} and {percent} the same way).
NOT_A_DIGIT = "That doesn't look like a digit <small>(best guess {digit}, {percent})</small>"
EVAL_BATCH_SIZE = 2048  # inference needs no gradients, so large batches are cheap


@torch.no_grad()
def predict_logits(
    model: nn.Module, inputs: np.ndarray | torch.Tensor, batch_size: int = EVAL_BATCH_SIZE
) -> torch.Tensor:
    """Logits (N, 10) for inputs (N, 28, 28) or (N, 784) in [0, 1], in eval mode, batched."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    tensor = torch.as_tensor(inputs, dtype=torch.float32)
    chunks = [
        model(tensor[start : start + batch_size].to(device)).float().cpu()
        for start in range(0, len(tensor), batch_size)
    ]
    model.train(was_training)
    if not chunks:
        return torch.zeros((0, NUM_CLASSES))
    return torch.cat(chunks)


def predict_probs(model: nn.Module, inputs: np.ndarray | torch.Tensor) -> np.ndarray:
    """Calibrated class probabilities (N, 10) as a NumPy array (see digitnet.calibration)."""
    return calibrated_probs(predict_logits(model, inputs), calibration_of(model)).numpy()


@dataclass(frozen=True)
class Prediction:
    """The answer for one drawing: probabilities in class order 0-9, or blank."""

    probs: np.ndarray  # (10,) float, zeros when blank
    preprocessed: Preprocessed
    reject_below: float = 0.0  # the model's threshold: a lower top probability is no digit

    @property
    def is_blank(self) -> bool:
        return self.preprocessed.is_blank

    @property
    def label(self) -> int | None:
        return None if self.is_blank else int(self.probs.argmax())

    @property
    def confidence(self) -> float:
        return 0.0 if self.is_blank else float(self.probs.max())

    @property
    def is_digit(self) -> bool:
        """False for a drawing the model refuses as not a digit (its label stays the best guess)."""
        return not self.is_blank and self.confidence >= self.reject_below

    @property
    def is_unsure(self) -> bool:
        return self.is_digit and self.confidence < UNSURE_BELOW


def with_article(digit: int) -> str:
    """'a 7', 'an 8': the article English puts before the digit's spoken name."""
    return f"{'an' if digit == 8 else 'a'} {digit}"


def answer_sentence(prediction: Prediction, prompt: str = "") -> str:
    """The answer in words (Markdown), as the pad shows it: sure, unsure, or not a digit."""
    if prediction.is_blank:
        return prompt
    probs = prediction.probs
    best, second = np.argsort(probs, kind="stable")[::-1][:2]
    if not prediction.is_digit:
        return NOT_A_DIGIT.format(digit=best, percent=f"{100 * probs[best]:.0f}%")
    if prediction.is_unsure:
        return (
            f"Not sure: maybe **{best}** ({100 * probs[best]:.0f}%) "
            f"or **{second}** ({100 * probs[second]:.0f}%)"
        )
    article, digit = with_article(int(best)).split()
    # Never "100.0% sure": calibrated, the surest answers are right ~99.9% of the time.
    return f"It's {article} **{digit}** ({min(100 * probs[best], MOST_SURE):.1f}% sure)"


def classify_drawing(model: nn.Module, image) -> Prediction:
    """Preprocess any drawing MNIST-style and classify it. A blank drawing is not guessed."""
    return classify_preprocessed(model, canvas_to_mnist(image))


def classify_preprocessed(model: nn.Module, preprocessed: Preprocessed) -> Prediction:
    """Classify a drawing already through :func:`canvas_to_mnist` (preprocess once, ask many)."""
    reject_below = calibration_of(model).reject_below
    if preprocessed.is_blank:
        return Prediction(np.zeros(10, dtype=np.float32), preprocessed, reject_below)
    return Prediction(predict_probs(model, preprocessed.image[None])[0], preprocessed, reject_below)


def predict_submission(model: nn.Module, csv_path: str | Path) -> np.ndarray:
    """Labels for every row of a Kaggle test CSV, batched."""
    digits = load_kaggle_csv(csv_path, require_labels=False)
    return predict_probs(model, digits_to_inputs(digits.images)).argmax(axis=1)


def write_submission(labels: np.ndarray, out_path: str | Path) -> Path:
    """Kaggle's ``ImageId,Label`` with ImageId from 1 in row order, written atomically."""
    rows = ((i, int(label)) for i, label in enumerate(labels, start=1))
    return write_csv(out_path, ["ImageId", "Label"], rows)


def write_csv(out_path: str | Path, header: list[str], rows: Iterable) -> Path:
    """A CSV of ``header`` and ``rows``, written atomically (never a half-written file)."""

    def write(temp: Path) -> None:
        with temp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    return write_atomically(out_path, write)


def list_image_files(path: str | Path) -> list[Path]:
    """An image file itself, or a folder's image files sorted by name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise ImageError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return files
    if not path.exists():
        raise DigitnetError(f"{path}: no such file or folder; check the path")
    return [path]


def preprocess_image_file(path: str | Path) -> Preprocessed:
    """An image file, loaded safely and preprocessed; a blank drawing is an ImageError."""
    preprocessed = canvas_to_mnist(load_image_file(path))
    if preprocessed.is_blank:
        raise ImageError(
            f"{Path(path).name}: the drawing is blank (no ink found); draw a digit in it"
        )
    return preprocessed


def predict_image_files(
    model: nn.Module, paths: list[Path], *, skip_bad: bool = False
) -> tuple[list[tuple[str, int, float, int]], list[str]]:
    """(file, label, confidence, is_digit) for each image, and the one-line problems of
    skipped files. ``label`` is the best digit even when ``is_digit`` is 0 (refused).

    Without ``skip_bad`` the first unreadable or blank image raises, naming the file.
    """
    rows, problems, inputs = [], [], []
    for path in paths:
        try:
            preprocessed = preprocess_image_file(path)
        except ImageError as error:
            if not skip_bad:
                raise
            problems.append(str(error))
            continue
        rows.append(str(path))
        inputs.append(preprocessed.image)
    if not inputs:
        return [], problems
    probs = predict_probs(model, np.stack(inputs))
    reject_below = calibration_of(model).reject_below
    labelled = [
        (name, int(p.argmax()), round(float(p.max()), 4), int(float(p.max()) >= reject_below))
        for name, p in zip(rows, probs)
    ]
    return labelled, problems


def write_image_predictions(rows: list[tuple[str, int, float, int]], out_path: str | Path) -> Path:
    """CSV ``file,label,confidence,is_digit``, written atomically."""
    return write_csv(out_path, ["file", "label", "confidence", "is_digit"], rows)

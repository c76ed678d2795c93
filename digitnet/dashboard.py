"""What the training dashboard draws, computed from a checkpoint's metadata alone.

Pure functions from metadata to tables, figures and images, so any UI (the
Gradio app, a notebook) can show them and tests can check them without a browser.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np
import pandas as pd

# Figure objects, not pyplot: no global backend switch, no figures kept alive by pyplot.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from digitnet.data import IMAGE_SIZE, NUM_CLASSES

DIGITS = [str(d) for d in range(NUM_CLASSES)]


def history_frame(metadata: dict) -> pd.DataFrame:
    """Long table (epoch, metric, split, value) of loss and accuracy per epoch."""
    rows = []
    for report in metadata.get("history", []):
        for split in ("train", "val"):
            loss, accuracy = report.get(f"{split}_loss"), report.get(f"{split}_accuracy")
            name = "train" if split == "train" else "validation"
            if loss is not None:
                rows.append(
                    {"epoch": report["epoch"], "metric": "loss", "split": name, "value": loss}
                )
            if accuracy is not None:
                rows.append(
                    {
                        "epoch": report["epoch"],
                        "metric": "accuracy",
                        "split": name,
                        "value": 100 * accuracy,
                    }
                )
    return pd.DataFrame(rows, columns=["epoch", "metric", "split", "value"])


def curves_figure(metadata: dict) -> Figure | None:
    """Loss and accuracy per epoch, train against validation, side by side, with the best
    epoch (the weights kept) marked on the accuracy."""
    frame = history_frame(metadata)
    if frame.empty:
        return None
    # Augmented training digits are why train sits below validation: the legend says so.
    train = "train (augmented)" if metadata.get("config", {}).get("augment") else "train"
    figure = Figure(figsize=(9, 3.2), dpi=100)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for axes, metric, unit in (
        (loss_axes, "loss", "cross-entropy"),
        (accuracy_axes, "accuracy", "% correct"),
    ):
        for split, label in (("train", train), ("validation", "validation")):
            part = frame[(frame.metric == metric) & (frame.split == split)]
            axes.plot(part.epoch, part.value, label=label, linewidth=1.8)
        axes.set_title(metric.capitalize())
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epoch 1, 2, never 1.2
        axes.set_ylabel(unit)
        axes.grid(alpha=0.3)
    best = metadata.get("best_epoch")
    if best:
        accuracy_axes.axvline(best, color="grey", linestyle=":", linewidth=1)
        # At the foot of the line, on the side with more room: a best epoch in the right
        # half (often the last) is labelled to its left, so the label stays in the frame.
        first, last = accuracy_axes.get_xlim()
        leftward = best > (first + last) / 2
        accuracy_axes.annotate(
            f"best: epoch {best}",
            (best, 0.03),
            xycoords=("data", "axes fraction"),
            textcoords="offset points",
            xytext=(-4 if leftward else 4, 0),
            ha="right" if leftward else "left",
            fontsize=8,
            color="grey",
        )
    for axes in (loss_axes, accuracy_axes):
        axes.legend(frameon=False, loc="best")  # after the label: "best" keeps clear of it
    figure.tight_layout()
    return figure


def per_class_frame(metadata: dict) -> pd.DataFrame:
    """Per digit, in order 0-9: validation accuracy (%), count, correct, and the report's
    precision, recall and F1 (%; recall is the accuracy; blank where undefined or where
    the checkpoint predates them)."""
    per_class = metadata.get("metrics", {}).get("validation", {}).get("per_class", [])

    def percent(row: dict, key: str) -> float | None:
        value = row.get(key)
        return None if value is None else round(100 * value, 2)

    return pd.DataFrame(
        {
            "digit": [str(row["digit"]) for row in per_class],
            "accuracy": [100 * (row["accuracy"] or 0.0) for row in per_class],
            "count": [row["count"] for row in per_class],
            "correct": [row["correct"] for row in per_class],
            "precision": [percent(row, "precision") for row in per_class],
            "recall": [percent(row, "recall") for row in per_class],
            "f1": [percent(row, "f1") for row in per_class],
        }
    )


ACCURACY_AXIS_MARGIN = 2.0  # percentage points left under the lowest per-digit bar
COMMON_ACCURACY_FLOOR = 50.0  # %: the per-digit axis every model shares (see below)


def accuracy_axis_range(accuracies: Sequence[float]) -> list[float]:
    """The per-digit accuracy bars' y range (%): 50-100 for every model, so two models'
    bars compare by eye (a 94.7% digit reads the same on each), while 93% and 99% still look
    different, as they would not on 0-100. A model with a digit under 52% (a short run)
    gets a floor a little under it, a multiple of 10, so its weakest bar still shows."""
    values = [value for value in accuracies if value is not None and np.isfinite(value)]
    if not values:
        return [0.0, 100.0]
    if min(values) - ACCURACY_AXIS_MARGIN >= COMMON_ACCURACY_FLOOR:
        return [COMMON_ACCURACY_FLOOR, 100.0]
    floor = 10 * np.floor((min(values) - ACCURACY_AXIS_MARGIN) / 10)
    return [float(np.clip(floor, 0, 90)), 100.0]


def confusion_figure(metadata: dict) -> Figure | None:
    """The validation confusion matrix: rows are the true digit, columns the prediction."""
    confusion = metadata.get("metrics", {}).get("validation", {}).get("confusion")
    if not confusion:
        return None
    matrix = np.asarray(confusion)
    figure = Figure(figsize=(4.6, 4.2), dpi=100)
    axes = figure.subplots()
    # Log-ish colour so the few mistakes stand out next to the big diagonal.
    axes.imshow(np.log1p(matrix), cmap="Blues")
    for true in range(NUM_CLASSES):
        for predicted in range(NUM_CLASSES):
            value = matrix[true, predicted]
            if value:
                dark = np.log1p(value) > 0.6 * np.log1p(matrix.max())
                axes.text(
                    predicted,
                    true,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else ("black" if true == predicted else "#b00"),
                )
    axes.set_xticks(range(NUM_CLASSES), DIGITS)
    axes.set_yticks(range(NUM_CLASSES), DIGITS)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix (validation)")
    figure.tight_layout()
    return figure


def reliability_figure(metadata: dict) -> Figure | None:
    """How often the model is right against how sure it says it is, on drawings it never
    trained on (the validation digits drawn as on a canvas). On the diagonal, "N% sure" means
    right N% of the time; the calibration error (ECE) is the mean gap, weighted by count."""
    calibration = metadata.get("calibration") or {}
    bins = calibration.get("reliability")
    if not bins:
        return None
    figure = Figure(figsize=(4.6, 4.2), dpi=100)
    axes = figure.subplots()
    axes.plot([0, 100], [0, 100], color="#999", linestyle="--", linewidth=1, label="perfect")
    confidence = [100 * b["confidence"] for b in bins]
    accuracy = [100 * b["accuracy"] for b in bins]
    sizes = [max(12.0, 300 * b["count"] / max(c["count"] for c in bins)) for b in bins]
    axes.plot(confidence, accuracy, color="#4f46e5", linewidth=1.5)
    axes.scatter(confidence, accuracy, s=sizes, color="#4f46e5", alpha=0.7, label="this model")
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 100)
    axes.set_xlabel("how sure it said it was (%)")
    axes.set_ylabel("how often it was right (%)")
    axes.set_title(
        f"Calibration error {100 * calibration['ece']:.1f} points "
        f"(before calibrating: {100 * calibration['ece_before']:.1f})",
        fontsize=10,
    )
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


def mistake_caption(predicted: int, true: int, confidence: float) -> str:
    """A mistake in words: "said 7, was 8 (82%)" (the model's answer, the true digit, and how
    sure the model was of its answer)."""
    return f"said {predicted}, was {true} ({100 * confidence:.0f}%)"


def mistake_gallery(metadata: dict, scale: int = 4) -> list[tuple[np.ndarray, str]]:
    """The most confident validation mistakes as (image, ``mistake_caption``) pairs."""
    items = []
    for mistake in metadata.get("metrics", {}).get("validation", {}).get("mistakes", []):
        if "pixels" not in mistake:
            continue
        digit = np.frombuffer(base64.b64decode(mistake["pixels"]), dtype=np.uint8)
        digit = 255 - digit.reshape(IMAGE_SIZE, IMAGE_SIZE)  # dark ink on white, like the canvas
        enlarged = np.kron(digit, np.ones((scale, scale), dtype=np.uint8))
        caption = mistake_caption(mistake["predicted"], mistake["true"], mistake["confidence"])
        items.append((enlarged, caption))
    return items


def model_card_markdown(card: dict[str, str], metadata: dict | None = None) -> str:
    """A model card: with ``metadata``, in sentences (what it is, what it learnt from, how
    long, how well), then every fact of ``card`` folded for the curious; else the facts."""
    facts = "\n".join(f"- **{key}**: {value}" for key, value in card.items())
    if metadata is None:
        return "### Model card\n" + facts
    return (
        "### Model card\n"
        + "\n\n".join(model_card_sentences(metadata, card))
        + f"\n\n<details><summary>Every detail</summary>\n\n{facts}\n\n</details>"
    )


def model_card_sentences(metadata: dict, card: dict[str, str]) -> list[str]:
    """What a learner asks of a model, one sentence each: what it is, what it learnt from,
    how long it trained, how well it does on digits it never saw."""
    parameters = metadata.get("parameters")
    sentences = [
        f"**What it is.** {card.get('architecture', 'A model')}, with "
        f"{parameters:,} parameters (the numbers it learnt)."
        if parameters
        else f"**What it is.** {card.get('architecture', 'A model')}."
    ]
    data = metadata.get("data") or {}
    config = metadata.get("config") or {}
    if data.get("train_count"):
        varied = card.get("augmentation", "none")
        how = f", each varied a little ({varied}) as people draw" if varied != "none" else ""
        sentences.append(
            f"**What it learnt from.** {data['train_count']:,} labelled digits{how}; "
            f"{data.get('val_count', 0):,} more were kept aside to check it."
        )
    history = metadata.get("history") or []
    if history:
        seconds = metadata.get("training_seconds")
        took = f" in {seconds:.0f} seconds" if seconds is not None else ""
        best = metadata.get("best_epoch")
        kept = f"; it keeps epoch {best}'s weights, its best" if best else ""
        sentences.append(
            f"**How long.** {len(history)} passes over its digits (epochs){took}{kept}."
            f" It learnt with {config.get('optimizer', 'an optimiser')} at learning rate "
            f"{config.get('lr')}, {config.get('batch_size')} digits a step."
            if config.get("lr") is not None
            else f"**How long.** {len(history)} passes over its digits (epochs){took}{kept}."
        )
    metrics = metadata.get("metrics") or {}
    validation, drawings = metrics.get("validation") or {}, metrics.get("drawings") or {}
    if validation.get("accuracy") is not None:
        well = (
            f"**How well.** Right on {100 * validation['accuracy']:.1f}% of "
            f"{validation['count']:,} digits it never learnt from"
        )
        if drawings.get("accuracy") is not None:
            well += (
                f", and on {100 * drawings['accuracy']:.1f}% of {drawings['count']:,} "
                f"drawings made like the pad's"
            )
        sentences.append(well + ".")
    return sentences


def progress_frame(reports: Sequence) -> pd.DataFrame:
    """Long table (epoch, metric, split, value) of a run as it trains, for live curves.

    ``reports`` are a ``TrainingRun``'s StepReports and EpochReports. Train points come every
    few steps, at fractional epochs, each the mean over the steps since the previous point;
    validation points as each epoch ends (or is stopped). Accuracy is in %.

    A StepReport carries the mean over its epoch so far. Plotted as it is, that mean lags
    behind the model (it still averages in the epoch's first, worse batches) and then drops
    at every epoch boundary as it restarts: a step a learner would read as something the
    epoch did. The mean over the steps since the last report has neither artefact.
    """
    steps_per_epoch = next(
        (r.total_steps / r.epochs for r in reports if hasattr(r, "total_steps")), None
    )
    rows = []
    last = (0, 0, 0.0, 0.0)  # epoch, steps into it, and their summed loss and accuracy

    def add(epoch: float, metric: str, split: str, value: float | None) -> None:
        if value is not None:
            scale = 100 if metric == "accuracy" else 1
            rows.append({"epoch": epoch, "metric": metric, "split": split, "value": scale * value})

    for report in reports:
        if hasattr(report, "total_steps"):  # a StepReport
            into = round(report.step - (report.epoch - 1) * steps_per_epoch)
            loss_sum, accuracy_sum = into * report.train_loss, into * report.train_accuracy
            epoch, done, done_loss, done_accuracy = last
            if epoch != report.epoch:
                done, done_loss, done_accuracy = 0, 0.0, 0.0
            if into > done:
                since = into - done
                at = report.step / steps_per_epoch
                add(at, "loss", "train", (loss_sum - done_loss) / since)
                add(at, "accuracy", "train", (accuracy_sum - done_accuracy) / since)
            last = (report.epoch, into, loss_sum, accuracy_sum)
        else:
            done = 1.0 if report.complete or not steps_per_epoch else report.steps / steps_per_epoch
            epoch = report.epoch - 1 + done
            add(epoch, "loss", "validation", report.val_loss)
            add(epoch, "accuracy", "validation", report.val_accuracy)
    return pd.DataFrame(rows, columns=["epoch", "metric", "split", "value"])

"""digitnet.dashboard: tables and figures from a checkpoint's metadata alone."""

from __future__ import annotations

import pytest

from digitnet.checkpoint import load_checkpoint
from digitnet.dashboard import (
    DIGITS,
    accuracy_axis_range,
    curves_figure,
    mistake_caption,
    mistake_gallery,
    per_class_frame,
)


def test_per_class_frame_carries_the_per_digit_report():
    _, metadata = load_checkpoint("mlp")
    frame = per_class_frame(metadata)
    assert frame["digit"].tolist() == DIGITS
    rows = metadata["metrics"]["validation"]["per_class"]
    for (_, row), saved in zip(frame.iterrows(), rows):
        assert row["recall"] == pytest.approx(100 * saved["recall"], abs=0.01)
        assert row["accuracy"] == pytest.approx(row["recall"], abs=0.01)
        assert row["precision"] == pytest.approx(100 * saved["precision"], abs=0.01)
        assert row["f1"] == pytest.approx(100 * saved["f1"], abs=0.01)


def test_per_class_frame_of_an_older_checkpoint_leaves_the_new_columns_blank():
    old = {
        "metrics": {
            "validation": {
                "per_class": [
                    {"digit": d, "count": 10, "correct": 9, "accuracy": 0.9} for d in range(10)
                ]
            }
        }
    }
    frame = per_class_frame(old)
    assert frame["accuracy"].tolist() == [90.0] * 10
    assert frame["precision"].isna().all() and frame["f1"].isna().all()


def test_a_mistake_is_captioned_in_words_what_the_model_said_and_what_it_was():
    assert mistake_caption(7, 8, 0.823) == "said 7, was 8 (82%)"
    _, metadata = load_checkpoint("mlp")
    worst = metadata["metrics"]["validation"]["mistakes"][0]
    image, caption = mistake_gallery(metadata)[0]
    assert image.shape == (112, 112)  # 28x28 enlarged 4x by whole pixels
    assert caption.startswith(f"said {worst['predicted']}, was {worst['true']} (")


def history(epochs: int) -> list[dict]:
    """A plausible run: accuracy rising fast then flat, loss falling."""
    return [
        {
            "epoch": epoch,
            "train_loss": 2.0 / epoch,
            "val_loss": 1.5 / epoch,
            "train_accuracy": 0.95 - 0.5 / epoch,
            "val_accuracy": 0.99 - 0.3 / epoch,
        }
        for epoch in range(1, epochs + 1)
    ]


@pytest.mark.parametrize(("epochs", "best"), [(10, 10), (60, 42), (20, 2)])
def test_the_best_epoch_label_stays_in_the_frame_and_clear_of_the_legend(epochs, best):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    metadata = {"history": history(epochs), "best_epoch": best, "config": {"augment": True}}
    figure = curves_figure(metadata)
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    accuracy = figure.axes[1]
    (label,) = [text for text in accuracy.texts if text.get_text() == f"best: epoch {best}"]
    box, frame = label.get_window_extent(renderer), accuracy.get_window_extent(renderer)
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0, (box, frame)
    legend = accuracy.get_legend()
    assert not box.overlaps(legend.get_window_extent(renderer))
    assert [t.get_text() for t in legend.get_texts()] == ["train (augmented)", "validation"]


@pytest.mark.parametrize(
    ("accuracies", "expected"),
    [
        ([99.0, 100.0, 93.9, 98.0], [50.0, 100.0]),  # every model on one axis
        ([100.0, 71.0], [50.0, 100.0]),
        ([100.0, 100.0], [50.0, 100.0]),  # all perfect: bars still have a height
        ([100.0, 51.0], [40.0, 100.0]),  # under the common floor: the weakest bar shows
        ([45.0, 12.0, 80.0], [10.0, 100.0]),
        ([1.0, 50.0], [0.0, 100.0]),  # never below 0
        ([], [0.0, 100.0]),
        ([None, float("nan")], [0.0, 100.0]),
    ],
)
def test_the_per_digit_axis_is_shared_unless_a_digit_falls_below_it(accuracies, expected):
    assert accuracy_axis_range(accuracies) == expected

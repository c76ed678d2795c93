"""digitnet.dashboard: tables and figures from a checkpoint's metadata alone."""

from __future__ import annotations

import pytest

from digitnet.checkpoint import load_checkpoint
from digitnet.dashboard import DIGITS, mistake_caption, mistake_gallery, per_class_frame


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

"""evaluate() against a case worked out by hand: per-digit precision, recall and F1, the
confusion matrix's orientation, the undefined entries, the macro means and the mistakes' order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from digitnet.evaluate import evaluate, format_per_class_table

# (true, predicted, confidence of the prediction): 9 digits, 5 right.
CASE = [
    (0, 0, 0.9),
    (0, 0, 0.9),
    (0, 1, 0.6),  # a wrong answer
    (1, 1, 0.9),
    (1, 1, 0.9),
    (2, 2, 0.9),
    (2, 0, 0.5),  # a wrong answer
    (2, 3, 0.8),  # a wrong answer, and 3 is never the truth
    (4, 1, 0.7),  # a wrong answer, and 4 is never predicted
]


class FixedLogits(nn.Module):
    """A 'model' whose answer for input i is whatever logits the input carries."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # predict_logits reads the device from it

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.reshape(len(inputs), -1)[:, :10]


def case_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Inputs whose first 10 values are log-probabilities giving each row its confidence."""
    inputs = np.zeros((len(CASE), 784), dtype=np.float32)
    for row, (_, predicted, confidence) in enumerate(CASE):
        rest = (1 - confidence) / 9
        inputs[row, :10] = np.log(rest)
        inputs[row, predicted] = np.log(confidence)
    return inputs, np.array([true for true, _, _ in CASE])


@pytest.fixture(scope="module")
def metrics() -> dict:
    inputs, labels = case_inputs()
    return evaluate(FixedLogits(), inputs, labels)


def test_per_digit_precision_recall_and_f1_are_the_hand_worked_ones(metrics):
    rows = {row["digit"]: row for row in metrics["per_class"]}
    # digit: (count, correct, precision, recall, f1)
    expected = {
        0: (3, 2, 2 / 3, 2 / 3, 2 / 3),  # predicted 3 times, right twice
        1: (2, 2, 2 / 4, 1.0, 2 / 3),  # predicted 4 times, right twice
        2: (3, 1, 1.0, 1 / 3, 0.5),
        4: (1, 0, None, 0.0, 0.0),  # never predicted: precision undefined
        3: (0, 0, 0.0, None, None),  # never true: recall and F1 undefined
    }
    for digit, (count, correct, precision, recall, f1) in expected.items():
        row = rows[digit]
        assert (row["count"], row["correct"]) == (count, correct), digit
        for name, value in (("precision", precision), ("recall", recall), ("f1", f1)):
            if value is None:
                assert row[name] is None, (digit, name)
            else:
                assert row[name] == pytest.approx(value), (digit, name)
        assert row["accuracy"] == row["recall"]  # the tutorial's per-class accuracy
    for digit in (5, 6, 7, 8, 9):
        assert rows[digit]["count"] == 0 and rows[digit]["precision"] is None


def test_overall_accuracy_is_exactly_correct_over_count(metrics):
    assert metrics["count"] == 9
    assert metrics["accuracy"] == 5 / 9  # exact: what a submission of the same rows scores


def test_macro_means_are_over_the_digits_present_as_scikit_learn_counts_them(metrics):
    # Digits 0, 1, 2 and 4 are present. A present digit never predicted (4) counts as
    # precision 0 in the mean, as scikit-learn's classification_report does with
    # zero_division=0, though its own row shows "-".
    assert metrics["macro_precision"] == pytest.approx((2 / 3 + 1 / 2 + 1 + 0) / 4)
    assert metrics["macro_recall"] == pytest.approx((2 / 3 + 1 + 1 / 3 + 0) / 4)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0.5 + 0) / 4)


def test_confusion_rows_are_true_digits_and_columns_predictions(metrics):
    confusion = np.array(metrics["confusion"])
    assert confusion.sum() == 9 and np.trace(confusion) == 5
    assert confusion[0, 1] == 1 and confusion[2, 0] == 1 and confusion[2, 3] == 1
    assert confusion[4, 1] == 1 and confusion[1, 4] == 0
    assert confusion[3].sum() == 0 and confusion[:, 3].sum() == 1


def test_mistakes_come_most_confident_first_with_their_rows(metrics):
    order = [(m["index"], m["true"], m["predicted"]) for m in metrics["mistakes"]]
    assert order == [(7, 2, 3), (8, 4, 1), (2, 0, 1), (6, 2, 0)]
    assert [m["confidence"] for m in metrics["mistakes"]] == [0.8, 0.7, 0.6, 0.5]


def test_the_printed_table_shows_undefined_as_a_dash(metrics):
    lines = format_per_class_table(metrics).splitlines()
    four = next(line for line in lines if line.split()[0] == "4")
    assert four.split()[1] == "-" and four.split()[-1] == "0/1"
    assert "accuracy 55.56% (5/9)" in lines[-1]

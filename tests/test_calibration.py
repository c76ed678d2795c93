"""Calibration: the temperature, the refusal threshold, ECE, and where they are applied."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from digitnet.calibration import (
    Calibration,
    calibrated_probs,
    calibration_of,
    fit_temperature,
    rejection_threshold,
    reliability,
    set_calibration,
)
from digitnet.checkpoint import load_checkpoint, save_checkpoint
from digitnet.export import web_model
from digitnet.model import build_model
from digitnet.predict import classify_preprocessed, predict_probs
from digitnet.preprocess import canvas_to_mnist
from digitnet.train import TrainConfig


def test_temperature_recovers_the_one_that_made_the_labels():
    # Labels drawn from softmax(z / 2): the likeliest temperature for them is about 2.
    generator = np.random.default_rng(0)
    logits = torch.tensor(generator.normal(0, 4, (20_000, 10)))
    probs = torch.softmax(logits / 2.0, dim=1).numpy()
    labels = np.array([generator.choice(10, p=p / p.sum()) for p in probs])
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)


def test_ece_worked_example():
    # Two bins: 0.9 confident and right 2 of 4 times (gap 0.4); 0.55 and right 1 of 2 (0.05).
    confidences = np.array([0.9, 0.9, 0.9, 0.9, 0.55, 0.55])
    correct = np.array([1, 1, 0, 0, 1, 0])
    ece, bins = reliability(confidences, correct, bins=10)
    assert ece == pytest.approx((4 * 0.4 + 2 * 0.05) / 6, abs=1e-5)
    assert [(b["count"], b["accuracy"]) for b in bins] == [(2, 0.5), (4, 0.5)]
    perfect, _ = reliability(np.ones(5), np.ones(5))
    assert perfect == 0.0


def test_threshold_refuses_the_asked_share_of_digits():
    confidences = np.linspace(0.5, 1.0, 1001)
    threshold = rejection_threshold(confidences, refused=0.01)
    assert (confidences < threshold).mean() == pytest.approx(0.01, abs=0.002)
    assert rejection_threshold(np.array([])) == 0.0


@pytest.mark.parametrize(
    "values",
    [None, "x", {"temperature": float("nan")}, {"temperature": -1}, {"temperature": 1e9}],
)
def test_malformed_calibration_in_metadata_means_none(values):
    assert Calibration.from_dict(values) == Calibration()


def test_calibration_travels_with_the_checkpoint_and_into_every_answer(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", hidden_sizes=(16,))
    inputs = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    raw = predict_probs(model, inputs)
    calibration = Calibration(temperature=0.5, reject_below=0.97)
    config = TrainConfig.from_knobs(hidden_sizes=(16,))
    save_checkpoint(tmp_path / "run", model, config, {"calibration": calibration.to_dict()})
    loaded, _ = load_checkpoint(tmp_path / "run")
    assert calibration_of(loaded) == calibration
    assert "temperature" not in loaded.state_dict()  # the weights file is unchanged
    sharper = predict_probs(loaded, inputs)
    expected = calibrated_probs(torch.log(torch.tensor(raw)), calibration).numpy()
    np.testing.assert_allclose(sharper, expected, atol=1e-5)
    assert sharper.max(axis=1).min() > raw.max(axis=1).min()
    # A drawing whose calibrated top probability is under the threshold is not a digit.
    scribble = np.zeros((100, 100), np.float32)
    scribble[20:80:7, 10:90] = 1.0
    prediction = classify_preprocessed(loaded, canvas_to_mnist(scribble))
    assert prediction.label is not None and prediction.confidence < 0.97
    assert not prediction.is_digit and not prediction.is_unsure
    # The browser gets the same two numbers.
    info = web_model(loaded).metadata
    assert float(info["temperature"]) == 0.5 and float(info["reject_below"]) == 0.97


def test_an_uncalibrated_model_refuses_nothing():
    model = build_model("mlp", hidden_sizes=(8,))
    assert calibration_of(model) == Calibration()
    set_calibration(model, Calibration(2.0, 0.1))
    assert calibration_of(model).temperature == 2.0
    assert math.isclose(float(model.reject_below), 0.1, rel_tol=1e-6)


def test_the_dashboard_and_card_show_calibration_and_the_recorded_test_accuracy(tmp_path):
    from digitnet.checkpoint import model_card, record_test_accuracy
    from digitnet.dashboard import reliability_figure

    model = build_model("mlp", hidden_sizes=(8,))
    bins = [{"low": 0.8, "high": 0.9, "count": 10, "confidence": 0.85, "accuracy": 0.8}]
    calibration = {
        **Calibration(0.4, 0.5).to_dict(),
        "ece_before": 0.1,
        "ece": 0.01,
        "reliability": bins,
        "digits_refused": {"drawings": 0.004, "validation": 0.002},
        "nondigits_refused": 0.85,
        "nondigits_count": 1000,
    }
    config = TrainConfig.from_knobs(hidden_sizes=(8,))
    save_checkpoint(tmp_path / "run", model, config, {"calibration": calibration})
    metrics = {"count": 10_000, "accuracy": 0.991, "low": 0.989, "high": 0.993, "loss": 0.1}
    record_test_accuracy(tmp_path / "run", {**metrics, "macro_f1": 0.99, "ece": 0.02, "refused": 3})
    _, metadata = load_checkpoint(tmp_path / "run")
    card = model_card(metadata)
    assert card["test accuracy"].startswith("99.10% [98.90-99.30] on MNIST's 10,000 test digits")
    assert (
        "1.0 points" in card["calibration"] and "85% of held-out non-digits" in card["not a digit"]
    )
    figure = reliability_figure(metadata)
    assert "1.0 points" in figure.axes[0].get_title()
    assert reliability_figure({}) is None

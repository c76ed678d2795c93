"""digitnet.model and digitnet.train: shapes, config checks, augmentation, the loop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from digitnet.evaluate import loss_and_accuracy
from digitnet.model import CNN, MLP, build_model, count_parameters
from digitnet.preprocess import digits_to_inputs
from digitnet.train import EpochReport, TrainConfig, augment_batch, train_model, tutorial_config

# ---------------------------------------------------------------------------
# Models


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (3, 784), (1, 784)])
def test_models_accept_both_input_shapes(architecture, shape):
    torch.manual_seed(0)
    model = build_model(architecture).eval()
    inputs = torch.rand(*shape)
    with torch.no_grad():
        logits = model(inputs)
        flat = model(inputs.reshape(shape[0], 784))
    assert logits.shape == (shape[0], 10)
    torch.testing.assert_close(logits, flat)


def test_mlp_is_the_tutorials_784_512_512_10():
    model = MLP()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    assert model.fc1.weight.shape == (512, 784)
    assert model.fc2.weight.shape == (512, 512)
    assert model.fc3.weight.shape == (10, 512)
    assert count_parameters(model) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10


def test_mlp_hidden_sizes_and_dropout_are_configurable():
    model = build_model("mlp", hidden_sizes=(32, 16, 8), dropout=0.5)
    assert [model.fc1.out_features, model.fc2.out_features, model.fc3.out_features] == [32, 16, 8]
    assert model.fc4.out_features == 10
    assert model.dropout.p == 0.5


def test_cnn_and_unknown_architecture():
    assert isinstance(build_model("cnn"), CNN)
    with pytest.raises(ValueError, match="architecture"):
        build_model("rnn")


# ---------------------------------------------------------------------------
# TrainConfig


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("architecture", "rnn", "architecture"),
        ("optimizer", "rmsprop", "optimizer"),
        ("schedule", "linear", "schedule"),
        ("device", "tpu", "device"),
        ("epochs", 0, "epochs"),
        ("batch_size", 0, "batch_size"),
        ("lr", 0.0, "lr"),
        ("lr", -0.1, "lr"),
        ("dropout", 1.0, "dropout"),
        ("dropout", -0.1, "dropout"),
        ("val_fraction", 1.0, "val_fraction"),
        ("label_smoothing", 1.0, "label_smoothing"),
        ("hidden_sizes", (), "hidden_sizes"),
        ("hidden_sizes", (64, 0), "hidden_sizes"),
    ],
)
def test_train_config_rejects_bad_values(field, value, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**{field: value})


def test_train_config_round_trips_through_a_dict():
    config = TrainConfig(architecture="cnn", hidden_sizes=[128, 64], lr=0.05, seed=3)
    values = config.to_dict()
    assert values["hidden_sizes"] == [128, 64] and isinstance(values["cnn_channels"], list)
    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(values)
    rebuilt = TrainConfig.from_dict({**values, "from_a_newer_version": 1})
    assert rebuilt == config
    assert rebuilt.hidden_sizes == (128, 64)


def test_tutorial_config_is_the_tutorials_recipe():
    config = tutorial_config()
    assert (config.optimizer, config.lr, config.batch_size, config.epochs) == (
        "sgd",
        0.01,
        100,
        100,
    )
    assert not config.shuffle and not config.augment and config.schedule == "constant"
    assert tutorial_config(epochs=2).epochs == 2


# ---------------------------------------------------------------------------
# Augmentation


def test_augment_batch_keeps_shape_and_range_and_is_seeded(mnist):
    images = torch.as_tensor(digits_to_inputs(mnist.images[:64])).reshape(-1, 1, 28, 28)
    config = TrainConfig()

    first = augment_batch(images.clone(), config, torch.Generator().manual_seed(5))
    second = augment_batch(images.clone(), config, torch.Generator().manual_seed(5))
    other = augment_batch(images.clone(), config, torch.Generator().manual_seed(6))

    assert first.shape == images.shape and first.dtype == torch.float32
    assert first.min() >= 0.0 and first.max() <= 1.0
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.equal(first, other)
    assert not torch.equal(first, images)
    # Still mostly the same digit. The recipe thickens and hardens strokes on purpose, so
    # total ink grows (by about a third with the defaults) but never doubles or vanishes.
    assert 0.8 < first.sum().item() / images.sum().item() < 1.6


def without_geometry(**overrides) -> TrainConfig:
    """Augmentation with no rotation, zoom, shift, shear or thickening."""
    return TrainConfig(
        rotate_degrees=0, scale_range=0, shift_pixels=0, shear=0, thickness_prob=0, **overrides
    )


def test_augment_batch_with_zero_strength_is_the_identity(mnist):
    images = torch.as_tensor(digits_to_inputs(mnist.images[:16])).reshape(-1, 1, 28, 28)
    config = without_geometry(hard_stroke_prob=0)
    out = augment_batch(images.clone(), config, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------
# The training loop


@pytest.fixture(scope="module")
def small_split(mnist):
    inputs = digits_to_inputs(mnist.images)
    labels = mnist.labels.copy()
    return inputs[:600], labels[:600], inputs[7700:], labels[7700:]


def _run(split, **overrides):
    config = TrainConfig(**{"epochs": 2, "hidden_sizes": (64, 64), "seed": 1, **overrides})
    reports = []
    result = train_model(config, *split, on_epoch=reports.append)
    return result, reports


def test_training_is_reproducible_and_reports_each_epoch(small_split):
    first, reports = _run(small_split)
    second, _ = _run(small_split)

    assert len(reports) == 2 and [r.epoch for r in reports] == [1, 2]
    assert reports == first.history
    for report in reports:
        assert isinstance(report, EpochReport)
        assert report.epochs == 2
        assert report.train_loss > 0 and 0 <= report.train_accuracy <= 1
        assert report.val_loss > 0 and 0 <= report.val_accuracy <= 1
        assert report.lr > 0 and report.seconds >= 0
        assert "epoch" in report.log_line()
        assert set(report.to_dict()) == {f.name for f in dataclasses.fields(EpochReport)}

    one, two = first.model.state_dict(), second.model.state_dict()
    assert one.keys() == two.keys()
    for name in one:
        assert torch.equal(one[name], two[name]), name
    strip = [dataclasses.replace(r, seconds=0) for r in first.history]
    assert strip == [dataclasses.replace(r, seconds=0) for r in second.history]
    assert not first.model.training

    other, _ = _run(small_split, seed=2)
    assert not torch.equal(other.model.state_dict()["fc1.weight"], one["fc1.weight"])


def test_stop_callback_ends_training_early(small_split):
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) >= 2

    config = TrainConfig(epochs=10, hidden_sizes=(32,), seed=0)
    reports = []
    result = train_model(config, *small_split, on_epoch=reports.append, stop=stop)
    assert len(result.history) == 2 == len(reports)
    assert 1 <= result.best_epoch <= 2


def test_best_weights_by_validation_accuracy_are_kept(small_split):
    # A high constant learning rate makes validation accuracy wander, so the last
    # epoch is unlikely to be the best: the model must hold the best epoch's weights.
    result, _ = _run(
        small_split, epochs=6, optimizer="sgd", lr=0.5, schedule="constant", augment=False
    )
    accuracies = [r.val_accuracy for r in result.history]
    assert len(accuracies) == 6
    assert result.best_epoch < 6, "this seed's last epoch should not be its best"
    assert result.best_epoch == int(np.argmax(accuracies)) + 1
    _, accuracy = loss_and_accuracy(result.model, small_split[2], small_split[3])
    assert accuracy == pytest.approx(max(accuracies), abs=1e-6)


def test_without_validation_the_last_epoch_is_kept(small_split):
    config = TrainConfig(epochs=2, hidden_sizes=(32,), seed=0, val_fraction=0.0)
    result = train_model(config, small_split[0], small_split[1])
    assert result.best_epoch == 2
    assert all(r.val_loss is None and r.val_accuracy is None for r in result.history)
    assert "val_loss" not in result.history[-1].log_line()


def test_cnn_trains_one_short_epoch(small_split):
    inputs, labels, val_inputs, val_labels = small_split
    config = TrainConfig(architecture="cnn", cnn_channels=(4, 8), cnn_hidden=16, epochs=1, seed=0)
    result = train_model(config, inputs[:200], labels[:200], val_inputs[:100], val_labels[:100])
    assert len(result.history) == 1 and result.best_epoch == 1
    assert isinstance(result.model, CNN)


def test_hard_strokes_redraw_every_digit_with_crisp_edges(mnist):
    images = torch.as_tensor(digits_to_inputs(mnist.images[:16])).reshape(-1, 1, 28, 28)
    config = without_geometry(hard_stroke_prob=1.0)
    out = augment_batch(images.clone(), config, torch.Generator().manual_seed(0))
    # Thresholded at 2x and averaged back: every pixel is a multiple of 1/4.
    torch.testing.assert_close(out * 4, torch.round(out * 4), atol=1e-5, rtol=0)
    assert not torch.equal(out, images)

"""digitnet.model and digitnet.train: shapes, config checks, augmentation, the loop."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import assert_one_line

from digitnet.config import ConfigError, knobs
from digitnet.errors import CheckpointError
from digitnet.evaluate import loss_and_accuracy
from digitnet.model import CNN, MLP, ModelConfig, build_model, count_parameters
from digitnet.preprocess import digits_to_inputs
from digitnet.train import (
    EpochReport,
    StepReport,
    TrainConfig,
    TrainingRun,
    augment_batch,
    train_model,
    tutorial_config,
)

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
        TrainConfig.from_knobs(**{field: value})


def test_train_config_round_trips_through_a_dict():
    config = TrainConfig.from_knobs(architecture="cnn", hidden_sizes=[128, 64], lr=0.05, seed=3)
    values = config.to_dict()
    assert values["model"]["hidden_sizes"] == [128, 64]
    assert isinstance(values["model"]["cnn_channels"], list)
    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(values)
    assert {f.name for f in dataclasses.fields(ModelConfig)} == set(values["model"])
    rebuilt = TrainConfig.from_dict({**values, "from_a_newer_version": 1})
    assert rebuilt == config
    assert rebuilt.model.hidden_sizes == (128, 64)
    assert TrainConfig.from_knobs(**config.knob_values()) == config


def test_train_config_reads_digitnet_0_1s_flat_config():
    flat = {"architecture": "cnn", "cnn_hidden": 16, "epochs": 3, "hidden_sizes": [8]}
    config = TrainConfig.from_dict(flat)
    assert config.model == ModelConfig(architecture="cnn", cnn_hidden=16, hidden_sizes=(8,))
    assert config.epochs == 3


def test_every_knob_has_help_and_its_range_is_enforced():
    for config_type in (ModelConfig, TrainConfig):
        for field in knobs(config_type):
            assert len(field.metadata["help"]) > 5, field.name
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_knobs(epochs=10_001)
    assert str(caught.value) == "epochs must be in [1, 10000], got 10001"
    with pytest.raises(ConfigError, match="unknown setting colour"):
        TrainConfig.from_knobs(colour="red")
    with pytest.raises(ConfigError, match="lr must be a number"):
        TrainConfig.from_knobs(lr="fast")
    # NaN is neither below nor above a bound, so a range check alone lets it through.
    for name, value in [("lr", math.nan), ("dropout", math.nan), ("weight_decay", math.inf)]:
        with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
            TrainConfig.from_knobs(**{name: value})


def test_model_config_alone_rebuilds_the_model_without_training_code():
    import subprocess
    import sys

    code = (
        "import sys; from digitnet.checkpoint import load_checkpoint; load_checkpoint('mlp'); "
        "print(sorted(m for m in sys.modules if m.startswith('digitnet')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "digitnet.train" not in loaded and "digitnet.model" in loaded


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
    return TrainConfig.from_knobs(
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
    config = TrainConfig.from_knobs(
        **{"epochs": 2, "hidden_sizes": (64, 64), "seed": 1, **overrides}
    )
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


def test_stop_callback_ends_training_within_one_step(small_split):
    """``stop`` is polled before every step: asked after step 3, no fourth step runs."""
    steps = []
    config = TrainConfig.from_knobs(epochs=10, hidden_sizes=(32,), seed=0, batch_size=32)
    reports = []
    result = train_model(
        config,
        *small_split,
        on_epoch=reports.append,
        on_step=steps.append,
        stop=lambda: len(steps) >= 3,
        report_every=1,
    )
    assert [s.step for s in steps] == [1, 2, 3]
    assert len(result.history) == 1 == len(reports)
    (last,) = result.history
    assert not last.complete and last.steps == 3 and result.stopped
    assert last.val_accuracy is not None, "the stopped weights are validated"
    assert "stopped after 3 steps" in last.log_line()
    assert result.best_epoch == 1 and not result.model.training


def test_a_run_is_a_generator_of_step_and_epoch_reports(small_split):
    config = TrainConfig.from_knobs(epochs=2, hidden_sizes=(32,), seed=0, batch_size=100)
    run = TrainingRun(config, *small_split, report_every=2)
    reports = list(run)
    steps = [r for r in reports if isinstance(r, StepReport)]
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    # 540 digits / 100 = 6 steps an epoch: reports after steps 2, 4, 6 of each epoch.
    assert run.total_steps == 12
    assert [s.step for s in steps] == [2, 4, 6, 8, 10, 12]
    assert [type(r).__name__ for r in reports[:4]] == ["StepReport"] * 3 + ["EpochReport"]
    assert [e.epoch for e in epochs] == [1, 2] and all(e.complete for e in epochs)
    assert steps[-1].progress == 1.0 and steps[-1].eta_seconds == 0.0
    assert steps[0].eta_seconds > 0
    assert run.result.history == epochs and not run.result.stopped
    # The last step report of an epoch is that epoch's running train loss.
    assert steps[2].train_loss == pytest.approx(epochs[0].train_loss)


def test_stop_from_another_thread_keeps_the_best_weights_so_far(small_split):
    import threading

    config = TrainConfig.from_knobs(epochs=50, hidden_sizes=(32,), seed=0, batch_size=16)
    run = TrainingRun(config, *small_split, report_every=1)
    seen = []
    for report in run:
        seen.append(report)
        if isinstance(report, EpochReport) and report.epoch == 2:
            # A UI's Stop button: another thread, mid-epoch 3.
            threading.Timer(0.05, run.stop).start()
    result = run.result
    assert result.stopped and 3 <= len(result.history) < 50
    best = result.history[result.best_epoch - 1]
    assert best.val_accuracy == max(r.val_accuracy for r in result.history)
    _, accuracy = loss_and_accuracy(result.model, small_split[2], small_split[3])
    assert accuracy == pytest.approx(best.val_accuracy, abs=1e-6)


def test_fine_tuning_starts_where_the_given_model_left_off(small_split):
    """init= loads the weights: the first steps' loss is the trained model's, not chance's."""
    trained, _ = _run(small_split, epochs=4, augment=False, batch_size=32)
    config = TrainConfig.from_knobs(
        hidden_sizes=(64, 64), epochs=1, seed=5, augment=False, dropout=0.0, lr=1e-4
    )
    first_losses = {}
    for name, init in (("fresh", None), ("fine-tuned", trained.model)):
        run = TrainingRun(config, *small_split, init=init, report_every=1)
        first_losses[name] = next(iter(run)).train_loss
    trained_loss, _ = loss_and_accuracy(trained.model, small_split[0], small_split[1])
    assert first_losses["fresh"] > 2.0  # about ln(10): chance
    assert first_losses["fine-tuned"] < 0.5 * first_losses["fresh"]
    assert first_losses["fine-tuned"] == pytest.approx(trained_loss, abs=0.35)
    # The given model is copied, never trained in place.
    before = trained.model.state_dict()["fc1.weight"].clone()
    result = train_model(config, *small_split, init=trained.model)
    assert torch.equal(trained.model.state_dict()["fc1.weight"], before)
    assert not torch.equal(result.model.state_dict()["fc1.weight"], before)


def test_fine_tuning_from_weights_of_another_shape_is_one_line(small_split):
    trained, _ = _run(small_split, epochs=1)  # 784-64-64-10
    config = TrainConfig.from_knobs(hidden_sizes=(32,), epochs=1)
    with pytest.raises(CheckpointError) as caught:
        TrainingRun(config, *small_split, init=trained.model)
    assert_one_line(str(caught.value), "init=")


def test_best_weights_by_validation_accuracy_are_kept(small_split):
    # A high constant learning rate makes validation accuracy wander, so the last
    # epoch is unlikely to be the best: the model must hold the best epoch's weights.
    result, _ = _run(
        small_split,
        epochs=6,
        optimizer="sgd",
        lr=0.5,
        schedule="constant",
        augment=False,
        nondigit_fraction=0.0,
    )
    accuracies = [r.val_accuracy for r in result.history]
    assert len(accuracies) == 6
    assert result.best_epoch < 6, "this seed's last epoch should not be its best"
    assert result.best_epoch == int(np.argmax(accuracies)) + 1
    _, accuracy = loss_and_accuracy(result.model, small_split[2], small_split[3])
    assert accuracy == pytest.approx(max(accuracies), abs=1e-6)


def test_without_validation_the_last_epoch_is_kept(small_split):
    config = TrainConfig.from_knobs(epochs=2, hidden_sizes=(32,), seed=0, val_fraction=0.0)
    result = train_model(config, small_split[0], small_split[1])
    assert result.best_epoch == 2
    assert all(r.val_loss is None and r.val_accuracy is None for r in result.history)
    assert "val_loss" not in result.history[-1].log_line()


def test_cnn_trains_one_short_epoch(small_split):
    inputs, labels, val_inputs, val_labels = small_split
    config = TrainConfig.from_knobs(
        architecture="cnn", cnn_channels=(4, 8), cnn_hidden=16, epochs=1, seed=0
    )
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

"""Accuracy gates.

The shipped-weights gates are slow and opt-in: ``DIGITNET_SLOW=1 python -m pytest
tests/test_accuracy.py``. One small always-on gate checks that default training learns.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from digitnet.checkpoint import ASSETS_DIR, load_checkpoint
from digitnet.data import fingerprint, stratified_split
from digitnet.evaluate import evaluate, evaluate_drawings
from digitnet.preprocess import digits_to_inputs
from digitnet.train import TrainConfig, train_model

slow = pytest.mark.skipif(
    os.environ.get("DIGITNET_SLOW") != "1", reason="slow accuracy gate; set DIGITNET_SLOW=1"
)


def shipped_validation(name: str, mnist):
    """The shipped model and the validation digits its metadata says it did not train on."""
    if not (ASSETS_DIR / f"{name}.safetensors").is_file():
        pytest.skip(f"assets/{name}.safetensors is not there")
    model, metadata = load_checkpoint(name)
    config = TrainConfig.from_dict(metadata["config"])
    data = metadata.get("data", {})
    digits = mnist.subset(np.arange(data.get("count", len(mnist))))
    assert data.get("fingerprint") in (None, fingerprint(digits)), (
        f"assets/{name} was not trained on mnist-10k/train.csv; its validation split is unknown"
    )
    _, val_index = stratified_split(digits.labels, config.val_fraction, config.seed)
    assert len(val_index) >= 500
    return model, config, digits.subset(val_index)


@slow
@pytest.mark.slow
@pytest.mark.parametrize(("name", "minimum"), [("mlp", 0.975), ("cnn", 0.985)])
def test_shipped_model_on_its_validation_split(name, minimum, mnist):
    model, _, val = shipped_validation(name, mnist)
    metrics = evaluate(model, digits_to_inputs(val.images), val.labels)
    assert metrics["accuracy"] >= minimum, f"{name}: {metrics['accuracy']:.4f} < {minimum}"


@slow
@pytest.mark.slow
def test_shipped_mlp_on_canvas_like_drawings(mnist):
    model, config, val = shipped_validation("mlp", mnist)
    drawn = evaluate_drawings(model, val.images[:400], val.labels[:400], seed=config.seed)
    assert drawn["count"] == 400
    assert drawn["accuracy"] >= 0.96, f"drawings: {drawn['accuracy']:.4f} < 0.96"


def test_default_recipe_learns_quickly(mnist):
    """Default MLP recipe, 2,000 training digits, a few epochs: clearly learning.

    Five epochs, not three: with the default batch size, 2,000 digits make only
    16 steps an epoch, and three epochs (48 steps) leave the one-cycle schedule too
    little room to clear 85% reliably.
    """
    inputs = digits_to_inputs(mnist.images)
    labels = mnist.labels
    config = TrainConfig.from_knobs(epochs=5, seed=0)
    result = train_model(config, inputs[:2000], labels[:2000], inputs[7000:], labels[7000:])
    accuracy = result.history[result.best_epoch - 1].val_accuracy
    assert accuracy > 0.85, [round(r.val_accuracy, 3) for r in result.history]
    assert result.history[-1].train_loss < result.history[0].train_loss

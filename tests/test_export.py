"""Exporting models for the web (digitnet.export): the file the browser runs.

The exported operations are checked against PyTorch itself (the model's own forward pass),
for the shipped models and for other sizes built here, batch norm statistics included.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.numpy
import torch
from conftest import assert_one_line
from torch import nn

from digitnet.checkpoint import load_checkpoint
from digitnet.export import (
    WEB_FORMAT,
    ExportError,
    export_web,
    load_web,
    run_web,
    web_bytes,
    web_model,
)
from digitnet.model import CNN, MLP

INPUTS = np.random.default_rng(1).random((6, 28, 28), dtype=np.float32)


def torch_logits(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(inputs)).double().numpy()


def cnn_with_batch_statistics(seed: int = 0, **sizes) -> CNN:
    """A CNN whose batch norms hold non-trivial statistics, as a trained one's do."""
    torch.manual_seed(seed)
    model = CNN(**sizes)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 1, 28, 28))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_shipped_models_export_and_run_as_pytorch_does(tmp_path, name):
    model, metadata = load_checkpoint(name)
    path = export_web(model, metadata, tmp_path / name)
    assert path == tmp_path / f"{name}.safetensors"
    web = load_web(path)
    assert web.metadata["format"] == WEB_FORMAT
    assert web.metadata["architecture"] == name
    assert web.metadata["trained"] == metadata["created"]
    assert np.abs(run_web(web, INPUTS) - torch_logits(model, INPUTS)).max() < 1e-4
    # Same predictions, and every parameter accounted for (batch norm folded into the convs).
    assert (run_web(web, INPUTS).argmax(1) == torch_logits(model, INPUTS).argmax(1)).all()
    assert all(array.dtype == np.float32 for array in web.tensors.values())


def test_the_mlp_is_read_from_the_model_not_its_config():
    model = MLP(hidden_sizes=(64, 32, 16), dropout=0.5)
    web = web_model(model)
    assert [op["op"] for op in web.ops] == ["dense"] * 4
    assert [op["relu"] for op in web.ops] == [True, True, True, False]
    assert [web.tensors[op["weight"]].shape for op in web.ops] == [
        (64, 784),
        (32, 64),
        (16, 32),
        (10, 16),
    ]
    assert np.abs(run_web(web, INPUTS) - torch_logits(model, INPUTS)).max() < 1e-4


def test_batch_norm_is_folded_into_the_convolutions():
    model = cnn_with_batch_statistics(channels=(8, 16), hidden=24)
    web = web_model(model)
    kinds = [op["op"] for op in web.ops]
    assert kinds == ["conv2d", "conv2d", "maxpool2d"] * 2 + ["flatten", "dense", "dense"]
    assert all(op["relu"] for op in web.ops if op["op"] == "conv2d")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in web.ops)  # no batch-norm op left
    assert np.abs(run_web(web, INPUTS) - torch_logits(model, INPUTS)).max() < 1e-4


def test_the_file_is_safetensors_with_its_operations_in_the_header(tmp_path):
    model = MLP(hidden_sizes=(16,))
    path = export_web(model, {"created": "2026-01-01"}, tmp_path / "tiny.web")
    assert path.name == "tiny.web.safetensors"
    tensors = safetensors.numpy.load_file(str(path))
    assert set(tensors) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_length])
    ops = json.loads(header["__metadata__"]["ops"])
    assert ops[0] == {"op": "dense", "relu": True, "weight": "0.weight", "bias": "0.bias"}
    assert header["0.weight"]["dtype"] == "F32" and header["0.weight"]["shape"] == [16, 784]


def test_the_same_model_exports_the_same_bytes():
    """The app names exported files by their content: a rebuild must not change the name."""
    model, metadata = load_checkpoint("mlp")
    assert web_bytes(model, metadata) == web_bytes(model, metadata)


class Tanh(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.Tanh())

    def forward(self, x):
        return self.layers(x)


class Backwards(nn.Module):
    """Its layers are registered in another order than the forward pass applies them."""

    def __init__(self):
        super().__init__()
        self.second = nn.Linear(32, 10)
        self.first = nn.Linear(784, 32)

    def forward(self, x):
        return self.second(torch.relu(self.first(x.reshape(len(x), -1))))


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        (Tanh(), "Tanh"),
        (nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.Flatten(), nn.Linear(676, 10)), "stride"),
        (Backwards(), "do not reproduce"),
    ],
    ids=["unknown-layer", "strided-conv", "wrong-order"],
)
def test_a_model_the_web_format_cannot_express_is_refused_in_one_line(tmp_path, model, needle):
    with pytest.raises(ExportError) as caught:
        export_web(model, None, tmp_path / "x")
    assert_one_line(str(caught.value), needle)
    assert not list(tmp_path.iterdir()), "nothing is written for a refused model"


def test_reading_a_file_that_is_not_a_web_model(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ExportError) as caught:
        load_web(garbage)
    assert_one_line(str(caught.value), "garbage.safetensors")
    other = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(3, np.float32)}, str(other))
    with pytest.raises(ExportError) as caught:
        load_web(other)
    assert_one_line(str(caught.value), "not a digitnet web model")

"""digitnet.checkpoint: NAME.safetensors + NAME.json, strict loading, tutorial model.pt import."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import safetensors.torch
import torch
from conftest import assert_one_line
from torch import nn

from digitnet.checkpoint import (
    load_checkpoint,
    model_card,
    resolve_model_path,
    save_checkpoint,
    stem_of,
)
from digitnet.errors import CheckpointError
from digitnet.model import MLP
from digitnet.train import TrainConfig


def _copy(stem, tmp_path, name: str = "copy"):
    target = tmp_path / name
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(stem.with_suffix(suffix), target.with_suffix(suffix))
    return target


def _outputs(model, inputs):
    with torch.no_grad():
        return model.eval()(inputs)


def _refused(path, *needles: str) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert_one_line(message, *needles)
    return message


@pytest.fixture(scope="module")
def inputs():
    return torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------
# Round trip


def test_save_and_load_give_identical_outputs(tmp_path, trained, inputs):
    config, result = trained
    weights, meta = save_checkpoint(tmp_path / "run" / "model", result.model, config, {"x": 1})
    assert weights == tmp_path / "run" / "model.safetensors" and weights.is_file()
    assert meta == tmp_path / "run" / "model.json" and meta.is_file()

    for name in ("model", "model.json", "model.safetensors"):
        loaded, metadata = load_checkpoint(tmp_path / "run" / name)
        assert not loaded.training
        torch.testing.assert_close(
            _outputs(loaded, inputs), _outputs(result.model, inputs), rtol=0, atol=0
        )
    assert metadata["x"] == 1
    assert TrainConfig.from_dict(metadata["config"]) == config
    assert not list((tmp_path / "run").glob("*.tmp")), "temporary files left behind"


def test_cnn_round_trip(tmp_path, inputs):
    torch.manual_seed(0)
    config = TrainConfig.from_knobs(architecture="cnn", cnn_channels=(4, 8), cnn_hidden=16)
    from digitnet.model import build_model

    model = build_model("cnn", cnn_channels=(4, 8), cnn_hidden=16).eval()
    save_checkpoint(tmp_path / "cnn", model, config, {})
    loaded, _ = load_checkpoint(tmp_path / "cnn")
    torch.testing.assert_close(_outputs(loaded, inputs), _outputs(model, inputs))


def test_metadata_json_holds_what_the_dashboard_needs(checkpoint, trained):
    document = json.loads(checkpoint.with_suffix(".json").read_text())
    for key in ("config", "history", "metrics", "versions", "created", "parameters", "format"):
        assert key in document, key
    assert document["config"]["model"]["hidden_sizes"] == [64, 64]
    assert document["parameters"] == sum(p.numel() for p in trained[1].model.parameters())
    assert {"torch", "numpy", "safetensors", "python", "digitnet", "scikit-learn"} <= set(
        document["versions"]
    )
    assert len(document["history"]) == len(trained[1].history)
    assert document["created"][:2] == "20"
    card = model_card(document)
    assert card["architecture"].startswith("MLP 784-64-64-10")


def test_the_card_names_only_the_augmentations_a_run_used():
    tiny = {"augment": True, "thickness_prob": 0.0, "hard_stroke_prob": 0.0, "shear": 0.1}
    assert model_card({"config": tiny})["augmentation"] == "rotation, zoom, shift, shear"
    assert model_card({"config": {**tiny, "augment": False}})["augmentation"] == "none"
    every = model_card({"config": {"augment": True}})["augmentation"]  # an older config
    assert every.endswith("stroke thickness, hard canvas-like strokes")


def test_stem_and_shipped_names():
    assert stem_of("runs/mlp.json") == stem_of("runs/mlp.safetensors") == stem_of("runs/mlp")
    assert resolve_model_path("mlp").name == "mlp" and resolve_model_path("mlp").parent.name == (
        "assets"
    )
    assert str(resolve_model_path("some/path")) == "some/path"


# ---------------------------------------------------------------------------
# Strict loading


def test_missing_safetensors(checkpoint, tmp_path):
    stem = _copy(checkpoint, tmp_path)
    stem.with_suffix(".safetensors").unlink()
    _refused(stem, "copy.safetensors", "missing")


def test_missing_json(checkpoint, tmp_path):
    stem = _copy(checkpoint, tmp_path)
    stem.with_suffix(".json").unlink()
    _refused(stem, "copy.json", "missing")


def test_truncated_safetensors(checkpoint, tmp_path):
    stem = _copy(checkpoint, tmp_path)
    weights = stem.with_suffix(".safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    _refused(stem, "copy.safetensors", "truncated")


def test_garbage_safetensors(checkpoint, tmp_path):
    stem = _copy(checkpoint, tmp_path)
    stem.with_suffix(".safetensors").write_bytes(os.urandom(4096))
    _refused(stem, "copy.safetensors")


def test_empty_safetensors(checkpoint, tmp_path):
    stem = _copy(checkpoint, tmp_path)
    stem.with_suffix(".safetensors").write_bytes(b"")
    _refused(stem, "copy.safetensors")


def test_wrong_shapes_from_edited_hidden_sizes(checkpoint, tmp_path):
    stem = _copy(checkpoint, tmp_path)
    meta = stem.with_suffix(".json")
    document = json.loads(meta.read_text())
    document["config"]["model"]["hidden_sizes"] = [64, 32]
    meta.write_text(json.dumps(document))
    _refused(stem, "copy.safetensors", "fc2", "has shape", "needs")


def test_wrong_architecture_in_json(checkpoint, tmp_path):
    stem = _copy(checkpoint, tmp_path)
    meta = stem.with_suffix(".json")
    document = json.loads(meta.read_text())
    document["config"]["model"]["architecture"] = "cnn"
    meta.write_text(json.dumps(document))
    _refused(stem, "copy.safetensors", "missing", "unexpected")


def _rewrite_tensors(stem, change):
    weights = stem.with_suffix(".safetensors")
    tensors = safetensors.torch.load_file(str(weights))
    change(tensors)
    safetensors.torch.save_file(tensors, str(weights))


def test_extra_tensor(checkpoint, tmp_path):
    stem = _copy(checkpoint, tmp_path)
    _rewrite_tensors(stem, lambda t: t.update({"fc4.weight": torch.zeros(10, 10)}))
    _refused(stem, "copy.safetensors", "unexpected fc4.weight")


def test_missing_tensor(checkpoint, tmp_path):
    stem = _copy(checkpoint, tmp_path)
    _rewrite_tensors(stem, lambda t: t.pop("fc3.bias"))
    _refused(stem, "copy.safetensors", "missing fc3.bias")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"format": "digitnet-checkpoint", "config": ', "not valid JSON"),
        ("\xff\xfe not json", "not valid JSON"),
        ("[1, 2, 3]", "not a digitnet checkpoint"),
        ('{"config": {}}', "not a digitnet checkpoint"),
        ('{"format": "digitnet-checkpoint"}', "config"),
        ('{"format": "digitnet-checkpoint", "config": {"architecture": "rnn"}}', "config"),
        ('{"format": "digitnet-checkpoint", "config": {"hidden_sizes": null}}', "config"),
    ],
)
def test_invalid_json(checkpoint, tmp_path, text, needle):
    stem = _copy(checkpoint, tmp_path)
    stem.with_suffix(".json").write_text(text, encoding="latin-1")
    _refused(stem, "copy.json", needle)


# ---------------------------------------------------------------------------
# The tutorial's model.pt


class TutorialNet(nn.Module):
    """The tutorial's model, as its users defined it."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 512)
        self.fc2 = nn.Linear(512, 512)
        self.fc3 = nn.Linear(512, 10)
        self.dropout = nn.Dropout(0.2)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        x = self.dropout(torch.relu(self.fc1(x)))
        x = self.dropout(torch.relu(self.fc2(x)))
        return self.fc3(x)


def test_tutorial_model_pt_imports_and_predicts_the_same(tmp_path, inputs):
    torch.manual_seed(3)
    tutorial = TutorialNet()
    path = tmp_path / "model.pt"
    torch.save(tutorial.state_dict(), path)

    model, metadata = load_checkpoint(path)

    assert isinstance(model, MLP)
    torch.testing.assert_close(_outputs(model, inputs), _outputs(tutorial, inputs))
    assert metadata["config"]["model"]["hidden_sizes"] == [512, 512]
    assert metadata["imported_from"] == str(path)
    assert model_card(metadata)["epochs"].startswith("unknown")


def test_wrapped_state_dict_with_other_sizes(tmp_path, inputs):
    source = MLP((32, 16)).eval()
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    model, metadata = load_checkpoint(path)
    assert metadata["config"]["model"]["hidden_sizes"] == [32, 16]
    torch.testing.assert_close(_outputs(model, inputs), _outputs(source, inputs))


class _Payload:
    """Unpickling this runs a shell command: what a hostile model.pt does."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.target}",))


def test_pickle_carrying_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save({"fc1.weight": torch.zeros(1), "trap": _Payload(marker)}, path)

    # The payload is real: a plain pickle load would run it.
    torch.load(path, weights_only=False)
    assert marker.is_file()
    marker.unlink()

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert_one_line(str(caught.value), "evil.pt", "refused")
    assert not marker.exists(), "the pickle's code ran"


def test_truncated_pt(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save(TutorialNet().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _refused(path, "cut.pt")


def test_garbage_and_missing_pt(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(2048))
    _refused(path, "noise.pt")
    _refused(tmp_path / "absent.pt", "absent.pt", "no such")


def test_pt_that_is_not_the_tutorial_mlp(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(4, 1, 3, 3)}, path)
    _refused(path, "other.pt", "fc1")
    torch.save([torch.zeros(3)], path)
    _refused(path, "other.pt", "state dict")


def test_a_digitnet_0_1_checkpoint_with_a_flat_config_still_loads(checkpoint, tmp_path):
    """Format 1 kept the model's settings at the top of "config"; those files still load."""
    stem = _copy(checkpoint, tmp_path)
    meta = stem.with_suffix(".json")
    document = json.loads(meta.read_text())
    document["config"] = {**document["config"].pop("model"), **document["config"]}
    document["format_version"] = 1
    meta.write_text(json.dumps(document))
    model, metadata = load_checkpoint(stem)
    assert model.fc1.weight.shape == (64, 784)
    assert model_card(metadata)["architecture"].startswith("MLP 784-64-64-10")

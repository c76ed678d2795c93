"""Checkpoints: ``NAME.safetensors`` (weights) plus ``NAME.json`` (what rebuilds and explains them).

Loading is strict: every tensor the config's model needs must be there with the
right shape, and nothing else. The tutorial's ``model.pt`` (a plain state dict with
``fc1``, ``fc2``, ``fc3``) can be imported; a pickle that carries code is refused.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import pickle
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from digitnet import __version__
from digitnet.calibration import Calibration, set_calibration
from digitnet.config import ConfigError
from digitnet.errors import CheckpointError
from digitnet.files import write_atomically, write_text_atomically
from digitnet.model import (
    NUM_PIXELS,
    ModelConfig,
    build_model,
    count_parameters,
    load_state_dict_strictly,
)

if TYPE_CHECKING:  # loading a checkpoint must not import the training code
    from digitnet.train import TrainConfig

FORMAT = "digitnet-checkpoint"
# 2: the config nests the model's settings under "model" (1 kept them flat; both load).
FORMAT_VERSION = 2
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
SHIPPED_MODELS = ("mlp", "cnn")  # names --model accepts for the weights in assets/


def stem_of(path: str | Path) -> Path:
    """``runs/mlp``, ``runs/mlp.json`` and ``runs/mlp.safetensors`` all name ``runs/mlp``.

    Any other dot is part of the name: ``runs/lr0.01`` stays ``runs/lr0.01``.
    """
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """The weights and metadata files a checkpoint name stands for."""
    stem = stem_of(path)
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def model_files(name_or_path: str | Path) -> list[Path]:
    """Every file ``--model`` reads, so outputs can refuse to replace them."""
    path = resolve_model_path(name_or_path)
    return [path] if path.suffix in (".pt", ".pth") else list(checkpoint_files(path))


def resolve_model_path(name_or_path: str | Path) -> Path:
    """``mlp`` / ``cnn`` -> the shipped weights in assets/; anything else is a path."""
    if str(name_or_path) in SHIPPED_MODELS:
        return ASSETS_DIR / str(name_or_path)
    return Path(name_or_path)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: ModelConfig | TrainConfig,
    metadata: dict | None = None,
) -> tuple[Path, Path]:
    """Write ``PATH.safetensors`` and ``PATH.json`` atomically; return both paths.

    ``config`` is the run's TrainConfig (or just a ModelConfig); ``metadata`` holds the
    rest (``digitnet.runs.run_metadata`` builds it for a training run). The format, the
    config, the parameter count, library versions and date are set here.
    """
    weights_path, meta_path = checkpoint_files(path)
    model_config = _model_config(config)
    if stem_of(path).is_dir():
        raise CheckpointError(
            f"{stem_of(path)}: is a folder; give a name for the checkpoint, "
            f"e.g. {stem_of(path) / model_config.architecture}"
        )
    document = {**(metadata or {}), **checkpoint_header(model, config)}
    tensors = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    write_atomically(
        weights_path,
        lambda temp: safetensors.torch.save_file(
            tensors,
            str(temp),
            metadata={"format": FORMAT, "architecture": model_config.architecture},
        ),
    )
    write_text_atomically(meta_path, json.dumps(document, indent=1) + "\n")
    return weights_path, meta_path


def _model_config(config: ModelConfig | TrainConfig) -> ModelConfig:
    return config if isinstance(config, ModelConfig) else config.model


def checkpoint_header(model: nn.Module, config: ModelConfig | TrainConfig) -> dict:
    """What every checkpoint's metadata holds: its format, what rebuilds the model, provenance.

    ``config`` is saved whole (a TrainConfig holds its ModelConfig under "model"), so
    ``ModelConfig.from_dict(metadata["config"])`` rebuilds the model.
    """
    saved = config.to_dict()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": {"model": saved} if isinstance(config, ModelConfig) else saved,
        "parameters": count_parameters(model),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }


# Each augmentation with the setting that turns it off at 0. A config saved before a setting
# existed does not have it; such a config had that augmentation on.
AUGMENTATIONS = (
    ("rotation", "rotate_degrees"),
    ("zoom", "scale_range"),
    ("shift", "shift_pixels"),
    ("shear", "shear"),
    ("stroke thickness", "thickness_prob"),
    ("hard canvas-like strokes", "hard_stroke_prob"),
)


def _augmentation_words(config: dict) -> str:
    """The augmentations a run really used, from its config ("none" if none)."""
    if not config.get("augment"):
        return "none"
    used = [words for words, setting in AUGMENTATIONS if config.get(setting, 1) != 0]
    return ", ".join(used) or "none"


def _versions() -> dict:
    return {
        "digitnet": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        # It draws the validation split; read without importing it (the app never needs it).
        "scikit-learn": _installed_version("scikit-learn"),
        "python": platform.python_version(),
    }


def _installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model from ``PATH.json`` and load ``PATH.safetensors`` strictly.

    ``path`` may also be ``mlp``/``cnn`` (the shipped weights) or a tutorial ``.pt``.
    Returns the model in eval mode and the metadata.
    """
    path = resolve_model_path(path)
    if path.suffix in (".pt", ".pth"):
        return import_tutorial_state_dict(path, device)
    weights_path, meta_path = checkpoint_files(path)
    for required in (weights_path, meta_path):
        if not required.is_file():
            raise CheckpointError(
                f"{required}: missing; a checkpoint is NAME.safetensors plus "
                f"NAME.json, as written by 'python -m digitnet train'"
            )
    metadata = _read_metadata(meta_path)
    try:
        config = ModelConfig.from_dict(metadata["config"])
    except (TypeError, ConfigError) as error:
        raise CheckpointError(f"{meta_path.name}: the config is not valid ({error})") from None
    model = build_model(config)
    try:
        tensors = safetensors.torch.load_file(str(weights_path), device="cpu")
    except Exception as error:  # safetensors raises its own SafetensorError and OSError
        raise CheckpointError(
            f"{weights_path.name}: not a readable safetensors file "
            f"({_first_line(error)}); it may be truncated, copy it again"
        ) from None
    load_state_dict_strictly(model, tensors, weights_path.name)
    set_calibration(model, Calibration.from_dict(metadata.get("calibration")))
    return model.to(device).eval(), metadata


def _read_metadata(meta_path: Path) -> dict:
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{meta_path.name}: not valid JSON ({_first_line(error)}); "
            f"it may be truncated, copy it again"
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(
            f'{meta_path.name}: not a digitnet checkpoint\'s metadata (no "format": "{FORMAT}")'
        )
    if not isinstance(metadata.get("config"), dict):
        raise CheckpointError(f'{meta_path.name}: has no "config" to rebuild the model from')
    return metadata


def import_tutorial_state_dict(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """Load the tutorial's ``torch.save(model.state_dict(), 'model.pt')`` as an MLP.

    Uses ``torch.load(weights_only=True)``, which refuses any pickle that would run code.
    Hidden sizes are read from the tensor shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file; check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            raise CheckpointError(
                f"{path.name}: refused: the pickle holds more than plain weights "
                f"(it could run code); save model.state_dict() instead"
            ) from None
        raise CheckpointError(
            f"{path.name}: not a readable PyTorch weights file ({_first_line(error)})"
        ) from None
    except Exception as error:  # torch.load raises many kinds on garbage bytes
        raise CheckpointError(
            f"{path.name}: not a readable PyTorch weights file "
            f"({_first_line(error)}); it may be truncated"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path.name}: expected a state dict of tensors (torch.save(model.state_dict(), ...))"
        )
    layer_weights = sorted(
        (k for k in state if k.startswith("fc") and k.endswith(".weight")),
        key=lambda k: int(k[2:].split(".")[0]) if k[2:].split(".")[0].isdigit() else 0,
    )
    if (
        len(layer_weights) < 2
        or state[layer_weights[0]].ndim != 2
        or state[layer_weights[0]].shape[1] != NUM_PIXELS
    ):
        raise CheckpointError(
            f"{path.name}: expected the tutorial MLP's layers fc1, fc2, fc3 "
            f"taking 784 inputs; found {', '.join(list(state)[:4])}"
        )
    hidden = tuple(int(state[k].shape[0]) for k in layer_weights[:-1])
    config = ModelConfig(architecture="mlp", hidden_sizes=hidden)
    model = build_model(config)
    load_state_dict_strictly(model, state, path.name)
    metadata = {
        **checkpoint_header(model, config),
        "imported_from": str(path),
        "history": [],
        "metrics": {},
    }
    return model.to(device).eval(), metadata


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def _source_names(data: dict) -> str:
    """The data files' names: every source of a multi-file run, else the one source."""
    sources = data.get("sources") or [{"source": data.get("source", "?")}]
    return " + ".join(Path(str(item.get("source", "?"))).name for item in sources)


def record_test_accuracy(path: str | Path, metrics: dict) -> None:
    """Keep a report on MNIST's test digits in a checkpoint's JSON (``metrics.test``): the
    accuracy, count and 95% interval; the per-digit table stays out (``evaluate --json``)."""
    _, meta_path = checkpoint_files(resolve_model_path(path))
    metadata = _read_metadata(meta_path)
    keep = ("count", "accuracy", "low", "high", "loss", "macro_f1", "ece", "refused")
    metadata.setdefault("metrics", {})["test"] = {key: metrics[key] for key in keep}
    write_text_atomically(meta_path, json.dumps(metadata, indent=1) + "\n")


def model_card(metadata: dict) -> dict[str, str]:
    """Human-readable facts about a checkpoint, in display order (CLI ``info``, app card)."""
    config = metadata.get("config", {})
    try:
        described = ModelConfig.from_dict(config).describe()
    except (TypeError, ConfigError):
        described = "unknown"
    validation = metadata.get("metrics", {}).get("validation", {})
    data = metadata.get("data", {})
    history = metadata.get("history", [])
    versions = metadata.get("versions", {})
    card = {
        "architecture": described,
        "parameters": f"{metadata.get('parameters', 0):,}",
        "optimizer": (
            f"{config.get('optimizer')} lr {config.get('lr')} "
            f"({config.get('schedule')}), batch {config.get('batch_size')}, "
            f"weight decay {config.get('weight_decay')}, label smoothing "
            f"{config.get('label_smoothing')}"
        ),
        "augmentation": _augmentation_words(config),
        "epochs": (
            f"{len(history)} (best: {metadata.get('best_epoch')})"
            if history
            else "unknown (imported weights)"
        ),
        "training time": (
            f"{metadata['training_seconds']:.1f} s on {metadata.get('device')}"
            if "training_seconds" in metadata
            else "unknown"
        ),
        "data": (
            f"{data.get('train_count')} train / {data.get('val_count')} validation digits "
            f"from {_source_names(data)} (fingerprint {data.get('fingerprint')})"
            if data
            else "unknown"
        ),
        "val accuracy": (
            f"{100 * validation['accuracy']:.2f}% on {validation['count']} digits"
            if validation.get("accuracy") is not None
            else "not measured"
        ),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()) or "unknown",
        "created": metadata.get("created", "unknown"),
    }
    if metadata.get("command"):
        card["trained with"] = f"`{metadata['command']}`"
    if metadata.get("imported_from"):
        # Only the architecture can be read off imported weights; the rest is unknown.
        for key in ("optimizer", "augmentation"):
            card[key] = "unknown (imported weights)"
        card["imported from"] = metadata["imported_from"]
    drawings = metadata.get("metrics", {}).get("drawings")
    if drawings:
        card["drawing accuracy"] = (
            f"{100 * drawings['accuracy']:.2f}% on {drawings['count']} canvas-like drawings"
        )
    test = metadata.get("metrics", {}).get("test")
    if test:
        card["test accuracy"] = (
            f"{100 * test['accuracy']:.2f}% [{100 * test['low']:.2f}-{100 * test['high']:.2f}] "
            f"on MNIST's {test['count']:,} test digits (reported, never used to choose)"
        )
    calibration = metadata.get("calibration")
    if calibration and "ece" in calibration:
        card["calibration"] = (
            f"temperature {calibration['temperature']:.3f}: calibration error on drawings "
            f"{100 * calibration['ece_before']:.1f} -> {100 * calibration['ece']:.1f} points"
        )
        card["not a digit"] = (
            f"under {100 * calibration['reject_below']:.0f}% sure: refuses "
            f"{100 * calibration['nondigits_refused']:.0f}% of held-out non-digits and "
            f"{100 * calibration['digits_refused']['drawings']:.1f}% of validation drawings"
        )
    return card

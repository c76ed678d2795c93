"""Export a model for the web: a list of plain operations and float32 tensors in one file.

The file is safetensors (an 8-byte header length, a JSON header, raw little-endian data), so
the app's JavaScript reads it with a few lines and no library, and Python reads it back with
``safetensors``. Its ``__metadata__`` holds ``ops``, the forward pass as JSON::

    [{"op": "conv2d", "weight": "0.weight", "bias": "0.bias", "padding": 1, "relu": true},
     {"op": "maxpool2d", "size": 2}, {"op": "flatten"},
     {"op": "dense", "weight": "5.weight", "bias": "5.bias", "relu": false}]

Activations are (C, H, W) in row-major order, as in PyTorch. The operations are read from
the model object itself, not from its config. Batch norm is folded into the convolution
before it (eval mode), and dropout, a no-op at inference, is left out. ``run_web`` runs the
exported operations in NumPy: the reference the browser is tested against, and the check
``export_web`` makes before writing anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import torch
from torch import nn

from digitnet import __version__
from digitnet.calibration import calibration_of
from digitnet.data import IMAGE_SIZE, NUM_CLASSES
from digitnet.errors import DigitnetError
from digitnet.files import write_atomically
from digitnet.model import MLP

log = logging.getLogger(__name__)

WEB_FORMAT = "digitnet-web"
WEB_FORMAT_VERSION = 1
WEB_SUFFIX = ".safetensors"
# Folding batch norm reorders float32 arithmetic; logits move by ~1e-5. More is a wrong export.
MAX_EXPORT_ERROR = 1e-3


class ExportError(DigitnetError):
    """A model the web format cannot express, or a web file that cannot be read."""


@dataclass(frozen=True)
class WebModel:
    """The forward pass as plain operations over named float32 tensors."""

    ops: list[dict]
    tensors: dict[str, np.ndarray]
    metadata: dict[str, str]


def web_model(model: nn.Module, metadata: dict | None = None) -> WebModel:
    """The model's forward pass as operations (batch norm folded), read from the model."""
    model = model.eval()
    calibration = calibration_of(model)
    ops: list[dict] = []
    tensors: dict[str, np.ndarray] = {}

    def add(op: dict, **arrays: torch.Tensor | np.ndarray) -> None:
        index = len(ops)
        for role, array in arrays.items():
            name = f"{index}.{role}"
            value = array.detach().cpu().double().numpy() if torch.is_tensor(array) else array
            tensors[name] = np.ascontiguousarray(value, dtype=np.float32)
            op[role] = name
        ops.append(op)

    for layer in _layers_in_order(model):
        previous = ops[-1] if ops else None
        if isinstance(layer, nn.Linear):
            bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_features)
            add({"op": "dense", "relu": False}, weight=layer.weight, bias=bias)
        elif isinstance(layer, nn.Conv2d):
            _check_conv(layer)
            bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_channels)
            add(
                {"op": "conv2d", "padding": int(layer.padding[0]), "relu": False},
                weight=layer.weight,
                bias=bias,
            )
        elif isinstance(layer, nn.BatchNorm2d):
            if previous is None or previous["op"] != "conv2d" or previous["relu"]:
                raise ExportError("batch norm is only exported right after a convolution")
            _fold_batch_norm(tensors, previous, layer)
        elif isinstance(layer, nn.ReLU):
            if previous is not None and previous["op"] in ("dense", "conv2d"):
                previous["relu"] = True
            else:
                ops.append({"op": "relu"})
        elif isinstance(layer, nn.MaxPool2d):
            ops.append({"op": "maxpool2d", "size": _check_pool(layer)})
        elif isinstance(layer, nn.Flatten):
            ops.append({"op": "flatten"})
        elif isinstance(layer, nn.Dropout):
            continue  # the identity in eval mode
        else:
            raise ExportError(f"cannot export a {type(layer).__name__} layer for the web")
    info = {
        "format": WEB_FORMAT,
        "format_version": str(WEB_FORMAT_VERSION),
        "architecture": type(model).__name__.lower(),
        "input_shape": json.dumps([1, IMAGE_SIZE, IMAGE_SIZE]),
        "classes": str(NUM_CLASSES),
        "ops": json.dumps(ops, separators=(",", ":")),
        "digitnet": __version__,
        "trained": str((metadata or {}).get("created", "unknown")),
        # The browser turns logits into the same calibrated probabilities and refusals.
        "temperature": repr(calibration.temperature),
        "reject_below": repr(calibration.reject_below),
    }
    return WebModel(ops, tensors, info)


def _layers_in_order(model: nn.Module) -> list[nn.Module]:
    """The layers in the order the forward pass applies them."""
    if isinstance(model, MLP):
        # MLP.forward applies relu (then dropout) after every layer but the last.
        layers: list[nn.Module] = []
        for index in range(1, model.num_layers + 1):
            layers.append(getattr(model, f"fc{index}"))
            if index < model.num_layers:
                layers.append(nn.ReLU())
        return layers
    # Sequential models, and models built of Sequentials run in registration order (CNN:
    # features then head). run_web's check in export_web catches any model where that is
    # not the forward order.
    return [module for module in model.modules() if not list(module.children())]


def _check_conv(layer: nn.Conv2d) -> None:
    kernel, padding = layer.kernel_size, layer.padding
    if (
        layer.stride != (1, 1)
        or layer.dilation != (1, 1)
        or layer.groups != 1
        or kernel[0] != kernel[1]
        or not isinstance(padding, tuple)
        or padding[0] != padding[1]
        or layer.padding_mode != "zeros"
    ):
        raise ExportError(
            "only square convolutions with stride 1, no dilation or groups and zero padding "
            "are exported for the web"
        )


def _check_pool(layer: nn.MaxPool2d) -> int:
    size, stride = layer.kernel_size, layer.stride
    if size not in (2, (2, 2)) or stride not in (2, (2, 2)) or layer.padding not in (0, (0, 0)):
        raise ExportError("only 2x2 max pooling with stride 2 is exported for the web")
    return 2


def _fold_batch_norm(tensors: dict[str, np.ndarray], conv_op: dict, norm: nn.BatchNorm2d) -> None:
    """conv then batch norm (eval) == one conv with scaled weights and a shifted bias."""
    mean = norm.running_mean.double().numpy()
    var = norm.running_var.double().numpy()
    gamma = norm.weight.detach().double().numpy() if norm.affine else np.ones_like(mean)
    beta = norm.bias.detach().double().numpy() if norm.affine else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + norm.eps)
    weight = tensors[conv_op["weight"]].astype(np.float64) * scale[:, None, None, None]
    bias = (tensors[conv_op["bias"]].astype(np.float64) - mean) * scale + beta
    tensors[conv_op["weight"]] = weight.astype(np.float32)
    tensors[conv_op["bias"]] = bias.astype(np.float32)


def run_web(web: WebModel, inputs: np.ndarray) -> np.ndarray:
    """Logits (N, 10) float64 for inputs (N, 28, 28) in [0, 1], running the exported ops."""
    x = np.asarray(inputs, dtype=np.float64).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    for op in web.ops:
        kind = op["op"]
        if kind == "dense":
            x = x.reshape(len(x), -1) @ web.tensors[op["weight"]].T + web.tensors[op["bias"]]
        elif kind == "conv2d":
            x = _conv2d(x, web.tensors[op["weight"]], web.tensors[op["bias"]], op["padding"])
        elif kind == "maxpool2d":
            n, c, h, w = x.shape
            size = op["size"]
            x = x[:, :, : h - h % size, : w - w % size]
            x = x.reshape(n, c, h // size, size, w // size, size).max(axis=(3, 5))
        elif kind == "flatten":
            x = x.reshape(len(x), -1)
        elif kind == "relu":
            x = np.maximum(x, 0.0)
        else:
            raise ExportError(f"unknown operation {kind!r} in the web model")
        if op.get("relu"):
            x = np.maximum(x, 0.0)
    return x.reshape(len(x), -1)


def _conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, padding: int) -> np.ndarray:
    n, channels, height, width = x.shape
    kernel = weight.shape[-1]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h, out_w = height + 2 * padding - kernel + 1, width + 2 * padding - kernel + 1
    # (N, C, k, k, H, W): every kernel offset's shifted view, then one contraction.
    patches = np.stack(
        [
            np.stack([padded[:, :, i : i + out_h, j : j + out_w] for j in range(kernel)], axis=2)
            for i in range(kernel)
        ],
        axis=2,
    )
    return np.einsum("ncijhw,ocij->nohw", patches, weight) + bias[None, :, None, None]


def web_bytes(model: nn.Module, metadata: dict | None = None) -> bytes:
    """The web file's bytes, after checking that the ops reproduce the model's logits."""
    web = web_model(model, metadata)
    probe = np.random.default_rng(0).random((4, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    probe[0] = 0.0  # a blank input too
    with torch.no_grad():
        expected = model(torch.from_numpy(probe)).double().numpy()
    try:
        error = float(np.abs(run_web(web, probe) - expected).max())
    except ValueError:  # the layers' sizes do not even chain in registration order
        error = math.inf
    if not error <= MAX_EXPORT_ERROR:
        raise ExportError(
            f"the exported operations do not reproduce the model (logits differ by {error:.2g}); "
            f"its forward pass is not its layers in order"
        )
    return _safetensors_bytes(web.tensors, web.metadata)


def _safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors layout, written here so the same model always gives the same bytes
    (the library orders the metadata differently on every call).

    The header is padded to 8 bytes, so every float32 tensor starts aligned and the browser
    can view it in place.
    """
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def export_web(model: nn.Module, metadata: dict | None, out_path: str | Path) -> Path:
    """Write ``model`` as a web model file (``.safetensors`` is added if missing); return it.

    ``metadata`` is the checkpoint's metadata; its creation date is kept as provenance.
    """
    out_path = Path(out_path)
    if out_path.suffix != WEB_SUFFIX:
        out_path = out_path.with_name(out_path.name + WEB_SUFFIX)
    data = web_bytes(model, metadata)
    return write_atomically(out_path, lambda temp: temp.write_bytes(data))


def write_web_file(data: bytes, folder: str | Path, prefix: str) -> Path:
    """Write web model bytes as ``folder/prefix-<content hash>.safetensors``; return the path.

    Named by its content, so browsers may cache it for good. A file already there under that
    name and size is the same model and is left as it is.
    """
    path = Path(folder) / f"{prefix}-{hashlib.sha256(data).hexdigest()[:16]}{WEB_SUFFIX}"
    if path.is_file() and path.stat().st_size == len(data):
        return path
    return write_atomically(path, lambda temp: temp.write_bytes(data))


def export_beside(model: nn.Module, metadata: dict, stem: Path) -> Path | None:
    """A checkpoint's web model beside it (``stem`` is the checkpoint's path without suffix).

    A random part in its name keeps anyone from guessing its address from the checkpoint's.
    None, with a warning in the log, where the model cannot be exported: it then answers
    from the server.
    """
    try:
        data = web_bytes(model, metadata)
    except DigitnetError as error:
        log.warning("%s answers from the server only: %s", stem.name, error)
        return None
    return write_web_file(data, stem.parent, f"{stem.name}-web-{uuid.uuid4().hex[:8]}")


def load_web(path: str | Path) -> WebModel:
    """Read a web model file back (for tests and tools; the browser has its own reader)."""
    path = Path(path)
    try:
        with safetensors.safe_open(str(path), framework="numpy") as handle:
            info = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error type, and OSError
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ExportError(f"{path}: not a readable web model file ({first_line})") from None
    if info.get("format") != WEB_FORMAT:
        raise ExportError(f'{path}: not a digitnet web model (no "format": "{WEB_FORMAT}")')
    return WebModel(json.loads(info["ops"]), tensors, info)

"""The classifiers: the tutorial's MLP and a small CNN beside it, and the config that builds them.

Both take (B, 1, 28, 28) or (B, 784) float inputs in [0, 1] and return logits (B, 10).
A checkpoint stores a :class:`ModelConfig`, so loading one needs nothing from training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from digitnet.config import ConfigError, check_knobs, coerce_tuples, knob, known_values
from digitnet.data import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS
from digitnet.errors import CheckpointError

ARCHITECTURES = ("mlp", "cnn")


@dataclass(frozen=True)
class ModelConfig:
    """What builds a model: its architecture and sizes. Saved in every checkpoint."""

    architecture: str = knob(
        "mlp", "model: the tutorial's MLP or a small CNN", choices=ARCHITECTURES, flag="--arch"
    )
    hidden_sizes: tuple[int, ...] = knob(
        (512, 512), "MLP hidden layer sizes (units)", low=1, high=4096, flag="--hidden"
    )
    cnn_channels: tuple[int, int] = knob(
        (32, 64), "CNN: channels of its two conv blocks", low=1, high=512, length=2
    )
    cnn_hidden: int = knob(128, "CNN: units of its dense layer", low=1, high=4096)
    dropout: float = knob(
        0.2, "probability of zeroing an activation while training", low=0, high=1, high_open=True
    )

    def __post_init__(self) -> None:
        coerce_tuples(self)
        check_knobs(self)

    def to_dict(self) -> dict:
        values = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """From a checkpoint's ``config``: nested under "model", or flat (digitnet 0.1)."""
        if not isinstance(values, dict):
            raise ConfigError(f"expected a mapping of model settings, got {type(values).__name__}")
        nested = values.get("model")
        return cls(**known_values(cls, nested if isinstance(nested, dict) else values))

    def describe(self) -> str:
        """One line: 'MLP 784-512-512-10, dropout 0.2' or 'CNN channels 32/64, dense 128...'."""
        if self.architecture == "mlp":
            shape = "-".join(str(s) for s in (NUM_PIXELS, *self.hidden_sizes, NUM_CLASSES))
            return f"MLP {shape}, ReLU, dropout {self.dropout}"
        first, second = self.cnn_channels
        return (
            f"CNN, conv channels {first}/{second}, dense {self.cnn_hidden}, dropout {self.dropout}"
        )


class MLP(nn.Module):
    """784 -> hidden... -> 10 with ReLU and dropout; default is the tutorial's 784-512-512-10.

    With two hidden layers the layers are named ``fc1``, ``fc2``, ``fc3`` as in the
    tutorial, so its ``model.pt`` state dict loads as it is.
    """

    def __init__(self, hidden_sizes: tuple[int, ...] = (512, 512), dropout: float = 0.2):
        super().__init__()
        sizes = (NUM_PIXELS, *hidden_sizes, NUM_CLASSES)
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.add_module(f"fc{index}", nn.Linear(fan_in, fan_out))
        self.num_layers = len(sizes) - 1
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], NUM_PIXELS)  # (B, 784)
        for index in range(1, self.num_layers):
            x = self.dropout(torch.relu(getattr(self, f"fc{index}")(x)))
        return getattr(self, f"fc{self.num_layers}")(x)  # (B, 10) logits


class CNN(nn.Module):
    """Two conv blocks and a small head: (B, 1, 28, 28) -> (B, 10).

    conv(32) x2 -> pool -> conv(64) x2 -> pool -> dense(hidden) -> 10, with batch
    norm for fast, stable training from few digits.
    """

    def __init__(
        self, channels: tuple[int, int] = (32, 64), hidden: int = 128, dropout: float = 0.2
    ):
        super().__init__()
        first, second = channels

        def block(fan_in: int, fan_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(fan_in, fan_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(fan_out),
                nn.ReLU(inplace=True),
                nn.Conv2d(fan_out, fan_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(fan_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(1, first), block(first, second))  # (B, C, 7, 7)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(second * 7 * 7, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, IMAGE_SIZE, IMAGE_SIZE)  # (B, 1, 28, 28)
        return self.head(self.features(x))  # (B, 10) logits


def build_model(config: ModelConfig | str = "mlp", **sizes) -> nn.Module:
    """An untrained model from a ModelConfig, or from an architecture name and sizes."""
    if isinstance(config, str):
        config = ModelConfig(architecture=config, **sizes)
    if config.architecture == "mlp":
        return MLP(config.hidden_sizes, config.dropout)
    return CNN(config.cnn_channels, config.cnn_hidden, config.dropout)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_state_dict_strictly(
    model: nn.Module, tensors: dict[str, torch.Tensor], source: str
) -> None:
    """Load or raise one clear line naming what is missing, extra or the wrong shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(
                f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}"
            )
        raise CheckpointError(
            f"{source}: the tensors do not match the model in its config ({'; '.join(parts)})"
        )
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{source}: {name} has shape {tuple(tensor.shape)} but the "
                f"model needs {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors, strict=True)

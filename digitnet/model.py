"""The classifiers: the tutorial's MLP and a small CNN beside it.

Both take (B, 1, 28, 28) or (B, 784) float inputs in [0, 1] and return logits (B, 10).
"""

from __future__ import annotations

import torch
from torch import nn

from digitnet.data import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS

ARCHITECTURES = ("mlp", "cnn")


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


def build_model(
    architecture: str,
    *,
    hidden_sizes: tuple[int, ...] = (512, 512),
    dropout: float = 0.2,
    cnn_channels: tuple[int, int] = (32, 64),
    cnn_hidden: int = 128,
) -> nn.Module:
    """An untrained model of the named architecture."""
    if architecture == "mlp":
        return MLP(tuple(hidden_sizes), dropout)
    if architecture == "cnn":
        return CNN(tuple(cnn_channels), cnn_hidden, dropout)
    raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

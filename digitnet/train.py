"""Training: one config dataclass, batch augmentation, and a loop that reports each epoch."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from digitnet.data import stratified_split
from digitnet.evaluate import loss_and_accuracy
from digitnet.model import ARCHITECTURES, IMAGE_SIZE, build_model

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class TrainConfig:
    """Every knob of a training run. Saved beside the weights, so a checkpoint rebuilds its model.

    The defaults are digitnet's recipe: the tutorial's 784-512-512-10 MLP, trained with
    AdamW, a one-cycle learning rate, label smoothing and augmentation, in well under a
    minute on a 2-core CPU.
    """

    # model
    architecture: str = "mlp"  # "mlp" or "cnn"
    hidden_sizes: tuple[int, ...] = (512, 512)  # MLP hidden layers (units)
    cnn_channels: tuple[int, int] = (32, 64)  # CNN: channels of its two conv blocks
    cnn_hidden: int = 128  # CNN: units of its dense layer
    dropout: float = 0.2  # probability of zeroing an activation while training
    # optimisation
    optimizer: str = "adamw"  # "sgd", "adam" or "adamw"
    lr: float = 3e-3  # peak learning rate
    momentum: float = 0.9  # SGD only
    schedule: str = "onecycle"  # "constant", "cosine" (decay to 0) or "onecycle" (warm up, decay)
    warmup_fraction: float = 0.2  # onecycle: share of the steps spent warming up
    epochs: int = 30  # passes over the training split
    batch_size: int = 128  # digits per step
    weight_decay: float = 5e-4  # decoupled for AdamW, L2 for SGD/Adam
    label_smoothing: float = 0.1  # share of each target spread over the other classes
    shuffle: bool = True  # reshuffle every epoch (the tutorial did not)
    # augmentation, applied to each batch as tensors so the model sees how people draw
    augment: bool = True
    rotate_degrees: float = 12.0  # random rotation within +/- this
    scale_range: float = 0.12  # random zoom within 1 +/- this
    shift_pixels: float = 2.0  # random shift within +/- this, in 28x28 pixels
    shear: float = 0.25  # random horizontal shear within +/- this (tan of the angle)
    thickness_prob: float = 0.3  # chance of making strokes thicker, and the same of thinner
    thickness_max: float = 1.0  # strongest thickening: blend up to fully into a 3x3 dilation
    hard_stroke_prob: float = 0.5  # chance of redrawing with hard-edged strokes, as on a canvas
    # data and run
    val_fraction: float = 0.1  # share of each class held out for validation
    seed: int = 0  # seeds the split, initial weights, shuffling and augmentation
    device: str = "auto"  # "auto", "cpu", "cuda" or "mps"

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self.cnn_channels = tuple(int(c) for c in self.cnn_channels)
        checks = [
            (self.architecture in ARCHITECTURES, "architecture must be mlp or cnn"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
            (0.0 <= self.label_smoothing < 1.0, "label_smoothing must be in [0, 1)"),
            (
                len(self.cnn_channels) == 2
                and min(self.cnn_channels) >= 1
                and self.cnn_hidden >= 1,
                "cnn_channels needs two positive sizes and cnn_hidden a positive size",
            ),
            (
                len(self.hidden_sizes) >= 1 and min(self.hidden_sizes) >= 1,
                "hidden_sizes needs at least one positive size",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def split(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) indices of this run's seeded, stratified split."""
        return stratified_split(labels, self.val_fraction, self.seed)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["hidden_sizes"] = list(self.hidden_sizes)
        values["cnn_channels"] = list(self.cnn_channels)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Rebuild from saved metadata; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def build_model_from_config(config: TrainConfig) -> nn.Module:
    """The untrained model a config describes."""
    return build_model(
        config.architecture,
        hidden_sizes=config.hidden_sizes,
        dropout=config.dropout,
        cnn_channels=config.cnn_channels,
        cnn_hidden=config.cnn_hidden,
    )


def tutorial_config(**overrides) -> TrainConfig:
    """The recipe this project started from: plain SGD, lr 0.01, batch 100, no shuffling."""
    values = dict(
        architecture="mlp",
        hidden_sizes=(512, 512),
        dropout=0.2,
        optimizer="sgd",
        lr=0.01,
        momentum=0.0,
        schedule="constant",
        epochs=100,
        batch_size=100,
        weight_decay=0.0,
        label_smoothing=0.0,
        shuffle=False,
        augment=False,
    )
    values.update(overrides)
    return TrainConfig(**values)


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did; the loop hands one to ``on_epoch`` as each epoch ends."""

    epoch: int  # 1-based
    epochs: int
    train_loss: float  # on the (augmented) batches seen this epoch
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float  # at the end of the epoch
    seconds: float  # wall time of this epoch, validation included

    def split(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) indices of this run's seeded, stratified split."""
        return stratified_split(labels, self.val_fraction, self.seed)

    def to_dict(self) -> dict:
        return asdict(self)

    def log_line(self) -> str:
        val = (
            ""
            if self.val_loss is None
            else f" val_loss {self.val_loss:.4f} val_acc {100 * self.val_accuracy:6.2f}%"
        )
        return (
            f"epoch {self.epoch:>3}/{self.epochs} train_loss {self.train_loss:.4f} "
            f"train_acc {100 * self.train_accuracy:6.2f}%{val} lr {self.lr:.2e} "
            f"{self.seconds:5.1f}s"
        )


@dataclass
class TrainResult:
    model: nn.Module  # holds the best weights (by validation accuracy), in eval mode
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    device: str = "cpu"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps was asked for but is not available; use --device cpu")
    return torch.device(name)


# ---------------------------------------------------------------------------
# Augmentation on batches of tensors


def augment_batch(
    images: torch.Tensor, config: TrainConfig, generator: torch.Generator
) -> torch.Tensor:
    """Random rotation, zoom, shift, shear, stroke thickness and hard canvas-like strokes for
    (B, 1, 28, 28) in [0, 1]."""
    batch = images.shape[0]
    device = images.device

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(batch, generator=generator) * 2 - 1).mul(limit).to(device)

    angle = uniform(math.radians(config.rotate_degrees))
    scale = 1.0 + uniform(config.scale_range)
    shear = uniform(config.shear)
    # affine_grid works in [-1, 1] coordinates: one pixel is 2/28 wide.
    shift_x = uniform(config.shift_pixels * 2 / IMAGE_SIZE)
    shift_y = uniform(config.shift_pixels * 2 / IMAGE_SIZE)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # The grid maps output to input coordinates, so the inverse zoom makes digits scale by `scale`.
    theta = torch.stack(
        [
            torch.stack([cos / scale, (-sin + shear * cos) / scale, shift_x], dim=1),
            torch.stack([sin / scale, (cos + shear * sin) / scale, shift_y], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    if config.thickness_prob > 0:
        choice = torch.rand(batch, generator=generator).to(device)
        thicker = F.max_pool2d(warped, 3, stride=1, padding=1)  # dilation
        thinner = -F.max_pool2d(-warped, 3, stride=1, padding=1)  # erosion
        amount = (torch.rand(batch, generator=generator) * config.thickness_max).to(device)
        amount = amount.view(-1, 1, 1, 1)
        thick_mask = (choice < config.thickness_prob).view(-1, 1, 1, 1)
        thin_mask = (choice > 1 - config.thickness_prob).view(-1, 1, 1, 1)
        # A partial blend: a full 3x3 step would wipe out thin digits or fill small loops.
        warped = torch.where(thick_mask, warped + amount * (thicker - warped), warped)
        warped = torch.where(thin_mask, warped + 0.5 * amount * (thinner - warped), warped)

    if config.hard_stroke_prob > 0:
        # A canvas brush draws hard-edged strokes, which the app's preprocessing shrinks with
        # anti-aliasing. Mimic that: threshold at twice the resolution, maybe widen, shrink back.
        fine = F.interpolate(warped, scale_factor=2, mode="bilinear", align_corners=False)
        threshold = (0.2 + 0.3 * torch.rand(batch, generator=generator)).to(device)
        hard = (fine > threshold.view(-1, 1, 1, 1)).float()  # (B, 1, 56, 56)
        widen = (torch.rand(batch, generator=generator) < 0.5).to(device).view(-1, 1, 1, 1)
        hard = torch.where(widen, F.max_pool2d(hard, 3, stride=1, padding=1), hard)
        hard = F.avg_pool2d(hard, 2)  # (B, 1, 28, 28)
        redraw = torch.rand(batch, generator=generator) < config.hard_stroke_prob
        warped = torch.where(redraw.to(device).view(-1, 1, 1, 1), hard, warped)
    return warped.clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------
# The loop


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _lr_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based)."""
    progress = step / max(1, total_steps)
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    warmup = config.warmup_fraction
    if progress < warmup:  # onecycle: linear warm-up from lr/25, then cosine down to ~0
        return 0.04 + 0.96 * progress / warmup
    return 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup)))


def train_model(
    config: TrainConfig,
    train_inputs: np.ndarray,
    train_labels: np.ndarray,
    val_inputs: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
    progress: bool = False,
    stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a fresh model; return it with the best validation weights and the history.

    ``train_inputs`` are (N, 28, 28) float32 in [0, 1]. ``on_epoch`` receives each
    :class:`EpochReport` as the epoch ends (a UI draws it live); ``stop`` is polled
    between epochs so a UI can end training early and keep what it has.
    """
    start = time.perf_counter()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    if len(train_labels) == 0:
        raise ValueError("no training digits; use more data or a smaller validation fraction")
    model = build_model_from_config(config).to(device)
    optimizer = _make_optimizer(model, config)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    inputs = (
        torch.as_tensor(train_inputs, dtype=torch.float32)
        .reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
        .to(device)
    )
    labels = torch.as_tensor(train_labels, dtype=torch.int64).to(device)
    has_val = val_inputs is not None and val_labels is not None and len(val_labels) > 0
    steps_per_epoch = math.ceil(len(labels) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    result = TrainResult(model=model, device=str(device))
    best_score, best_state = None, None
    step = 0
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = (
            torch.randperm(len(labels), generator=generator).to(device)
            if config.shuffle
            else torch.arange(len(labels), device=device)
        )
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        batches = range(0, len(labels), config.batch_size)
        for offset in tqdm(
            batches,
            desc=f"epoch {epoch}/{config.epochs}",
            leave=False,
            disable=not progress,
            unit="batch",
        ):
            index = order[offset : offset + config.batch_size]
            x, y = inputs[index], labels[index]  # (B, 1, 28, 28), (B,)
            if config.augment:
                x = augment_batch(x, config, generator)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _lr_factor(step, total_steps, config)
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            step += 1
            # Reported loss is plain cross-entropy, comparable with validation's: the
            # smoothed loss the optimiser sees cannot fall below ~0.5 with smoothing 0.1.
            # Summed on the device: a .item() per step would stall a GPU.
            loss_sum += F.cross_entropy(logits.detach(), y, reduction="sum")
            correct += (logits.argmax(dim=1) == y).sum()

        val_loss = val_accuracy = None
        if has_val:
            val_loss, val_accuracy = loss_and_accuracy(model, val_inputs, val_labels)
        report = EpochReport(
            epoch=epoch,
            epochs=config.epochs,
            train_loss=loss_sum.item() / len(labels),
            train_accuracy=correct.item() / len(labels),
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - epoch_start,
        )
        result.history.append(report)
        # Keep the best weights by validation accuracy, ties going to the lower validation
        # loss (800 digits make ties common); without validation, the last epoch's.
        score = (val_accuracy, -val_loss) if has_val else (epoch, 0.0)
        if best_score is None or score > best_score:
            best_score, result.best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(report)
        if stop is not None and stop():
            break

    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result

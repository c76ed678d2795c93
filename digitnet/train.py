"""Training: a config dataclass, batch augmentation, and a loop a UI can drive.

:class:`TrainingRun` is the loop as an iterator of reports (a :class:`StepReport` every
few steps, an :class:`EpochReport` as each epoch ends) that stops within one step when
asked and keeps the best weights so far. :func:`train_model` runs it with callbacks.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from digitnet.config import ConfigError, check_knobs, knob, known_values
from digitnet.data import stratified_split
from digitnet.errors import DataError
from digitnet.evaluate import loss_and_accuracy
from digitnet.model import IMAGE_SIZE, ModelConfig, build_model, load_state_dict_strictly
from digitnet.nondigits import make_nondigits

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
REPORT_EVERY = 10  # steps between StepReports: often enough for a live curve, cheap on a GPU
# Outlier exposure: the loss on non-digits (cross-entropy against the uniform distribution) is
# weighted as in Hendrycks et al. (2019); a non-digit bank larger than this is no better.
NONDIGIT_LOSS_WEIGHT = 0.5
MAX_NONDIGIT_BANK = 20_000


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run, saved beside the weights; ``model`` rebuilds the model.

    The defaults are digitnet's recipe: the tutorial's 784-512-512-10 MLP, trained with
    AdamW, a one-cycle learning rate, label smoothing and augmentation, in well under a
    minute on a 2-core CPU. Each field's help, range and choices are in its metadata.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    # optimisation
    optimizer: str = knob("adamw", "optimizer", choices=OPTIMIZERS)
    lr: float = knob(3e-3, "peak learning rate", low=0, high=10, low_open=True)
    momentum: float = knob(0.9, "SGD momentum", low=0, high=1, high_open=True)
    schedule: str = knob(
        "onecycle",
        "learning-rate schedule: constant, cosine (decay to 0) or onecycle (warm up, decay)",
        choices=SCHEDULES,
    )
    warmup_fraction: float = knob(
        0.2, "onecycle: share of the steps spent warming up", low=0, high=1, high_open=True
    )
    epochs: int = knob(30, "passes over the training split", low=1, high=10_000)
    batch_size: int = knob(128, "digits per step", low=1, high=65_536)
    weight_decay: float = knob(5e-4, "weight decay (decoupled for AdamW, L2 otherwise)", low=0)
    label_smoothing: float = knob(
        0.1, "share of each target spread over the other classes", low=0, high=1, high_open=True
    )
    shuffle: bool = knob(True, "reshuffle every epoch (the tutorial did not)")
    # augmentation, applied to each batch as tensors so the model sees how people draw
    augment: bool = knob(
        True, "augmentation: rotation, zoom, shift, shear, thickness, hard strokes"
    )
    rotate_degrees: float = knob(12.0, "augmentation: rotation within +/- degrees", low=0, high=180)
    scale_range: float = knob(0.12, "augmentation: zoom within 1 +/- this", low=0, high=0.9)
    shift_pixels: float = knob(2.0, "augmentation: shift within +/- pixels", low=0, high=14)
    shear: float = knob(
        0.25, "augmentation: shear within +/- this (tan of the angle)", low=0, high=2
    )
    thickness_prob: float = knob(
        0.3, "augmentation: chance of thicker strokes (and the same of thinner)", low=0, high=0.5
    )
    thickness_max: float = knob(
        1.0, "augmentation: strongest thickening (1 = a full 3x3 dilation)", low=0, high=1
    )
    hard_stroke_prob: float = knob(
        0.5, "augmentation: chance of hard-edged, canvas-like strokes", low=0, high=1
    )
    nondigit_fraction: float = knob(
        0.25,
        "non-digits (letters, shapes, scribbles) added to each batch, per digit, taught to "
        "get no answer, so a drawing that is not a digit can be refused (0 = off)",
        low=0,
        high=1,
    )
    # data and run
    val_fraction: float = knob(
        0.1, "share of each class held out for validation", low=0, high=1, high_open=True
    )
    seed: int = knob(0, "seeds the split, initial weights, order and augmentation", low=0)
    device: str = knob("auto", "where to train", choices=DEVICES)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))
        if not isinstance(self.model, ModelConfig):
            raise ConfigError(f"model must be a ModelConfig, got {type(self.model).__name__}")
        check_knobs(self)

    @classmethod
    def from_knobs(cls, **knobs) -> TrainConfig:
        """Flat knobs, as the CLI and a UI hold them: model fields go into ``model``.

        ``TrainConfig.from_knobs(architecture="cnn", epochs=5)``; unknown names are an error.
        """
        model_names = {f.name for f in dataclasses.fields(ModelConfig)}
        train_names = {f.name for f in dataclasses.fields(cls)} - {"model"}
        unknown = sorted(set(knobs) - model_names - train_names)
        if unknown:
            raise ConfigError(f"unknown setting {', '.join(unknown)}")
        model = ModelConfig(**{k: v for k, v in knobs.items() if k in model_names})
        return cls(model=model, **{k: v for k, v in knobs.items() if k in train_names})

    def knob_values(self) -> dict:
        """The flat knobs of this config (the inverse of :meth:`from_knobs`)."""
        values = self.to_dict()
        return {**values.pop("model"), **values}

    def split(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) indices of this run's seeded, stratified split."""
        return stratified_split(labels, self.val_fraction, self.seed)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["model"] = self.model.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Rebuild from saved metadata, nested or flat (digitnet 0.1); unknown keys are ignored."""
        if not isinstance(values, dict):
            raise ConfigError(f"expected a mapping of settings, got {type(values).__name__}")
        settings = known_values(cls, values)
        settings.pop("model", None)
        return cls(model=ModelConfig.from_dict(values), **settings)

    def replace(self, **knobs) -> TrainConfig:
        """A copy with some flat knobs changed (model fields included)."""
        return TrainConfig.from_knobs(**{**self.knob_values(), **knobs})


def tutorial_config(**overrides) -> TrainConfig:
    """The recipe this project started from: plain SGD, lr 0.01, batch 100, no shuffling.

    ``overrides`` are flat knobs (``epochs=5``, ``hidden_sizes=(64, 64)``).
    """
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
        nondigit_fraction=0.0,
    )
    values.update(overrides)
    return TrainConfig.from_knobs(**values)


@dataclass(frozen=True)
class StepReport:
    """Progress inside an epoch, every few steps: running means over the epoch so far."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based, counted over the whole run
    total_steps: int
    train_loss: float  # mean cross-entropy of this epoch's batches so far
    train_accuracy: float
    lr: float
    seconds: float  # since the run started

    @property
    def progress(self) -> float:
        """Share of the run's steps done, 0-1."""
        return self.step / self.total_steps

    @property
    def eta_seconds(self) -> float:
        """Seconds left at the pace so far (validation time included in the pace)."""
        return self.seconds * (1 - self.progress) / max(self.progress, 1e-9)


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did; a run yields one as each epoch ends, or when it is stopped."""

    epoch: int  # 1-based
    epochs: int
    train_loss: float | None  # on the (augmented) batches seen this epoch; None: no step ran
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    lr: float  # at the end of the epoch
    seconds: float  # wall time of this epoch, validation included
    steps: int = 0  # steps this epoch took
    complete: bool = True  # False when a stop request ended it early

    def to_dict(self) -> dict:
        return asdict(self)

    def log_line(self) -> str:
        train = (
            "train_loss - train_acc -"
            if self.train_loss is None
            else f"train_loss {self.train_loss:.4f} train_acc {100 * self.train_accuracy:6.2f}%"
        )
        val = (
            ""
            if self.val_loss is None
            else f" val_loss {self.val_loss:.4f} val_acc {100 * self.val_accuracy:6.2f}%"
        )
        stopped = "" if self.complete else f" (stopped after {self.steps} steps)"
        return (
            f"epoch {self.epoch:>3}/{self.epochs} {train}{val} lr {self.lr:.2e} "
            f"{self.seconds:5.1f}s{stopped}"
        )


@dataclass
class TrainResult:
    model: nn.Module  # holds the best weights (by validation accuracy), in eval mode
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    stopped: bool = False  # a stop request ended the run before its last epoch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device cuda was asked for but no CUDA GPU is available; use --device cpu"
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device mps was asked for but is not available; use --device cpu")
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


def nondigit_bank_size(config: TrainConfig, digit_count: int) -> int:
    """How many synthetic non-digits a run of ``digit_count`` training digits draws from."""
    return min(MAX_NONDIGIT_BANK, math.ceil(config.nondigit_fraction * digit_count))


def _initial_state(init: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = init.state_dict() if isinstance(init, nn.Module) else init
    return {name: tensor.detach().cpu().clone() for name, tensor in state.items()}


class TrainingRun:
    """One training run as an iterator of reports; a UI iterates it, or calls :meth:`stop`.

    ::

        run = TrainingRun(config, x_train, y_train, x_val, y_val, init=None)
        for report in run:      # StepReport every ``report_every`` steps, EpochReport per epoch
            draw(report)
        result = run.result     # best weights so far, history, seconds

    ``train_inputs`` are (N, 28, 28) float32 in [0, 1]. ``nondigits`` (M, 28, 28), when the
    config's ``nondigit_fraction`` is above 0, are the non-digits mixed into the batches
    (default: :func:`nondigit_bank_size` drawn by :func:`digitnet.nondigits.make_nondigits`
    from the run's seed; a fine-tune adds people's drawings kept as not a digit).
    ``init`` (a model or a state dict of the config's model) starts from given weights
    instead of random ones: fine-tuning.
    :meth:`stop` may be called from any thread; the run ends within one step, validates
    what it has, and keeps the best weights seen.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_inputs: np.ndarray,
        train_labels: np.ndarray,
        val_inputs: np.ndarray | None = None,
        val_labels: np.ndarray | None = None,
        *,
        init: nn.Module | Mapping[str, torch.Tensor] | None = None,
        report_every: int = REPORT_EVERY,
        progress: bool = False,
        stop_when: Callable[[], bool] | None = None,
        nondigits: np.ndarray | None = None,
    ):
        if len(train_labels) == 0:
            raise DataError("no training digits; use more data or a smaller validation fraction")
        self.config = config
        self.device = resolve_device(config.device)
        self.report_every = max(1, int(report_every))
        self.progress = progress
        self._stop = threading.Event()
        self._stop_when = stop_when
        self.result: TrainResult | None = None

        torch.manual_seed(config.seed)  # the initial weights
        self.model = build_model(config.model)
        if init is not None:
            load_state_dict_strictly(
                self.model, _initial_state(init), "the starting weights (init=)"
            )
        self.model.to(self.device)
        self.inputs = (
            torch.as_tensor(train_inputs, dtype=torch.float32)
            .reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
            .to(self.device)
        )
        self.labels = torch.as_tensor(train_labels, dtype=torch.int64).to(self.device)
        self.nondigits = None  # (M, 1, 28, 28): drawings the model learns to give no answer
        if config.nondigit_fraction > 0:
            if nondigits is None:
                bank = nondigit_bank_size(config, len(self.labels))
                nondigits = make_nondigits(bank, seed=config.seed).inputs
            self.nondigits = torch.as_tensor(nondigits, dtype=torch.float32)
            self.nondigits = self.nondigits.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE).to(self.device)
        self._loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.val_inputs, self.val_labels = val_inputs, val_labels
        self.has_val = val_inputs is not None and val_labels is not None and len(val_labels) > 0
        self.steps_per_epoch = math.ceil(len(self.labels) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs

    def stop(self) -> None:
        """Ask the run to end after the step in progress (thread-safe)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`stop` was called or ``stop_when`` said so (polled every step)."""
        if not self._stop.is_set() and self._stop_when is not None and self._stop_when():
            self._stop.set()
        return self._stop.is_set()

    def __iter__(self) -> Iterator[StepReport | EpochReport]:
        config, model = self.config, self.model
        self._start = time.perf_counter()
        self._generator = torch.Generator().manual_seed(config.seed)
        self._optimizer = _make_optimizer(model, config)
        self._step = 0
        result = TrainResult(model=model, device=str(self.device))
        best = _BestWeights()
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            totals = yield from self.train_one_epoch(epoch)
            val_loss = val_accuracy = None
            if self.has_val:
                val_loss, val_accuracy = loss_and_accuracy(model, self.val_inputs, self.val_labels)
            report = EpochReport(
                epoch=epoch,
                epochs=config.epochs,
                train_loss=totals.mean_loss,
                train_accuracy=totals.accuracy,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                lr=self._optimizer.param_groups[0]["lr"],
                seconds=time.perf_counter() - epoch_start,
                steps=totals.steps,
                complete=totals.steps == self.steps_per_epoch,
            )
            result.history.append(report)
            # Without validation the latest weights count as the best.
            best.consider(model, epoch, (val_accuracy, -val_loss) if self.has_val else (epoch, 0.0))
            yield report
            if self.stop_requested:
                result.stopped = epoch < config.epochs or not report.complete
                break

        model.load_state_dict(best.state)
        result.best_epoch = best.epoch
        model.eval()
        result.seconds = time.perf_counter() - self._start
        self.result = result

    def train_one_epoch(self, epoch: int) -> Generator[StepReport, None, _EpochTotals]:
        """One pass over the shuffled training digits, yielding a StepReport every few steps.

        Returns the epoch's totals; ends early, after the step in progress, when a stop is
        requested.
        """
        config, model, device = self.config, self.model, self.device
        model.train()
        order = (
            torch.randperm(len(self.labels), generator=self._generator).to(device)
            if config.shuffle
            else torch.arange(len(self.labels), device=device)
        )
        totals = _EpochTotals(device)
        batches = range(0, len(self.labels), config.batch_size)
        bar = tqdm(
            batches,
            desc=f"epoch {epoch}/{config.epochs}",
            leave=False,
            disable=not self.progress,
            unit="batch",
        )
        for offset in bar:
            if self.stop_requested:
                break
            index = order[offset : offset + config.batch_size]
            logits, y = self._train_step(self.inputs[index], self.labels[index])
            totals.add(logits, y)
            if self._step % self.report_every == 0 or totals.steps == self.steps_per_epoch:
                yield StepReport(
                    epoch=epoch,
                    epochs=config.epochs,
                    step=self._step,
                    total_steps=self.total_steps,
                    train_loss=totals.mean_loss,
                    train_accuracy=totals.accuracy,
                    lr=self._optimizer.param_groups[0]["lr"],
                    seconds=time.perf_counter() - self._start,
                )
        bar.close()
        return totals

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on digits x (B, 1, 28, 28) and labels y (B,); the digits' logits."""
        config, optimizer = self.config, self._optimizer
        digits = len(y)
        if self.nondigits is not None:
            count = max(1, round(config.nondigit_fraction * digits))
            pick = torch.randint(len(self.nondigits), (count,), generator=self._generator)
            x = torch.cat([x, self.nondigits[pick.to(self.device)]])
        if config.augment:
            x = augment_batch(x, config, self._generator)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * _lr_factor(self._step, self.total_steps, config)
        optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = self._loss_fn(logits[:digits], y)
        if digits < len(logits):
            # Outlier exposure: cross-entropy of the non-digits against the uniform distribution.
            outliers = logits[digits:]
            uniform_ce = (torch.logsumexp(outliers, dim=1) - outliers.mean(dim=1)).mean()
            loss = loss + NONDIGIT_LOSS_WEIGHT * uniform_ce
        loss.backward()
        optimizer.step()
        self._step += 1
        return logits[:digits].detach(), y


class _EpochTotals:
    """Loss and accuracy over an epoch's digits, summed on the device: a .item() per step
    would stall a GPU."""

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)
        self.seen = 0
        self.steps = 0

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        # Plain cross-entropy, comparable with validation's: the smoothed loss the optimiser
        # sees cannot fall below ~0.5 with smoothing 0.1.
        self.loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.seen += len(labels)
        self.steps += 1

    @property
    def mean_loss(self) -> float | None:
        return self.loss_sum.item() / self.seen if self.seen else None

    @property
    def accuracy(self) -> float | None:
        return self.correct.item() / self.seen if self.seen else None


class _BestWeights:
    """The weights of the best epoch so far by a score (higher is better)."""

    def __init__(self):
        self.score: tuple | None = None
        self.epoch = 0
        self.state: dict[str, torch.Tensor] | None = None

    def consider(self, model: nn.Module, epoch: int, score: tuple) -> None:
        # Validation accuracy first, ties to the lower validation loss: a few hundred
        # validation digits make ties common.
        if self.score is None or score > self.score:
            self.score, self.epoch = score, epoch
            self.state = copy.deepcopy(model.state_dict())


def train_model(
    config: TrainConfig,
    *data: np.ndarray | None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    stop: Callable[[], bool] | None = None,
    **run_options,
) -> TrainResult:
    """A :class:`TrainingRun` driven to its end with callbacks; returns its result.

    ``data`` and ``run_options`` are TrainingRun's (training inputs and labels, validation
    inputs and labels; ``init``, ``report_every``, ``progress``). ``on_step`` and ``on_epoch``
    receive each report as it happens (a UI draws them live); ``stop`` is polled before every
    step, so a UI can end training within one step and keep the best weights so far.
    """
    run = TrainingRun(config, *data, stop_when=stop, **run_options)
    for report in run:
        callback = on_epoch if isinstance(report, EpochReport) else on_step
        if callback is not None:
            callback(report)
    return run.result

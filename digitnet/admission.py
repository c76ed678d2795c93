"""What a shared server admits: caps on one run's size and work, checked by arithmetic alone.

A visitor's request is refused here, in one line, before any model is built: the parameters
and the multiply-adds of a forward pass are computed from the :class:`ModelConfig`, so a
config of 100,000 layers costs as little to refuse as a small one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from digitnet.data import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS
from digitnet.errors import DigitnetError
from digitnet.model import ModelConfig
from digitnet.train import TrainConfig

# A training step runs the forward pass, then a backward pass that costs about two forward
# passes (gradients for the activations and for the weights).
TRAIN_PASSES = 3
KERNEL = 3 * 3  # the CNN's convolutions are 3x3


class TrainingRefused(DigitnetError):
    """A run this server will not take: over a cap, a full queue, or one already going."""


@dataclass(frozen=True)
class ModelCost:
    """A model's size and the work of one digit through it."""

    parameters: int
    forward_macs: int  # multiply-adds of one digit's forward pass


def model_cost(config: ModelConfig) -> ModelCost:
    """Parameters and forward multiply-adds per digit, from the config's sizes alone."""
    if config.architecture == "mlp":
        sizes = (NUM_PIXELS, *config.hidden_sizes, NUM_CLASSES)
        weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        return ModelCost(weights + sum(sizes[1:]), weights)
    first, second = config.cnn_channels
    hidden = config.cnn_hidden
    half, quarter = (IMAGE_SIZE // 2) ** 2, (IMAGE_SIZE // 4) ** 2  # after each 2x2 pool
    conv_weights = KERNEL * (first + first * first + first * second + second * second)
    dense = second * quarter * hidden + hidden * NUM_CLASSES
    parameters = conv_weights + 4 * (first + second) + dense + hidden + NUM_CLASSES  # 4: 2 BNs
    macs = (
        IMAGE_SIZE**2 * KERNEL * (first + first * first)
        + half * KERNEL * (first * second + second * second)
        + dense
    )
    return ModelCost(parameters, macs)


def parameter_count(config: ModelConfig) -> int:
    """Parameters of the model ``config`` builds, without building it."""
    return model_cost(config).parameters


@dataclass(frozen=True)
class RunCost:
    """The work a run asks for, in multiply-adds."""

    total: float  # every epoch's training and validation, then the drawings measured
    largest_piece: float  # the most the run does between two checks of its clock

    def describe(self) -> str:
        return f"{self.total:.2g} multiply-adds"


def run_cost(config: TrainConfig, train_count: int, val_count: int, drawings: int = 0) -> RunCost:
    """Work of training ``config`` on ``train_count`` digits for its epochs, validating on
    ``val_count`` after each, then measuring ``drawings``."""
    forward = model_cost(config.model).forward_macs
    epoch = (TRAIN_PASSES * train_count + val_count) * forward
    pieces = (
        TRAIN_PASSES * min(config.batch_size, max(train_count, 1)) * forward,  # one step
        val_count * forward,  # validation runs whole, after each epoch
        drawings * forward,
    )
    return RunCost(config.epochs * epoch + drawings * forward, max(pieces))


@dataclass(frozen=True)
class Caps:
    """What one visitor may ask of a shared server, so nobody can hold it. Stated to users.

    The work caps are multiply-adds; one training thread here does about 2e10 a second
    (scripts/train_benchmark.py), so ``max_work`` is about the time cap's worth and
    ``max_piece`` a few seconds: validation and a step cannot be stopped half way.
    """

    max_epochs: int = 100
    max_train_size: int = 10_000  # digits trained on, also when a request leaves it out
    max_seconds: float = 120.0  # the whole run: loading, training, measuring, saving
    max_parameters: int = 2_000_000  # memory: the default MLP has 669,706
    max_layers: int = 8  # MLP hidden layers: each is a step of Python per batch
    max_width: int = 4096  # units of a dense layer
    max_channels: int = 128  # a CNN's conv channels: the work grows with their square
    min_batch_size: int = 8  # tiny batches are mostly per-step overhead
    max_batch_size: int = 512  # memory: a CNN's activations grow with the batch
    min_val_fraction: float = 0.05
    max_val_fraction: float = 0.5  # validation runs whole after every epoch
    max_work: float = 3e12  # multiply-adds of the whole run (the default MLP, 15 epochs: 2e11)
    max_piece: float = 1e11  # multiply-adds of a validation pass or a step
    max_queue: int = 40  # distinct runs waiting at once: a workshop's room and then some

    def describe(self) -> str:
        """One sentence for the page and the README."""
        return (
            f"at most {self.max_epochs} epochs, {self.max_train_size:,} training digits, "
            f"{self.max_seconds:g} s of training, {self.max_parameters:,} parameters and "
            f"batches of {self.max_batch_size} per run, and about {self.max_work:.0e} "
            f"multiply-adds of work; one run per visitor at a time, {self.max_queue} waiting "
            f"at most, and identical runs are trained once and shared"
        )

    def check(
        self,
        config: TrainConfig,
        train_size: int,
        val_size: int | None = None,
        drawings: int = 0,
    ) -> RunCost:
        """The run's cost; a one-line TrainingRefused for the first cap it goes over.

        ``val_size`` None: the validation digits that go with ``train_size`` digits trained on.
        """
        self.check_shape(config, train_size)
        if val_size is None:
            fraction = config.val_fraction
            val_size = math.ceil(train_size * fraction / (1 - fraction))
        return self.check_work(run_cost(config, train_size, val_size, drawings))

    def check_work(self, cost: RunCost) -> RunCost:
        """``cost``, or a one-line TrainingRefused where it is over a work cap."""
        if cost.total > self.max_work:
            raise TrainingRefused(
                f"this run needs about {cost.describe()}, over this server's "
                f"{self.max_work:.0e}; use fewer epochs, fewer digits or a smaller model"
            )
        if cost.largest_piece > self.max_piece:
            raise TrainingRefused(
                f"one step or validation pass of this run needs about "
                f"{cost.largest_piece:.2g} multiply-adds, over this server's "
                f"{self.max_piece:.0e}; use a smaller model, batch or val_fraction"
            )
        return cost

    def check_shape(self, config: TrainConfig, train_size: int) -> None:
        """A one-line TrainingRefused for the first size cap ``config`` goes over."""
        model = config.model
        over = _first_over(
            ("epochs", config.epochs, self.max_epochs, ""),
            ("batch_size", config.batch_size, self.max_batch_size, ""),
            ("train_size", train_size, self.max_train_size, " digits"),
        )
        if model.architecture == "mlp":
            if len(model.hidden_sizes) > self.max_layers:
                raise TrainingRefused(
                    f"hidden_sizes: at most {self.max_layers} layers on this server, "
                    f"got {len(model.hidden_sizes):,}"
                )
            over = over or _first_over(
                ("hidden_sizes", max(model.hidden_sizes), self.max_width, " units a layer")
            )
        else:
            over = over or _first_over(
                ("cnn_channels", max(model.cnn_channels), self.max_channels, " channels"),
                ("cnn_hidden", model.cnn_hidden, self.max_width, " units"),
            )
        if over:
            raise TrainingRefused(over)
        if config.batch_size < self.min_batch_size:
            raise TrainingRefused(
                f"batch_size: at least {self.min_batch_size} on this server, "
                f"got {config.batch_size}"
            )
        if not self.min_val_fraction <= config.val_fraction <= self.max_val_fraction:
            raise TrainingRefused(
                f"val_fraction: from {self.min_val_fraction:g} to {self.max_val_fraction:g} "
                f"on this server, got {config.val_fraction:g}"
            )
        parameters = parameter_count(model)
        if parameters > self.max_parameters:
            raise TrainingRefused(
                f"the model has {parameters:,} parameters, over this server's "
                f"{self.max_parameters:,}; use fewer or smaller layers"
            )


def _first_over(*limits: tuple[str, int, int, str]) -> str:
    """The message for the first (name, value, cap, unit) whose value is over its cap."""
    for name, value, cap, unit in limits:
        if value > cap:
            return f"{name}: at most {cap:,}{unit} on this server, got {value:,}"
    return ""

"""Fine-tuning a model on people's drawings, without forgetting MNIST, measured before and after.

A share of the drawings is held out (seeded, :func:`split_drawings`); the model trains a few
epochs on the rest, oversampled and mixed with the MNIST sample's training split, the base
model's own split, so MNIST's validation digits stay unseen. Before and after, it is measured
on the held-out drawings (with a 95% Wilson interval) and on MNIST validation.

Drawings kept as "not a digit" learn too: they join the batches as outliers with a uniform
target, exactly as ``TrainingRun``'s ``nondigit_fraction`` mixes in synthetic non-digits
(they join its bank of non-digits, ``nondigits=``), so the model learns to refuse them. The
held-out ones measure the refusal: a model is right on a non-digit when it refuses it.

:class:`FinetuneRun` is the run as an iterator of reports a UI streams and can stop, like
``digitnet.train.TrainingRun``; :func:`finetune` runs it in one call. The result is a normal
checkpoint: ``save_checkpoint(out, result.model, result.config, result.metadata)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from digitnet.calibration import calibration_of, set_calibration
from digitnet.checkpoint import ASSETS_DIR, stem_of
from digitnet.config import check_knobs, knob, known_values
from digitnet.data import (
    NUM_CLASSES,
    SAMPLE_DATA,
    Digits,
    fingerprint,
    load_training_data,
    summarize,
)
from digitnet.drawing_data import Accuracy, accuracy_on_drawings, split_by_seed
from digitnet.errors import DigitnetError
from digitnet.nondigits import make_nondigits
from digitnet.predict import predict_logits
from digitnet.preprocess import digits_to_inputs
from digitnet.runs import PreparedData, prepare_data, run_metadata
from digitnet.store import NOT_A_DIGIT, DrawingStore
from digitnet.train import (
    REPORT_EVERY,
    EpochReport,
    StepReport,
    TrainConfig,
    TrainingRun,
    TrainResult,
    nondigit_bank_size,
)

MIN_DRAWINGS = 20  # labelled drawings needed before fine-tuning is worth a try
# Each side of the split needs a few: a model cannot learn from, nor be measured on, two.
MIN_PER_SIDE = 5
# AdamW with a one-cycle rate: the warm-up keeps Adam's first, full-size steps (before its
# moment estimates settle) from knocking a trained model off its minimum.
FINETUNE_OPTIMIZER = "adamw"
FINETUNE_SCHEDULE = "onecycle"


class FinetuneError(DigitnetError):
    """Too few drawings, or settings that cannot fine-tune."""


@dataclass(frozen=True)
class FinetuneConfig:
    """The knobs of a fine-tune; the rest of the recipe is the base model's own config.

    The defaults were chosen with scripts/finetune_benchmark.py (the shipped MLP, the UCI
    digits split into halves, seeds 0-2, a busy 2-core CPU): 3 epochs at lr 1e-3 with
    drawings 25% of each epoch lift the held-out drawings from 85-86% to 98.0-98.3% while
    MNIST validation moves by -0.25 to 0 points, in 14-24 s. Continued training on MNIST
    alone moves it by -0.25 too (the base's epoch was picked on that split). Drawings at
    50% of each epoch cost MNIST up to 0.62 points; lr 3e-4 learns about 1 point less.
    Without augmentation these uniform renders gain ~1 point more, but from only 50
    drawings 0.6-2.8 points less, so augmentation stays on.
    """

    epochs: int = knob(3, "passes over the mix of drawings and MNIST", low=1, high=100)
    lr: float = knob(1e-3, "peak learning rate (AdamW, one-cycle)", low=0, high=1, low_open=True)
    drawing_share: float = knob(
        0.25,
        "share of each epoch's digits that are drawings (repeated as needed); the rest are "
        "MNIST training digits, so the model keeps reading MNIST",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
    )
    augment: bool = knob(True, "augment the mix as the base recipe does (rotation, zoom...)")
    # A quarter: most drawings train, and 100 drawings still leave 25 to measure on (an
    # interval about 30 points wide, which the report shows). The benchmark holds out half.
    held_out_fraction: float = knob(
        0.25,
        "share of the drawings held out to measure on, never trained on",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
        flag="--held-out",
    )
    seed: int = knob(0, "seeds which drawings are held out", low=0)

    def __post_init__(self) -> None:
        check_knobs(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FinetuneConfig:
        return cls(**known_values(cls, values))


# ---------------------------------------------------------------------------
# Which drawings train and which are held out


@dataclass(frozen=True)
class DrawingSplit:
    """Labelled drawings split by seed into a training part and a held-out part.

    Labels are digits 0-9 or NOT_A_DIGIT; both parts hold both kinds."""

    train: Digits
    held_out: Digits
    train_ids: np.ndarray  # the store's row ids (or positions), ascending
    held_out_ids: np.ndarray
    seed: int
    held_out_fraction: float

    @property
    def count(self) -> int:
        return len(self.train) + len(self.held_out)

    @property
    def train_digits(self) -> Digits:
        """The training drawings of digits (those kept as not a digit are outliers)."""
        return self.train.subset(np.flatnonzero(self.train.labels != NOT_A_DIGIT))

    @property
    def train_nondigits(self) -> Digits:
        """The training drawings kept as not a digit."""
        return self.train.subset(np.flatnonzero(self.train.labels == NOT_A_DIGIT))

    @property
    def digits_without_training_drawings(self) -> list[int]:
        """Digits the fine-tune cannot learn anyone's style of: none of them trains."""
        present = np.bincount(self.train_digits.labels, minlength=NUM_CLASSES)
        return [digit for digit in range(NUM_CLASSES) if present[digit] == 0]


def trained_on_drawings(metadata: dict) -> list[int]:
    """The store's row ids a fine-tuned model trained on (none for any other model)."""
    return list(metadata.get("finetune", {}).get("drawings", {}).get("train_ids", []))


def check_enough_drawings(count: int, what: str = "labelled drawings") -> None:
    """Refuse, in one line, fewer than :data:`MIN_DRAWINGS` drawings."""
    if count < MIN_DRAWINGS:
        raise FinetuneError(
            f"only {count} {what}; fine-tuning needs at least {MIN_DRAWINGS} "
            f"(confirm or correct {MIN_DRAWINGS - count} more answers, or import some)"
        )


def split_drawings(
    drawings: Digits,
    ids: np.ndarray | None,
    config: FinetuneConfig,
    trained_before: Iterable[int] = (),
) -> DrawingSplit:
    """Hold out ``config.held_out_fraction`` of ``drawings`` by ``config.seed``.

    ``ids`` are the drawings' row ids in the store, in the same order (None: their
    positions). The same ids and seed give the same split, whatever order they come in
    (:func:`digitnet.drawing_data.split_by_seed`); each part is in ascending id order.
    ``trained_before`` are ids the base model already trained on (a fine-tune of a
    fine-tune): they always train, since measuring on them would flatter it.
    """
    if drawings.labels is None:
        raise FinetuneError(f"{drawings.source}: the drawings have no labels to learn from")
    ids = np.arange(len(drawings)) if ids is None else np.asarray(ids, dtype=np.int64)
    if len(ids) != len(drawings) or len(np.unique(ids)) != len(ids):
        raise FinetuneError(f"{drawings.source}: need one distinct id per drawing")
    check_enough_drawings(len(drawings))
    train_ids, held_out_ids = split_by_seed(ids, config.seed, config.held_out_fraction)
    seen = np.fromiter((int(i) for i in trained_before), dtype=np.int64)
    if len(seen):
        moved = held_out_ids[np.isin(held_out_ids, seen)]
        train_ids = np.sort(np.concatenate([train_ids, moved]))
        held_out_ids = held_out_ids[~np.isin(held_out_ids, seen)]
    smaller = min(len(train_ids), len(held_out_ids))
    if smaller < MIN_PER_SIDE:
        raise FinetuneError(
            f"holding out {config.held_out_fraction:g} of {len(ids)} drawings leaves "
            f"{len(train_ids)} to train on and {len(held_out_ids)} to measure; each side needs "
            f"{MIN_PER_SIDE}: choose a held-out share nearer 0.5 or collect more drawings"
        )
    by_id = np.argsort(ids)
    return DrawingSplit(
        train=drawings.subset(by_id[np.isin(ids[by_id], train_ids)]),
        held_out=drawings.subset(by_id[np.isin(ids[by_id], held_out_ids)]),
        train_ids=train_ids,
        held_out_ids=held_out_ids,
        seed=config.seed,
        held_out_fraction=config.held_out_fraction,
    )


def drawings_from_store(
    store: DrawingStore,
    config: FinetuneConfig,
    *,
    source: str | None = None,
    trained_before: Iterable[int] = (),
) -> DrawingSplit:
    """The store's labelled drawings (all, or of ``source``), split by ``config``; the ids
    in ``trained_before`` (see :func:`split_drawings`) are never held out."""
    ids = store.drawing_ids(source=source)
    from_source = f" from source '{source}'" if source else ""
    check_enough_drawings(len(ids), f"labelled drawings{from_source} in {store.path}")
    digits = store.labelled_digits(source=source, ids=ids)
    if len(digits) != len(ids):  # a row deleted between the two reads
        raise FinetuneError(f"{store.path}: the drawings changed while being read; try again")
    return split_drawings(digits, ids, config, trained_before)


def refuse_shipped_location(out: str | Path) -> None:
    """Refuse to write a fine-tuned model into assets/, where the shipped weights live:
    they are never trained on people's drawings (nor on the UCI digits that stand in)."""
    if ASSETS_DIR.resolve() in stem_of(out).resolve().parents:
        raise FinetuneError(
            f"{out}: assets/ holds the shipped weights, which are never fine-tuned on "
            f"drawings; choose another --out, e.g. runs/mlp-finetuned"
        )


# ---------------------------------------------------------------------------
# Measuring


@dataclass(frozen=True)
class Measurement:
    """A model on the held-out drawings and on MNIST validation."""

    held_out: Accuracy  # digits and non-digits: a digit given, a non-digit refused
    held_out_per_digit: tuple[Accuracy, ...]  # true digits 0-9
    mnist_validation: Accuracy
    mnist_validation_loss: float
    held_out_not_a_digit: Accuracy = Accuracy(0, 0)  # held-out non-digits refused

    def to_dict(self) -> dict:
        return {
            "held_out": self.held_out.to_dict(),
            "held_out_per_digit": [accuracy.to_dict() for accuracy in self.held_out_per_digit],
            "held_out_not_a_digit": self.held_out_not_a_digit.to_dict(),
            "mnist_validation": self.mnist_validation.to_dict(),
            "mnist_validation_loss": self.mnist_validation_loss,
        }


def measure(
    model: nn.Module, held_out: Digits, val_inputs: np.ndarray, val_labels: np.ndarray
) -> Measurement:
    """Accuracy on the held-out drawings (overall, per digit, non-digits refused, under the
    model's calibration) and on MNIST validation (its top digit)."""
    drawings = accuracy_on_drawings({"model": model}, held_out)["model"]
    val_logits = predict_logits(model, val_inputs)
    targets = torch.as_tensor(val_labels, dtype=torch.int64)
    return Measurement(
        held_out=drawings.overall,
        held_out_per_digit=drawings.per_digit,
        held_out_not_a_digit=drawings.not_a_digit,
        mnist_validation=Accuracy(int((val_logits.argmax(dim=1) == targets).sum()), len(targets)),
        mnist_validation_loss=F.cross_entropy(val_logits, targets).item(),
    )


@dataclass(frozen=True)
class FinetuneReport:
    """The model measured: epoch 0 is the base model, before any step; then each epoch's end."""

    epoch: int
    epochs: int
    measurement: Measurement
    training: EpochReport | None  # None for epoch 0

    def log_line(self) -> str:
        held_out, mnist = self.measurement.held_out, self.measurement.mnist_validation
        head = "before" if self.training is None else f"epoch {self.epoch:>3}/{self.epochs}"
        stopped = "" if self.training is None or self.training.complete else " (stopped)"
        seconds = "" if self.training is None else f" {self.training.seconds:5.1f}s"
        refused = self.measurement.held_out_not_a_digit
        refusals = (
            f", non-digits refused {refused.percent()} of {refused.total}" if refused.total else ""
        )
        return (
            f"{head}: held-out drawings {held_out.percent()} of {held_out.total}{refusals}, "
            f"MNIST validation {mnist.percent()} of {mnist.total}{seconds}{stopped}"
        )


@dataclass
class FinetuneResult:
    """The fine-tuned model, how it was made, and its figures before and after."""

    model: nn.Module  # eval mode
    config: TrainConfig  # the config it trained with: save it beside the weights
    settings: FinetuneConfig
    before: Measurement
    after: Measurement
    training: TrainResult
    metadata: dict  # run_metadata(...) with a "finetune" section: pass to save_checkpoint

    @property
    def stopped(self) -> bool:
        return self.training.stopped


# ---------------------------------------------------------------------------
# The run


def finetune_train_config(
    base_metadata: dict, settings: FinetuneConfig, *, nondigits: bool = False
) -> TrainConfig:
    """The base model's own TrainConfig with the fine-tune's knobs in place.

    Its ``seed`` and ``val_fraction`` stay the base's: they define the base's MNIST split,
    which the fine-tune keeps (and a fine-tune of this fine-tune keeps in turn). With
    ``nondigits`` (drawings kept as not a digit to learn from), a base trained without
    outliers gets the default ``nondigit_fraction``, so they have batches to join.
    """
    base = TrainConfig.from_dict(base_metadata.get("config") or {})
    fraction = base.nondigit_fraction
    if nondigits and fraction == 0:
        fraction = TrainConfig.__dataclass_fields__["nondigit_fraction"].default
    return base.replace(
        epochs=settings.epochs,
        lr=settings.lr,
        optimizer=FINETUNE_OPTIMIZER,
        schedule=FINETUNE_SCHEDULE,
        augment=settings.augment,
        nondigit_fraction=fraction,
    )


def mnist_validation_unseen(base_metadata: dict, mnist: PreparedData) -> bool:
    """Whether the base model's metadata shows ``mnist``'s validation split is its own.

    It must have trained on these digits (same fingerprint) and recorded a validation of
    the same size whose mistakes all lie in this split. A model trained on other data, or
    with another split (an older digitnet's), may have trained on these "validation" digits.
    """
    data = base_metadata.get("data") or {}
    prints = {data.get("fingerprint")} | {s.get("fingerprint") for s in data.get("sources") or []}
    if fingerprint(mnist.digits) not in prints:
        return False
    validation = (base_metadata.get("metrics") or {}).get("validation") or {}
    if validation.get("count", len(mnist.val_index)) != len(mnist.val_index):
        return False
    rows = {mistake.get("row") for mistake in validation.get("mistakes") or []} - {None}
    return rows <= set(mnist.val_index.tolist())


def mix_drawings(mnist_count: int, drawing_count: int, drawing_share: float) -> tuple[int, float]:
    """How many times to repeat the drawings so they make ``drawing_share`` of an epoch.

    Returns (repeats, the share they then make). Many drawings are used once each, and
    then make a larger share than asked; MNIST is never cut.
    """
    if drawing_count == 0:
        return 0, 0.0
    wanted = drawing_share / (1 - drawing_share) * mnist_count
    repeats = max(1, round(wanted / drawing_count))
    total = repeats * drawing_count
    return repeats, total / (total + mnist_count)


class FinetuneRun:
    """One fine-tune as an iterator of reports; a UI iterates it, or calls :meth:`stop`.

    ::

        split = drawings_from_store(store, settings)       # refuses too few drawings
        run = FinetuneRun(model, metadata, split, settings, base_name="mlp")
        for report in run:   # FinetuneReport (epoch 0: before), StepReports, FinetuneReport...
            show(report)
        save_checkpoint(out, run.result.model, run.result.config, run.result.metadata)

    ``mnist`` defaults to the shipped sample (``digitnet.data.SAMPLE_DATA``); only its
    training split, by the base model's config, is trained on. The weights kept are the
    last ones (selecting an epoch by either measurement would flatter it).
    """

    def __init__(
        self,
        base_model: nn.Module,
        base_metadata: dict,
        drawings: DrawingSplit,
        settings: FinetuneConfig | None = None,
        *,
        mnist: Digits | None = None,
        base_name: str = "?",
        drawings_source: str | None = None,
        canvas_drawings: int = 0,
        command: str | None = None,
        report_every: int = REPORT_EVERY,
        progress: bool = False,
        stop_when: Callable[[], bool] | None = None,
    ):
        self.settings = settings or FinetuneConfig()
        self.drawings = drawings
        self.base_metadata = base_metadata
        self.base_name = base_name
        self.drawings_source = drawings_source
        self.canvas_drawings = canvas_drawings
        self.command = command
        nondigit_drawings = drawings.train_nondigits
        self.config = finetune_train_config(
            base_metadata, self.settings, nondigits=len(nondigit_drawings) > 0
        )
        check_enough_drawings(drawings.count)
        if len(drawings.train) == 0 or len(drawings.held_out) == 0:
            raise FinetuneError("need drawings both to train on and to hold out")
        if mnist is None:
            mnist = load_training_data(SAMPLE_DATA)
        self.mnist = prepare_data(self.config, digits=mnist)
        if len(self.mnist.val_index) == 0:
            raise FinetuneError(
                f"{mnist.source}: the base config holds out no MNIST validation digits "
                f"(val_fraction {self.config.val_fraction}); nothing to measure forgetting on"
            )
        self.mnist_validation_unseen = mnist_validation_unseen(base_metadata, self.mnist)

        mnist_inputs, mnist_labels = self.mnist.train
        digit_drawings = drawings.train_digits
        drawing_inputs = digits_to_inputs(digit_drawings.images)
        self.repeats, self.drawing_share = mix_drawings(
            len(mnist_labels), len(drawing_inputs), self.settings.drawing_share
        )
        train_inputs = np.concatenate([mnist_inputs, *[drawing_inputs] * self.repeats])
        train_labels = np.concatenate([mnist_labels, *[digit_drawings.labels] * self.repeats])
        # The stored non-digits make the same share of the outliers as the digit drawings
        # do of the digits: repeated among the synthetic non-digits TrainingRun draws from.
        self.nondigit_repeats, self.nondigit_share = mix_drawings(
            nondigit_bank_size(self.config, len(train_labels)),
            len(nondigit_drawings),
            self.settings.drawing_share,
        )
        nondigit_inputs = digits_to_inputs(nondigit_drawings.images)
        bank_size = nondigit_bank_size(self.config, len(train_labels))
        synthetic = make_nondigits(bank_size, seed=self.config.seed).inputs if bank_size else None
        self.training = TrainingRun(
            self.config,
            train_inputs,
            train_labels,
            init=base_model,
            report_every=report_every,
            progress=progress,
            stop_when=stop_when,
            nondigits=np.concatenate([synthetic, *[nondigit_inputs] * self.nondigit_repeats])
            if synthetic is not None
            else None,
        )
        # Until the fine-tune is calibrated anew (at its end), it refuses as its base did.
        set_calibration(self.training.model, calibration_of(base_model))
        self.result: FinetuneResult | None = None

    def stop(self) -> None:
        """Ask the run to end after the step in progress (thread-safe); it keeps what it has."""
        self.training.stop()

    @property
    def total_steps(self) -> int:
        return self.training.total_steps

    def _measure(self, model: nn.Module) -> Measurement:
        return measure(model, self.drawings.held_out, *self.mnist.val)

    def __iter__(self) -> Iterator[FinetuneReport | StepReport]:
        epochs = self.config.epochs
        before = self._measure(self.training.model)
        yield FinetuneReport(0, epochs, before, None)
        history = []
        for report in self.training:
            if isinstance(report, StepReport):
                yield report
                continue
            measured = self._measure(self.training.model)
            # The curves a dashboard draws: MNIST validation, measured, never selected on.
            report = dataclasses.replace(
                report,
                val_loss=measured.mnist_validation_loss,
                val_accuracy=measured.mnist_validation.value,
            )
            history.append(report)
            yield FinetuneReport(report.epoch, epochs, measured, report)
        training = dataclasses.replace(self.training.result, history=history)
        metadata = self._metadata(training)  # fits the fine-tune's own calibration
        after = self._measure(training.model)  # so "after" refuses as the saved model will
        metadata["finetune"] = self._section(before, after)
        self.result = FinetuneResult(
            model=training.model,
            config=self.config,
            settings=self.settings,
            before=before,
            after=after,
            training=training,
            metadata=metadata,
        )

    def _training_data(self) -> PreparedData:
        """MNIST (its split as the base had it) plus the training drawings of digits, once
        each (the non-digits are outliers, counted in the fine-tune's section)."""
        mnist, drawings = self.mnist, self.drawings.train_digits
        digits = Digits(
            np.concatenate([mnist.digits.images, drawings.images]),
            np.concatenate([mnist.digits.labels, drawings.labels]),
            f"{mnist.digits.source} + {drawings.source}",
        )
        drawing_rows = len(mnist.digits) + np.arange(len(drawings))
        return PreparedData(
            digits=digits,
            inputs=np.concatenate([mnist.inputs, digits_to_inputs(drawings.images)]),
            train_index=np.concatenate([mnist.train_index, drawing_rows]),
            val_index=mnist.val_index,
            sources=[*mnist.sources, summarize(drawings)],
        )

    def _metadata(self, training: TrainResult) -> dict:
        """The run's metadata (calibrating the model); the fine-tune's section comes after."""
        return run_metadata(
            training,
            self.config,
            self._training_data(),
            drawings=self.canvas_drawings,
            command=self.command,
        )

    def _section(self, before: Measurement, after: Measurement) -> dict:
        split, base = self.drawings, self.base_metadata
        refusals = {}
        if after.held_out_not_a_digit.total:
            refusals["held_out_not_a_digit"] = round(
                100 * (after.held_out_not_a_digit.value - before.held_out_not_a_digit.value), 2
            )
        return {
            "base_model": self.base_name,
            "base_created": base.get("created"),
            "base_command": base.get("command"),
            "settings": self.settings.to_dict(),
            "drawings": {
                "source": split.train.source,
                "source_filter": self.drawings_source,
                "count": split.count,
                "train_count": len(split.train),
                "held_out_count": len(split.held_out),
                "not_a_digit_train_count": len(split.train_nondigits),
                "not_a_digit_held_out_count": int((split.held_out.labels == NOT_A_DIGIT).sum()),
                "held_out_fraction": split.held_out_fraction,
                "seed": split.seed,
                "digits_without_training_drawings": split.digits_without_training_drawings,
                # So a tab that measures this model on the drawings can leave out the
                # ones it trained on (every other id was never trained on: a base's own
                # training drawings train again, see split_drawings).
                "train_ids": split.train_ids.tolist(),
                "held_out_ids": split.held_out_ids.tolist(),
            },
            "mix": {
                "mnist_train_count": len(self.mnist.train_index),
                "drawing_repeats": self.repeats,
                "drawing_share": round(self.drawing_share, 4),
                "nondigit_fraction": self.config.nondigit_fraction,
                "not_a_digit_repeats": self.nondigit_repeats,
                "not_a_digit_share_of_outliers": round(self.nondigit_share, 4),
            },
            "mnist_validation_unseen_by_base": self.mnist_validation_unseen,
            "kept": "the last weights",
            "before": before.to_dict(),
            "after": after.to_dict(),
            "change_points": {
                "held_out": round(100 * (after.held_out.value - before.held_out.value), 2),
                "mnist_validation": round(
                    100 * (after.mnist_validation.value - before.mnist_validation.value), 2
                ),
                **refusals,
            },
        }


def finetune(
    *args,
    on_report: Callable[[FinetuneReport | StepReport], None] | None = None,
    stop: Callable[[], bool] | None = None,
    **kwargs,
) -> FinetuneResult:
    """:class:`FinetuneRun` in one call, with the same arguments; ``on_report`` gets each
    report, ``stop`` is polled before every step."""
    run = FinetuneRun(*args, stop_when=stop, **kwargs)
    for report in run:
        if on_report is not None:
            on_report(report)
    return run.result

"""A training job's state as a UI follows it, and the run it ends in.

A :class:`Job` is one visitor's request from the queue to a saved run; the training service
(:mod:`digitnet.training_service`) moves it through the states below, and a UI reads it
through :meth:`Job.snapshot`. A :class:`RunRecord` is a finished run, with the summary and
the table row a UI shows.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from digitnet.finetune import DrawingSplit, FinetuneConfig, FinetuneReport
from digitnet.knobs import SERVER_KNOBS, knob_text
from digitnet.train import EpochReport, StepReport, TrainConfig

# Job states, in the order a job goes through them (it may end early in FAILED or CANCELLED).
QUEUED = "queued"
PREPARING = "preparing"  # loading the digits
TRAINING = "training"
MEASURING = "measuring"  # validation report, drawings, saving the checkpoint
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


@dataclass
class RunRecord:
    """A finished run: its model (for drawing against), metadata, and checkpoint on disk."""

    name: str
    session: str
    model: nn.Module | None  # None once evicted: the weights left the disk and memory
    metadata: dict
    config: TrainConfig
    checkpoint: Path  # the stem: .safetensors, .json and .zip beside it
    web_model: Path | None = None  # the browser's copy (export_web), None if not exportable
    created: float = field(default_factory=time.time)

    @property
    def evicted(self) -> bool:
        return self.model is None

    @property
    def download(self) -> Path:
        """A zip of the checkpoint's two files."""
        return self.checkpoint.with_name(self.checkpoint.name + ".zip")

    def summary(self) -> dict:
        """What the API returns when the run ends: plain JSON values."""
        metadata = self.metadata
        metrics = metadata.get("metrics", {})
        history = metadata.get("history", [])
        data = metadata.get("data", {})
        drawings = metrics.get("drawings", {})
        return {
            "run": self.name,
            "state": DONE,
            "val_accuracy": metrics.get("validation", {}).get("accuracy"),
            "drawing_accuracy": drawings.get("accuracy"),
            "drawings": drawings.get("count", 0),
            "seconds": metadata.get("training_seconds"),
            "epochs": len(history),
            "best_epoch": metadata.get("best_epoch"),
            "stopped": metadata.get("stopped", False),
            "stop_reason": metadata.get("stop_reason"),
            "train_size": data.get("train_count"),
            "val_size": data.get("val_count"),
            "parameters": metadata.get("parameters"),
            "model": self.config.model.describe(),
            **finetune_summary(metadata),
            "knobs": {
                name: knob_text(value)
                for name, value in self.config.knob_values().items()
                if name not in SERVER_KNOBS
            },
        }

    def table_row(self) -> dict:
        """One row of a runs table: name, key knobs, accuracies and time."""
        summary = self.summary()
        config = self.config

        def percent(value: float | None) -> float | None:
            return None if value is None else round(100 * value, 2)

        return {
            "run": self.name,
            "model": config.model.describe().split(",")[0],
            "optimizer": f"{config.optimizer} lr {config.lr:g} ({config.schedule})",
            "epochs": f"{summary['epochs']}/{config.epochs}",
            "batch": config.batch_size,
            "augment": "yes" if config.augment else "no",
            "train digits": summary["train_size"],
            "val %": percent(summary["val_accuracy"]),
            "drawings %": percent(summary["drawing_accuracy"]),
            "seconds": summary["seconds"],
            "note": "; ".join(
                note
                for note in (
                    "removed (oldest)" if self.evicted else "",
                    f"fine-tuned {summary['finetune']['base_model']}"
                    if "finetune" in summary
                    else "",
                    "stopped: " + str(summary["stop_reason"])
                    if summary["stopped"] and not self.evicted
                    else "",
                )
                if note
            ),
        }


def finetune_summary(metadata: dict) -> dict:
    """A fine-tuned run's before and after, in percent with 95% intervals ({} for others)."""
    section = metadata.get("finetune")
    if not section:
        return {}

    def percent(measured: dict, what: str) -> float | None:
        value = measured.get(what, {}).get("accuracy")
        return None if value is None else round(100 * value, 2)

    before, after = section.get("before", {}), section.get("after", {})
    drawings = section.get("drawings", {})
    return {
        "finetune": {
            "base_model": section.get("base_model"),
            "train_drawings": drawings.get("train_count"),
            "held_out_drawings": drawings.get("held_out_count"),
            "held_out_before": percent(before, "held_out"),
            "held_out_after": percent(after, "held_out"),
            "mnist_validation_before": percent(before, "mnist_validation"),
            "mnist_validation_after": percent(after, "mnist_validation"),
            "change_points": section.get("change_points"),
        }
    }


RUN_COLUMNS = [  # RunRecord.table_row's keys, in order
    "run",
    "model",
    "optimizer",
    "epochs",
    "batch",
    "augment",
    "train digits",
    "val %",
    "drawings %",
    "seconds",
    "note",
]


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's progress, for a UI to draw."""

    name: str
    state: str
    version: int  # grows with every change; a UI redraws when it moves
    position: int  # runs ahead of this one (0: it is running or done)
    reports: tuple[StepReport | EpochReport, ...]
    stop_reason: str | None
    error: str | None
    record: RunRecord | None
    train_size: int | None  # digits actually trained on, once known
    started: float | None  # time.monotonic() when training began
    measurements: tuple[FinetuneReport, ...] = ()  # a fine-tune's figures (epoch 0: before)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def notes(self) -> list[str]:
        """A fine-tune's measurements so far, one line each."""
        return [report.log_line() for report in self.measurements]

    @property
    def last_step(self) -> StepReport | None:
        return next((r for r in reversed(self.reports) if isinstance(r, StepReport)), None)

    @property
    def epochs(self) -> list[EpochReport]:
        return [r for r in self.reports if isinstance(r, EpochReport)]

    def summary(self) -> dict:
        """The API's progress JSON: the run's summary once done, its progress until then."""
        if self.record is not None:
            return self.record.summary()
        step, epochs = self.last_step, self.epochs
        validated = [e for e in epochs if e.val_accuracy is not None]
        progress = {
            "run": self.name,
            "state": self.state,
            "position": self.position,
            "epoch": step.epoch if step else 0,
            "epochs": step.epochs if step else None,
            "step": step.step if step else 0,
            "total_steps": step.total_steps if step else None,
            "val_accuracy": validated[-1].val_accuracy if validated else None,
            "seconds": round(step.seconds, 2) if step else 0.0,
        }
        if self.stop_reason:
            progress["stop_reason"] = self.stop_reason
        if self.error:
            progress["error"] = self.error
        return progress


class Job:
    """One visitor's training request, from the queue to a saved run."""

    def __init__(
        self,
        session: str,
        name: str,
        config: TrainConfig,
        train_size: int | None,
        finetune: FinetuneRequest | None = None,
    ):
        self.id = uuid.uuid4().hex[:12]
        self.session = session
        self.name = name
        self.config = config
        self.train_size = train_size
        self.finetune = finetune
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._discard = False  # a cancelled job is not saved
        self._state = QUEUED
        self._version = 0
        self._position = 0
        self._reports: list[StepReport | EpochReport] = []
        self._measurements: list[FinetuneReport] = []
        self._stop_reason: str | None = None
        self._error: str | None = None
        self._record: RunRecord | None = None
        self._train_count: int | None = None
        self._started: float | None = None
        self._deadline: float | None = None

    @property
    def state(self) -> str:
        return self._state

    @property
    def finished(self) -> bool:
        return self._state in FINISHED

    @property
    def version(self) -> int:
        return self._version

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                name=self.name,
                state=self._state,
                version=self._version,
                position=self._position,
                reports=tuple(self._reports),
                stop_reason=self._stop_reason,
                error=self._error,
                record=self._record,
                train_size=self._train_count,
                started=self._started,
                measurements=tuple(self._measurements),
            )

    def stop(self, reason: str = "stopped by you") -> None:
        """End training after the step in progress; the best weights so far are kept."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
                self._version += 1
        self._stop.set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop and throw the run away (its visitor has gone)."""
        self._discard = True
        self.stop(reason)

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _should_stop(self) -> bool:
        """Polled by the training loop before every step."""
        if self._stop.is_set():
            return True
        if self._deadline is not None and time.monotonic() > self._deadline:
            self.stop("the server's time cap")
            return True
        return False

    def _update(self, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, "_" + name, value)
            self._version += 1

    def _add(self, report: StepReport | EpochReport) -> None:
        with self._lock:
            self._reports.append(report)
            self._version += 1

    def _measured(self, report: FinetuneReport) -> None:
        with self._lock:
            self._measurements.append(report)
            self._version += 1


@dataclass(frozen=True)
class FinetuneRequest:
    """What a fine-tune job starts from: a model, its metadata, and the drawings, split."""

    base_name: str
    model: nn.Module
    metadata: dict
    drawings: DrawingSplit
    settings: FinetuneConfig

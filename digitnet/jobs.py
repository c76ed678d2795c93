"""A training's state as a UI follows it, and the runs it ends in.

A :class:`Training` is the work: trained once by the service's worker
(:mod:`digitnet.training_service`), which moves it through the states below and adds its
reports. A :class:`Job` is one visitor's request for it, with their own run name; identical
requests of several visitors are jobs of one training. A UI reads a job through
:meth:`Job.snapshot`. A :class:`StoredRun` is a saved run; each session that holds it has a
:class:`RunRecord` of it, with the summary and the table row a UI shows.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from digitnet.finetune import DrawingSplit, FinetuneConfig, FinetuneReport
from digitnet.knobs import (
    DEFAULT_PRESET,
    MIN_TRAIN_SIZE,
    PRESETS,
    SERVER_KNOBS,
    knob_fields,
    knob_help,
    knob_text,
    parse_knobs,
)
from digitnet.train import EpochReport, StepReport, TrainConfig

__all__ = [  # the knobs' names too: the Train tab's modules take them with the job states
    "CANCELLED", "DONE", "FAILED", "FINISHED", "MEASURING", "PREPARING", "QUEUED", "TRAINING",
    "TIME_CAP", "RUN_COLUMNS", "FinetuneRequest", "Job", "JobSnapshot", "RunRecord",
    "StoredRun", "Training", "finetune_summary",
    "DEFAULT_PRESET", "MIN_TRAIN_SIZE", "PRESETS", "knob_fields", "knob_help", "knob_text",
    "parse_knobs",
]  # fmt: skip

# Job states, in the order a job goes through them (it may end early in FAILED or CANCELLED).
QUEUED = "queued"
PREPARING = "preparing"  # loading the digits
TRAINING = "training"
MEASURING = "measuring"  # validation report, drawings, saving the checkpoint
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
TIME_CAP = "the server's time cap"  # the stop reason of a run that reached it
# Redraws a second that all the pages following one training may cost together: each redraw
# of the live curves costs the server ~15 ms of its event loop, and 20 pages redrawing 4 times
# a second left the training thread (at a lower priority) a seventh of a core (room_sim.py).
FOLLOWER_REDRAWS_PER_S = 16


@dataclass(eq=False)
class StoredRun:
    """A saved run: its files, and its model loaded back from them to draw against.

    Identical requests share one; each session that has it holds a :class:`RunRecord` in
    ``records``, and the files go when the last record does.
    """

    key: str  # what was trained (TrainingService.identity); unique for a fine-tune
    model: nn.Module | None  # None once deleted: the weights left the disk and memory
    metadata: dict
    config: TrainConfig
    checkpoint: Path  # the stem: .safetensors, .json and .zip beside it, alone in its folder
    web_model: Path | None = None  # the browser's copy, None if not exportable
    size_bytes: int = 0
    reports: tuple[StepReport | EpochReport, ...] = ()  # its live curves, for those who join
    records: list[RunRecord] = field(default_factory=list)  # the sessions' records of it
    last_used: float = field(default_factory=time.monotonic)

    @property
    def deleted(self) -> bool:
        return self.model is None

    @property
    def folder(self) -> Path:
        return self.checkpoint.parent


@dataclass(eq=False)
class RunRecord:
    """A session's finished run: its own name for a stored run (which it may share)."""

    name: str
    session: str
    stored: StoredRun
    removed: str | None = None  # why the run is gone ("oldest"...); None while it is kept
    created: float = field(default_factory=time.time)

    @property
    def evicted(self) -> bool:
        return self.removed is not None

    @property
    def model(self) -> nn.Module | None:
        """The weights to draw against; None once the run is removed."""
        return None if self.evicted else self.stored.model

    @property
    def metadata(self) -> dict:
        return self.stored.metadata

    @property
    def config(self) -> TrainConfig:
        return self.stored.config

    @property
    def checkpoint(self) -> Path:
        return self.stored.checkpoint

    @property
    def web_model(self) -> Path | None:
        return self.stored.web_model

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
                    f"removed ({self.removed})" if self.evicted else "",
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
    wait_seconds: float | None = None  # while queued: the estimated time until it starts
    sessions: int = 1  # sessions following this training (identical requests share it)

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
            "sessions": self.sessions,
        }
        if self.wait_seconds is not None:
            progress["wait_seconds"] = round(self.wait_seconds)
        if self.stop_reason:
            progress["stop_reason"] = self.stop_reason
        if self.error:
            progress["error"] = self.error
        return progress


class Training:
    """The work behind one or more identical jobs: trained once, followed by each.

    The service's worker moves it through the states and adds its reports; it goes on while
    at least one job follows it.
    """

    def __init__(
        self,
        key: str,
        config: TrainConfig,
        train_size: int | None,
        finetune: FinetuneRequest | None = None,
        *,
        estimate: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.id = uuid.uuid4().hex[:12]
        self.key = key
        self.config = config
        self.train_size = train_size
        self.finetune = finetune
        self.estimate = estimate  # seconds the whole run is expected to take
        self.work = 0.0  # its multiply-adds (digitnet.admission.run_cost)
        self.clock = clock
        self.jobs: list[Job] = []  # the jobs following it, first the one that asked first
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._discard = False  # a cancelled training is not saved
        self._state = QUEUED
        self._version = 0
        self._position = 0
        self._starts_at: float | None = None  # clock() when it is expected to start
        self._picked_at: float | None = None  # clock() when the worker took it
        self._shown_at = -math.inf  # time.monotonic() when a report last moved the version
        self._reports: list[StepReport | EpochReport] = []
        self._measurements: list[FinetuneReport] = []
        self._stop_reason: str | None = None
        self._error: str | None = None
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
    def discarded(self) -> bool:
        return self._discard

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def stop(self, reason: str = "stopped by you") -> None:
        """End training after the step in progress; the best weights so far are kept."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
                self._version += 1
        self._stop.set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop and throw the run away (nobody follows it any more)."""
        self._discard = True
        self.stop(reason)

    def start_clock(self, seconds: float) -> None:
        """The run must end ``seconds`` from now (the server's time cap)."""
        self._deadline = self.clock() + seconds

    def past_deadline(self) -> bool:
        return self._deadline is not None and self.clock() > self._deadline

    def should_stop(self) -> bool:
        """Polled by the training loop before every step."""
        if self._stop.is_set():
            return True
        if self.past_deadline():
            self.stop(TIME_CAP)
            return True
        return False

    def update(self, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, "_" + name, value)
            self._version += 1

    def add(self, report: StepReport | EpochReport) -> None:
        """Add a report; a step report shows (moves the version) only as often as the jobs
        following this training may redraw together, an epoch's end always."""
        with self._lock:
            self._reports.append(report)
            now = time.monotonic()
            spacing = len(self.jobs) / FOLLOWER_REDRAWS_PER_S
            if isinstance(report, EpochReport) or now - self._shown_at >= spacing:
                self._version += 1
                self._shown_at = now

    def measured(self, report: FinetuneReport) -> None:
        with self._lock:
            self._measurements.append(report)
            self._version += 1

    def snapshot(self, name: str) -> JobSnapshot:
        with self._lock:
            waiting = self._state == QUEUED and self._starts_at is not None
            return JobSnapshot(
                name=name,
                state=self._state,
                version=self._version,
                position=self._position,
                reports=tuple(self._reports),
                stop_reason=self._stop_reason,
                error=self._error,
                record=None,
                train_size=self._train_count,
                started=self._started,
                measurements=tuple(self._measurements),
                wait_seconds=max(0.0, self._starts_at - self.clock()) if waiting else None,
                sessions=len(self.jobs),
            )


class Job:
    """One visitor's request, from the queue to a saved run: their view of a :class:`Training`
    (which identical requests of other visitors may share)."""

    def __init__(self, session: str, name: str, training: Training):
        self.session = session
        self.name = name
        self.training = training
        self._lock = threading.Lock()
        self._left: str | None = None  # why this job left its training (it is then cancelled)
        self._record: RunRecord | None = None
        self._version = 0

    @property
    def config(self) -> TrainConfig:
        return self.training.config

    @property
    def state(self) -> str:
        if self._left is not None:
            return CANCELLED
        state = self.training.state
        if state == DONE and self._record is None:
            return CANCELLED  # its training was saved without it
        return state

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def version(self) -> int:
        return self.training._version + self._version

    def snapshot(self) -> JobSnapshot:
        snapshot = self.training.snapshot(self.name)
        with self._lock:
            return dataclasses.replace(
                snapshot,
                state=self.state,
                version=snapshot.version + self._version,
                stop_reason=self._left or snapshot.stop_reason,
                record=self._record,
            )

    def leave(self, reason: str) -> None:
        """This visitor no longer follows the training: the job ends, cancelled."""
        with self._lock:
            self._left = reason
            self._version += 1

    def done(self, record: RunRecord) -> None:
        with self._lock:
            self._record = record
            self._version += 1


@dataclass(frozen=True)
class FinetuneRequest:
    """What a fine-tune job starts from: a model, its metadata, and the drawings, split."""

    base_name: str
    model: nn.Module
    metadata: dict
    drawings: DrawingSplit
    settings: FinetuneConfig

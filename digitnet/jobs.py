"""Training on a shared server: one run at a time, a first-come queue, runs private to a session.

A UI hands :meth:`TrainingService.submit` a visitor's knobs and session key; one worker thread
trains the queued jobs in order (each a :class:`digitnet.train.TrainingRun`), then measures and
saves each run as a checkpoint in ``runs_dir`` and keeps at most ``keep_runs`` of them on disk,
the oldest removed first. A UI follows a :class:`Job` through :meth:`Job.snapshot`.

Nothing happens at import or construction: the worker starts with the first job.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import os
import re
import shutil
import sys
import threading
import time
import typing
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitnet.checkpoint import load_checkpoint, save_checkpoint
from digitnet.config import ConfigError, describe_range, knobs
from digitnet.data import DATA_ENV, SAMPLE_DATA, Digits, load_training_sources
from digitnet.drawings import render_drawings
from digitnet.errors import DigitnetError
from digitnet.export import WEB_SUFFIX, web_bytes
from digitnet.files import write_atomically
from digitnet.finetune import (
    DrawingSplit,
    FinetuneConfig,
    FinetuneReport,
    FinetuneRun,
    finetune_train_config,
)
from digitnet.model import ModelConfig, build_model, count_parameters
from digitnet.predict import predict_probs
from digitnet.preprocess import canvas_to_mnist
from digitnet.runs import PreparedData, prepare_data, run_metadata
from digitnet.train import (
    EpochReport,
    StepReport,
    TrainConfig,
    TrainingRun,
    resolve_device,
    tutorial_config,
)

log = logging.getLogger(__name__)

# Job states, in the order a job goes through them (it may end early in FAILED or CANCELLED).
QUEUED = "queued"
PREPARING = "preparing"  # loading the digits
TRAINING = "training"
MEASURING = "measuring"  # validation report, drawings, saving the checkpoint
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)

SERVER_KNOBS = ("device",)  # where to train is the server's choice, not a visitor's
MIN_TRAIN_SIZE = 10
REPORTS_PER_EPOCH = 5  # step reports per epoch: a live curve moves inside long epochs
DRAWINGS_MEASURED = 200  # canvas-like renders each run is measured on
DRAWING_SPLITS_KEPT = 4  # splits (val_fraction, seed) whose rendered drawings are kept
# The folders this service makes (a job id); eviction touches nothing else in runs_dir.
RUN_FOLDER = re.compile(r"^[0-9a-f]{12}$")


def _preset(config: TrainConfig, **changes) -> dict:
    values = {**config.knob_values(), **changes}
    return {name: value for name, value in values.items() if name not in SERVER_KNOBS}


# Presets a UI offers: flat knobs, as TrainConfig.from_knobs takes them. Measured on the shipped
# 8,000 digits on this 2-core machine, one thread (scripts/train_benchmark.py):
# - "tiny and fast" reaches 95% validation in well under 20 s: one hidden layer, and only the
#   cheap geometric augmentations (hard strokes and thickness cost 75% of an augmented step);
# - "digitnet's recipe" runs 15 of the CLI's 30 epochs, which fits a minute: 97.6% in 44 s,
#   where 20 epochs gave 97.75% in 56 s.
PRESETS: dict[str, dict] = {
    "digitnet's recipe": _preset(TrainConfig(), epochs=15),
    "tiny and fast": _preset(
        TrainConfig(), hidden_sizes=(256,), epochs=10, thickness_prob=0.0, hard_stroke_prob=0.0
    ),
    # The tutorial trained 100 epochs; 20 fit a workshop and still show plain SGD's slow climb.
    "the original tutorial": _preset(tutorial_config(), epochs=20),
}
DEFAULT_PRESET = "digitnet's recipe"


class TrainingRefused(DigitnetError):
    """A run this server will not take: over a cap, a full queue, or one already going."""


@dataclass(frozen=True)
class Caps:
    """What one visitor may ask of a shared server, so nobody can hold it. Stated to users."""

    max_epochs: int = 100
    max_train_size: int = 10_000  # digits trained on
    max_seconds: float = 120.0  # training wall time; at the cap a run stops and keeps its best
    max_parameters: int = 2_000_000  # memory: the default MLP has 669,706
    max_batch_size: int = 512  # memory: a CNN's activations grow with the batch
    max_queue: int = 10  # runs waiting at once

    def describe(self) -> str:
        """One sentence for the page and the README."""
        return (
            f"at most {self.max_epochs} epochs, {self.max_train_size:,} training digits, "
            f"{self.max_seconds:g} s of training, {self.max_parameters:,} parameters and "
            f"batches of {self.max_batch_size} per run; one run per visitor at a time, "
            f"{self.max_queue} waiting at most"
        )

    def check(self, config: TrainConfig, train_size: int) -> None:
        """Raise a one-line TrainingRefused for the first cap ``config`` goes over."""
        if config.epochs > self.max_epochs:
            raise TrainingRefused(
                f"epochs: at most {self.max_epochs} on this server, got {config.epochs}"
            )
        if config.batch_size > self.max_batch_size:
            raise TrainingRefused(
                f"batch_size: at most {self.max_batch_size} on this server, got {config.batch_size}"
            )
        if train_size > self.max_train_size:
            raise TrainingRefused(
                f"train_size: at most {self.max_train_size:,} digits on this server, "
                f"got {train_size:,}"
            )
        parameters = parameter_count(config.model)
        if parameters > self.max_parameters:
            raise TrainingRefused(
                f"the model has {parameters:,} parameters, over this server's "
                f"{self.max_parameters:,}; use fewer or smaller layers"
            )


def parameter_count(config: ModelConfig) -> int:
    """Parameters of the model ``config`` builds, without allocating its weights."""
    with torch.device("meta"):  # shapes only: a visitor's 10 GB model costs nothing to count
        return count_parameters(build_model(config))


# ---------------------------------------------------------------------------
# Knobs as a UI or an API sends them


def knob_fields() -> list[dataclasses.Field]:
    """Every knob a visitor may set, model's first, with its help, range and choices."""
    fields = [*knobs(ModelConfig), *knobs(TrainConfig)]
    return [f for f in fields if f.name not in SERVER_KNOBS]


def _knob_types() -> dict[str, type]:
    return {**typing.get_type_hints(ModelConfig), **typing.get_type_hints(TrainConfig)}


def parse_knobs(values: Mapping[str, object]) -> tuple[TrainConfig, int | None]:
    """A validated config and the training-set size from raw UI or API values.

    Values may be strings ("0.01", "512, 512"), floats for whole numbers (a slider's 10.0),
    or lists for sizes. Anything else, out of range or unknown is a one-line ConfigError.
    ``train_size`` None (or absent) means every training digit.
    """
    values = dict(values)
    train_size = _whole("train_size", values.pop("train_size", None))
    if train_size is not None and train_size < MIN_TRAIN_SIZE:
        raise ConfigError(f"train_size must be at least {MIN_TRAIN_SIZE}, got {train_size}")
    server = sorted(set(values) & set(SERVER_KNOBS))
    if server:
        raise ConfigError(f"{', '.join(server)} is chosen by the server, not per run")
    types = _knob_types()
    settings = {}
    for name, value in values.items():
        if value is None or name not in types:
            settings[name] = value  # unknown names: from_knobs says so in one line
            continue
        settings[name] = _typed(name, value, types[name])
    return TrainConfig.from_knobs(**settings), train_size


def _typed(name: str, value: object, kind: object) -> object:
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if kind is int:
        return _whole(name, value)
    if kind is float:
        return _number(name, value)
    if typing.get_origin(kind) is tuple:
        return _sizes(name, value)
    return value if not isinstance(value, str) else value.strip()


def _number(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return number


def _whole(name: str, value: object) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _number(name, value)
    if number != int(number):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _sizes(name: str, value: object) -> tuple[int, ...]:
    """``"512, 512"``, ``"[64, 64]"``, ``"256"``, ``[64, 64]`` -> a tuple of whole numbers."""
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        parts = [part for part in re.split(r"[,\s]+", text) if part]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    if not parts:
        raise ConfigError(f"{name} needs at least one size, e.g. 512, 512")
    return tuple(_whole(name, part) for part in parts)


def knob_text(value: object) -> object:
    """A knob's value as a UI shows it: sizes as "512, 512", everything else as it is."""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    return value


def knob_help(field: dataclasses.Field) -> str:
    """A field's help with its range, as one line for a UI."""
    meta, bound = field.metadata, describe_range(field)
    if meta["choices"] or not bound:
        return meta["help"]
    if typing.get_origin(_knob_types()[field.name]) is tuple:
        return f"{meta['help']}: comma-separated, each {bound}"
    return f"{meta['help']}, {bound}"


# ---------------------------------------------------------------------------
# Runs and jobs


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


class TrainingService:
    """One trainer per server: a FIFO queue of jobs, one worker thread, private runs.

    ``session`` is any string that identifies a visitor (the app uses Gradio's session
    hash); runs are listed and found only by their own session.

    Drawing must stay responsive while a run trains:
    - ``torch_threads`` is set with ``torch.set_num_threads`` before each run. The setting is
      process-wide, so it also holds for the app's forward passes, which need no more than
      one thread; one training thread leaves the other cores to answer drawings.
    - ``nice`` is the training thread's nice value (Linux keeps one per thread): when the
      cores are busy, the kernel runs the threads that answer requests first.
    """

    def __init__(
        self,
        runs_dir: str | Path = "runs/app",
        *,
        caps: Caps | None = None,
        keep_runs: int = 20,
        data_paths: list[str | Path] | None = None,
        drawings: int = DRAWINGS_MEASURED,
        torch_threads: int | None = 1,
        nice: int = 10,
        device: str = "auto",
    ):
        if keep_runs < 1:
            raise ConfigError(f"keep_runs must be at least 1, got {keep_runs}")
        self.runs_dir = Path(runs_dir)
        self.caps = caps or Caps()
        self.keep_runs = keep_runs
        self.data_paths = list(data_paths or [SAMPLE_DATA])
        self.drawings = drawings
        self.torch_threads = torch_threads
        self.nice = nice
        self.device = device
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._queue: collections.deque[Job] = collections.deque()
        self._current: Job | None = None
        self._runs: dict[str, list[RunRecord]] = {}
        self._counters: dict[tuple[str, str], int] = {}
        self._worker: threading.Thread | None = None
        self._closing = False
        self._data: tuple[Digits, list[dict]] | None = None
        self._drawing_inputs: dict[tuple, np.ndarray] = {}  # by split: (N, 28, 28) float32

    # -- what a UI calls -------------------------------------------------------

    def submit(self, session: str, values: Mapping[str, object]) -> Job:
        """Queue a run of these raw knob values for ``session``; raise one line if refused."""
        config, train_size = parse_knobs(values)
        config = config.replace(device=self.device)
        resolve_device(config.device)  # an unavailable device is refused now, not in the worker
        self.caps.check(config, train_size or 0)
        return self._enqueue(session, "run", config, train_size)

    def submit_finetune(self, session: str, request: FinetuneRequest) -> Job:
        """Queue a fine-tune of ``request.model`` on the drawings (mixed with MNIST) for
        ``session``, in the same queue as runs and under the same caps; its result is a run
        named ``tuned-N``."""
        config = finetune_train_config(request.metadata, request.settings)
        config = config.replace(device=self.device)
        resolve_device(config.device)
        # The MNIST half of the mix is the base's own training split, as any run's; the
        # drawings are what a visitor brings, so they are what the training-size cap counts.
        self.caps.check(config, request.drawings.count)
        return self._enqueue(session, "tuned", config, None, request)

    def _enqueue(
        self,
        session: str,
        kind: str,
        config: TrainConfig,
        train_size: int | None,
        finetune: FinetuneRequest | None = None,
    ) -> Job:
        with self._lock:
            if self._closing:
                raise TrainingRefused("the server is shutting down; try again in a minute")
            if self._active_job(session) is not None:
                raise TrainingRefused(
                    "you already have a run queued or training; wait for it or press Stop"
                )
            if len(self._queue) >= self.caps.max_queue:
                raise TrainingRefused(
                    f"{len(self._queue)} runs are already waiting (the most this server "
                    f"queues); try again in a few minutes"
                )
            key = (session, kind)  # run-1, run-2... and tuned-1, tuned-2... apart
            self._counters[key] = self._counters.get(key, 0) + 1
            name = f"{kind}-{self._counters[key]}"
            job = Job(session, name, config, train_size, finetune)
            self._queue.append(job)
            self._reposition()
            self._start_worker()
            self._wakeup.notify_all()
        return job

    def stop(self, session: str) -> str | None:
        """Stop the session's running job (its best weights are kept), or cancel its queued
        one; return that job's name, or None when there was nothing to stop (a run being
        measured has already stopped training)."""
        with self._lock:
            job = self._active_job(session)
            if job is None or job.state == MEASURING:
                return None
            if job.state == QUEUED:
                self._dequeue(job, "cancelled before it started")
            elif job.state == PREPARING:
                job.cancel("stopped before training began")
            else:
                job.stop()
            return job.name

    def cancel(self, job: Job, reason: str) -> None:
        """Take ``job`` off the queue, or stop it and throw its run away."""
        with self._lock:
            if job in self._queue:
                self._dequeue(job, reason)
            elif not job.finished:
                job.cancel(reason)

    def end_session(self, session: str) -> None:
        """The visitor has gone: cancel their queued or running job and forget their runs.

        Their checkpoints stay on disk until evicted; nothing can reach them any more.
        """
        with self._lock:
            job = self._active_job(session)
            self._runs.pop(session, None)
        if job is not None:
            self.cancel(job, "the session ended")

    def runs(self, session: str) -> list[RunRecord]:
        """The session's finished runs, oldest first (evicted ones included, marked)."""
        with self._lock:
            return list(self._runs.get(session, []))

    def find_run(self, session: str, name: str | None) -> RunRecord | None:
        """The session's run called ``name``, or None."""
        with self._lock:
            return next((r for r in self._runs.get(session, []) if r.name == name), None)

    def active_job(self, session: str) -> Job | None:
        with self._lock:
            return self._active_job(session)

    def start(self) -> None:
        """Start the worker now (it otherwise starts with the first job)."""
        with self._lock:
            self._start_worker()

    def close(self, timeout: float = 30.0) -> None:
        """Cancel every job and end the worker (tests; a server's shutdown)."""
        with self._lock:
            self._closing = True
            for job in list(self._queue):
                self._dequeue(job, "the server is shutting down")
            if self._current is not None:
                self._current.cancel("the server is shutting down")
            self._wakeup.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # -- the worker ------------------------------------------------------------

    def _active_job(self, session: str) -> Job | None:
        current = self._current
        # A finished job may be current for a moment more: it no longer holds its session.
        if current is not None and current.session == session and not current.finished:
            return current
        return next((job for job in self._queue if job.session == session), None)

    def _dequeue(self, job: Job, reason: str) -> None:
        self._queue.remove(job)
        job._discard = True
        job.stop(reason)
        job._update(state=CANCELLED, position=0)
        self._reposition()

    def _reposition(self) -> None:
        ahead = 1 if self._current is not None and not self._current.finished else 0
        for index, job in enumerate(self._queue):
            if job._position != ahead + index:
                job._update(position=ahead + index)

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="digitnet-trainer", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        _lower_priority(self.nice)
        _warm_up()
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._wakeup.wait()
                if self._closing:
                    return
                job = self._queue.popleft()
                self._current = job
                job._update(state=PREPARING, position=0)
                self._reposition()
            try:
                if job.finetune is not None:
                    self._finetune(job)
                else:
                    self._train(job)
            except DigitnetError as error:
                job._update(state=FAILED, error=str(error))
            except Exception as error:  # a bug: log it, tell the visitor, keep serving others
                log.exception("training %s failed", job.name)
                job._update(
                    state=FAILED,
                    error=f"training failed with an internal error ({type(error).__name__}); "
                    f"the server's log has the details",
                )
            finally:
                with self._lock:
                    self._current = None
                    self._reposition()

    def _train(self, job: Job) -> None:
        if self.torch_threads is not None:
            torch.set_num_threads(self.torch_threads)
        data = self._prepare(job.config, job.train_size)
        train_inputs, train_labels = data.train
        steps_per_epoch = -(-len(train_labels) // job.config.batch_size)
        run = TrainingRun(
            job.config,
            train_inputs,
            train_labels,
            *data.val,
            report_every=max(1, steps_per_epoch // REPORTS_PER_EPOCH),
            stop_when=job._should_stop,
        )
        job._deadline = time.monotonic() + self.caps.max_seconds
        job._update(state=TRAINING, train_count=len(train_labels), started=time.monotonic())
        for report in run:
            job._add(report)
        result = run.result
        if job._discard:
            job._update(state=CANCELLED)
            return
        job._update(state=MEASURING)
        metadata = run_metadata(
            result, job.config, data, extra={"run": job.name, "stop_reason": job._stop_reason}
        )
        if self.drawings and len(data.val_index):
            metadata["metrics"]["drawings"] = self._measure_drawings(result.model, job.config, data)
        self._keep(job, result.model, job.config, metadata)

    def _finetune(self, job: Job) -> None:
        if self.torch_threads is not None:
            torch.set_num_threads(self.torch_threads)
        request = job.finetune
        run = FinetuneRun(
            request.model,
            request.metadata,
            request.drawings,
            request.settings,
            mnist=self._digits(),
            base_name=request.base_name,
            command=f"app: fine-tune {request.base_name} on the drawings",
            stop_when=job._should_stop,
        )
        job._deadline = time.monotonic() + self.caps.max_seconds
        trained_on = len(run.training.labels)  # MNIST's training split plus repeated drawings
        job._update(state=TRAINING, train_count=trained_on, started=time.monotonic())
        for report in run:
            if isinstance(report, FinetuneReport):
                job._measured(report)
                if report.training is not None:
                    job._add(report.training)  # validation here is MNIST's, as for any run
            else:
                job._add(report)
        if job._discard:
            job._update(state=CANCELLED)
            return
        job._update(state=MEASURING)
        result = run.result
        metadata = {**result.metadata, "run": job.name, "stop_reason": job._stop_reason}
        if self.drawings and len(run.mnist.val_index):
            metadata["metrics"]["drawings"] = self._measure_drawings(
                result.model, result.config, run.mnist
            )
        self._keep(job, result.model, result.config, metadata)

    def _keep(self, job: Job, model: nn.Module, config: TrainConfig, metadata: dict) -> None:
        """Save a trained model as the session's run: checkpoint, web model and zip."""
        stem = self.runs_dir / job.id / job.name
        weights, meta = save_checkpoint(stem, model, config, metadata)
        # Drawn against as it was saved: a strict reload proves the download works.
        model, saved_metadata = load_checkpoint(stem)
        record = RunRecord(
            job.name,
            job.session,
            model,
            saved_metadata,
            config,
            stem,
            web_model=self._export_web(model, saved_metadata, stem),
        )
        with zipfile.ZipFile(record.download, "w") as archive:  # stored: weights don't shrink
            archive.write(weights, weights.name)
            archive.write(meta, meta.name)
        with self._lock:
            if job._discard:  # the session ended while measuring
                job._update(state=CANCELLED)
                shutil.rmtree(stem.parent, ignore_errors=True)
                return
            self._runs.setdefault(job.session, []).append(record)
        self._evict()
        job._update(state=DONE, record=record)

    @staticmethod
    def _export_web(model: nn.Module, metadata: dict, stem: Path) -> Path | None:
        """The run as a web model beside its checkpoint, so the pad runs it in the browser.

        Named by its content (browsers may cache it for good) and by a random part, so that
        nobody can guess its address from a run's name. None where the model cannot be
        exported: the run then answers from the server, as before.
        """
        try:
            data = web_bytes(model, metadata)
        except DigitnetError as error:
            log.warning("%s answers from the server only: %s", stem.name, error)
            return None
        digest = hashlib.sha256(data).hexdigest()[:16]
        path = stem.with_name(f"{stem.name}-web-{uuid.uuid4().hex[:8]}-{digest}{WEB_SUFFIX}")
        return write_atomically(path, lambda temp: temp.write_bytes(data))

    def _prepare(self, config: TrainConfig, train_size: int | None) -> PreparedData:
        """The digits (loaded once), split by the config; the first ``train_size`` train.

        The validation digits depend only on the split, never on ``train_size``, so runs on
        500 and 7,200 digits are measured on the same digits and compare fairly.
        """
        digits, sources = self._digits(), self._data[1]
        data = prepare_data(config, digits=digits)
        keep = data.train_index if train_size is None else data.train_index[:train_size]
        return dataclasses.replace(data, train_index=keep, sources=sources)

    def _digits(self) -> Digits:
        """The training digits, loaded once (only the worker thread calls this)."""
        if self._data is None:
            self._data = load_training_sources(self.data_paths)
        return self._data[0]

    def _measure_drawings(self, model: nn.Module, config: TrainConfig, data: PreparedData) -> dict:
        """``run_metadata(drawings=N)``'s figure, rendering each split's drawings once.

        The renders depend on the validation digits and the seed, never on the model, and
        rendering 200 takes seconds where reading them takes milliseconds.
        """
        chosen = data.val_index[: self.drawings]
        key = (config.val_fraction, config.seed)
        if key not in self._drawing_inputs:
            if len(self._drawing_inputs) >= DRAWING_SPLITS_KEPT:
                self._drawing_inputs.pop(next(iter(self._drawing_inputs)))
            renders = render_drawings(data.digits.images[chosen], seed=config.seed)
            self._drawing_inputs[key] = np.stack([canvas_to_mnist(r).image for r in renders])
        predicted = predict_probs(model, self._drawing_inputs[key]).argmax(axis=1)
        labels = data.digits.labels[chosen]
        return {
            "count": int(len(chosen)),
            "seed": config.seed,
            "accuracy": float((predicted == labels).mean()),
        }

    def _evict(self) -> None:
        """Keep the newest ``keep_runs`` run folders; remove the rest and their models."""
        if not self.runs_dir.is_dir():
            return
        folders = [
            path
            for path in self.runs_dir.iterdir()
            if path.is_dir() and RUN_FOLDER.match(path.name)
        ]
        folders.sort(key=lambda path: path.stat().st_mtime)
        doomed = folders[: max(0, len(folders) - self.keep_runs)]
        if not doomed:
            return
        gone = {path.resolve() for path in doomed}
        with self._lock:
            for records in self._runs.values():
                for record in records:
                    if record.checkpoint.parent.resolve() in gone:
                        record.model = None  # the weights go from memory with the files
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)


# Environment variables a server reads for its training service, with what each sets.
SETTINGS_ENV = {
    "DIGITNET_RUNS_DIR": "the folder runs are saved in (default runs/app)",
    "DIGITNET_KEEP_RUNS": "how many runs are kept on disk (default 20)",
    "DIGITNET_MAX_EPOCHS": "the epochs cap (default 100)",
    "DIGITNET_MAX_TRAIN_SIZE": "the training digits cap (default 10,000)",
    "DIGITNET_MAX_TRAIN_SECONDS": "the training time cap in seconds (default 120)",
}


def service_from_environ(environ: Mapping[str, str]) -> TrainingService:
    """A service set up by the variables in SETTINGS_ENV, trained on $DIGITNET_DATA or the
    shipped sample. A bad value is a one-line ConfigError naming the variable."""

    def read(name: str, default: float, kind: type = int) -> float:
        text = environ.get(name, "").strip()
        if not text:
            return default
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise ConfigError(f"{name}={text!r}: expected a positive number ({SETTINGS_ENV[name]})")
        return value

    defaults = Caps()
    caps = Caps(
        max_epochs=read("DIGITNET_MAX_EPOCHS", defaults.max_epochs),
        max_train_size=read("DIGITNET_MAX_TRAIN_SIZE", defaults.max_train_size),
        max_seconds=read("DIGITNET_MAX_TRAIN_SECONDS", defaults.max_seconds, float),
    )
    return TrainingService(
        environ.get("DIGITNET_RUNS_DIR") or "runs/app",
        caps=caps,
        keep_runs=read("DIGITNET_KEEP_RUNS", 20),
        data_paths=[environ.get(DATA_ENV) or SAMPLE_DATA],
    )


def _lower_priority(nice: int) -> None:
    """Set the calling thread's nice value to at least ``nice`` (higher is kinder to others).

    Linux keeps a nice value per thread; elsewhere this does nothing, since the call would
    lower the whole server's priority.
    """
    if nice and sys.platform.startswith("linux"):
        thread = threading.get_native_id()
        try:
            os.setpriority(
                os.PRIO_PROCESS, thread, max(nice, os.getpriority(os.PRIO_PROCESS, thread))
            )
        except OSError as error:  # a container may forbid it; training still works
            log.warning("could not lower the training thread's priority: %s", error)


def _warm_up() -> None:
    """Import what the first optimiser step needs (torch's compiler, ~3 s) before any run, so
    that the first visitor's clock does not pay for it."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])

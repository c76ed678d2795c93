"""Training on a shared server: one run at a time, a first-come queue, runs private to a session.

A UI hands :meth:`TrainingService.submit` a visitor's knobs and session key; one worker thread
trains the queued jobs in order (each a :class:`digitnet.train.TrainingRun`), then measures and
saves each run as a checkpoint in ``runs_dir`` and keeps at most ``keep_runs`` of them on disk,
the oldest removed first. A UI follows a :class:`~digitnet.jobs.Job` through its snapshots.

Nothing happens at import or construction: the worker starts with the first job.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitnet.checkpoint import load_checkpoint, save_checkpoint
from digitnet.config import ConfigError
from digitnet.data import DATA_ENV, SAMPLE_DATA, Digits, load_training_sources
from digitnet.errors import DigitnetError
from digitnet.evaluate import drawing_accuracy, drawing_inputs
from digitnet.export import web_bytes, write_web_file
from digitnet.finetune import FinetuneReport, FinetuneRun, finetune_train_config
from digitnet.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    MEASURING,
    PREPARING,
    QUEUED,
    TRAINING,
    FinetuneRequest,
    Job,
    RunRecord,
)
from digitnet.knobs import parse_knobs
from digitnet.model import ModelConfig, build_model, count_parameters
from digitnet.runs import PreparedData, prepare_data, run_metadata
from digitnet.train import TrainConfig, TrainingRun, resolve_device

log = logging.getLogger(__name__)

REPORTS_PER_EPOCH = 5  # step reports per epoch: a live curve moves inside long epochs
DRAWINGS_MEASURED = 200  # canvas-like renders each run is measured on
DRAWING_SPLITS_KEPT = 4  # splits (val_fraction, seed) whose rendered drawings are kept
# The folders this service makes (a job id); eviction touches nothing else in runs_dir.
RUN_FOLDER = re.compile(r"^[0-9a-f]{12}$")


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
        self._save_run(job, result.model, job.config, metadata)

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
        self._save_run(job, result.model, result.config, metadata)

    def _save_run(self, job: Job, model: nn.Module, config: TrainConfig, metadata: dict) -> None:
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

        A random part in its name keeps anyone from guessing its address from a run's name.
        None where the model cannot be exported: the run then answers from the server.
        """
        try:
            data = web_bytes(model, metadata)
        except DigitnetError as error:
            log.warning("%s answers from the server only: %s", stem.name, error)
            return None
        return write_web_file(data, stem.parent, f"{stem.name}-web-{uuid.uuid4().hex[:8]}")

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
        """``evaluate_drawings``' figure on the first validation digits, keeping each split's
        renders: they depend on the digits and the seed, never on the model."""
        chosen = data.val_index[: self.drawings]
        key = (config.val_fraction, config.seed)
        if key not in self._drawing_inputs:
            if len(self._drawing_inputs) >= DRAWING_SPLITS_KEPT:
                self._drawing_inputs.pop(next(iter(self._drawing_inputs)))
            self._drawing_inputs[key] = drawing_inputs(data.digits.images[chosen], config.seed)
        return drawing_accuracy(
            model, self._drawing_inputs[key], data.digits.labels[chosen], config.seed
        )

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

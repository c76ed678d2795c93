"""Training on a shared server: a first-come queue, one worker, runs that belong to sessions.

A UI hands :meth:`TrainingService.submit` a visitor's knobs and session key. Admission
(:mod:`digitnet.admission`) refuses what is over a cap before anything is built. A request
identical to a run in progress joins it; one identical to a finished run gets it at once;
anything else waits in the queue, one per session. One worker thread trains the queued runs
in order (each a :class:`digitnet.train.TrainingRun`) under a time cap covering the whole
run, then measures and saves each as a checkpoint in ``runs_dir``;
:class:`digitnet.session_runs.SessionRuns` keeps them per session within the disk's caps.

Nothing happens at import or construction: the worker starts with the first job.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitnet.admission import Caps, RunCost, TrainingRefused, run_cost
from digitnet.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from digitnet.config import ConfigError
from digitnet.data import SAMPLE_DATA, Digits, load_training_sources
from digitnet.errors import DigitnetError
from digitnet.evaluate import drawing_accuracy, drawing_inputs
from digitnet.export import export_beside
from digitnet.finetune import FinetuneReport, FinetuneRun, finetune_train_config
from digitnet.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    MEASURING,
    PREPARING,
    QUEUED,
    TIME_CAP,
    TRAINING,
    FinetuneRequest,
    Job,
    RunRecord,
    StoredRun,
    Training,
)
from digitnet.knobs import parse_knobs
from digitnet.nondigits import make_nondigits
from digitnet.runs import CALIBRATION_NONDIGITS, PreparedData, prepare_data, run_metadata
from digitnet.session_runs import SessionRuns
from digitnet.train import TrainConfig, TrainingRun, resolve_device

__all__ = ["Caps", "TrainingRefused", "TrainingService"]

log = logging.getLogger(__name__)

REPORTS_PER_EPOCH = 5  # step reports per epoch: a live curve moves inside long epochs
DRAWINGS_MEASURED = 200  # canvas-like renders each run is measured on
# What a run's identity covers besides its config and data: bump it when the same config
# and data would train or save a different run, so no stale run is handed out as identical.
RUN_FORMAT_VERSION = 2  # 2: runs see non-digits (one shared bank) and are calibrated
# Every run of a server draws its non-digits from one bank, drawn once (~3 ms each): a bank
# per seed would cost each run seconds before its first step.
SHARED_NONDIGITS = {"count": 2_000, "seed": 0, "split": "train"}
CALIBRATION_DRAWINGS = 400  # renders of validation digits a run's calibration is fitted on
# Multiply-adds a second one training thread does, for queue estimates until a run is
# measured (the default MLP on this 2-core machine: about 2e10 without augmentation).
FIRST_THROUGHPUT = 1e10
RUN_OVERHEAD_S = 2.0  # loading, measuring and saving, for the same estimates


def shared_nondigits() -> np.ndarray:
    """The server's bank of non-digits (made once per process, then kept)."""
    return make_nondigits(**SHARED_NONDIGITS).inputs


class TrainingService:
    """One trainer per server: a FIFO queue, one worker thread, runs kept per session.

    ``session`` is any string that identifies a visitor (the app uses Gradio's session
    hash); runs are listed and found only by their own session. ``keep_runs`` is each
    session's quota; ``max_stored_runs`` and ``max_disk_mb`` cap the disk across sessions.

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
        keep_runs: int = 5,
        max_stored_runs: int = 100,
        max_disk_mb: float = 2000,
        data_paths: list[str | Path] | None = None,
        drawings: int = DRAWINGS_MEASURED,
        torch_threads: int | None = 1,
        nice: int = 10,
        device: str = "auto",
        clock: Callable[[], float] = time.monotonic,
    ):
        if keep_runs < 1:
            raise ConfigError(f"keep_runs must be at least 1, got {keep_runs}")
        self.runs_dir = Path(runs_dir)
        self.caps = caps or Caps()
        self.session_runs = SessionRuns(
            self.runs_dir,
            keep_runs=keep_runs,
            max_stored=max_stored_runs,
            max_bytes=int(max_disk_mb * 1e6),
            clock=clock,
        )
        self.data_paths = list(data_paths or [SAMPLE_DATA])
        self.drawings = drawings
        self.torch_threads = torch_threads
        self.nice = nice
        self.device = device
        self.clock = clock
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._queue: collections.deque[Training] = collections.deque()
        self._current: Training | None = None
        self._active: dict[str, Job] = {}  # each session's queued or running job
        self._counters: dict[tuple[str, str], int] = {}
        self._worker: threading.Thread | None = None
        self._closing = False
        self._data: tuple[Digits, list[dict]] | None = None
        self._data_print = _files_fingerprint(self.data_paths)
        self._throughput = FIRST_THROUGHPUT
        # Set once the worker has warmed up and loaded the digits: from then on a run starts
        # at once. A room simulation waits for it, as a room arrives after the server is up.
        self.ready = threading.Event()

    @property
    def keep_runs(self) -> int:
        """How many runs each session keeps."""
        return self.session_runs.keep_runs

    # -- what a UI calls -------------------------------------------------------

    def submit(self, session: str, values: Mapping[str, object]) -> Job:
        """Queue a run of these raw knob values for ``session``, or join or hand over an
        identical one; raise one line if refused. Builds nothing: a refusal costs nothing."""
        config, train_size = parse_knobs(values)
        train_count, val_count = self._split_sizes(config, train_size)
        self.caps.check_shape(config, train_count if train_size is None else train_size)
        cost = self.caps.check_work(run_cost(config, train_count, val_count, self.drawings))
        config = config.replace(device=self.device)
        resolve_device(config.device)  # an unavailable device is refused now, not in the worker
        key = self.identity(config, train_size)
        return self._enqueue(session, "run", config, train_size, cost, key)

    def submit_finetune(self, session: str, request: FinetuneRequest) -> Job:
        """Queue a fine-tune of ``request.model`` on the drawings (mixed with MNIST) for
        ``session``, in the same queue as runs and under the same caps; its result is a run
        named ``tuned-N``."""
        config = finetune_train_config(request.metadata, request.settings)
        # The MNIST half of the mix is the base's own training split, as any run's; the
        # drawings are what a visitor brings, so they are what the training-size cap counts.
        self.caps.check_shape(config, request.drawings.count)
        mnist_train, val_count = self._split_sizes(config, None)
        trained_on = mnist_train + request.drawings.count
        cost = self.caps.check_work(run_cost(config, trained_on, val_count, self.drawings))
        config = config.replace(device=self.device)
        resolve_device(config.device)
        key = f"finetune-{uuid.uuid4().hex}"  # never identical: the drawings change
        return self._enqueue(session, "tuned", config, None, cost, key, request)

    def identity(self, config: TrainConfig, train_size: int | None) -> str:
        """What makes two runs the same run: config, digits trained on, data, format."""
        what = {
            "config": config.to_dict(),
            "train_size": self.caps.max_train_size if train_size is None else train_size,
            "data": self._data_print,
            "drawings": self.drawings,
            "format": [RUN_FORMAT_VERSION, FORMAT_VERSION],
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()

    def stop(self, session: str) -> str | None:
        """Stop the session's running job (its best weights are kept), or cancel its queued
        one; return that job's name, or None when there was nothing to stop (a run being
        measured has already stopped training). A run other sessions share goes on for
        them: this session leaves it."""
        with self._lock:
            job = self._active_job(session)
            if job is None or job.state == MEASURING:
                return None
            training = job.training
            if len(training.jobs) > 1:
                self._leave(job, "stopped by you; it goes on for the others training it")
            elif job.state == QUEUED:
                self._dequeue(training, "cancelled before it started")
            elif job.state == PREPARING:
                training.cancel("stopped before training began")
            else:
                training.stop()
            return job.name

    def cancel(self, job: Job, reason: str) -> None:
        """``job``'s visitor has gone: it leaves its training, which ends if nobody is left."""
        with self._lock:
            if not job.finished:
                self._leave(job, reason)

    def end_session(self, session: str) -> None:
        """The visitor has gone: cancel their queued or running job and forget their runs.

        Their runs stay on disk until the disk needs room; nothing can reach them any more.
        """
        with self._lock:
            job = self._active_job(session)
        if job is not None:
            self.cancel(job, "the session ended")
        self.session_runs.end_session(session)
        self.session_runs.free_disk()  # its runs are the first to go if the disk is over its caps

    def runs(self, session: str) -> list[RunRecord]:
        """The session's finished runs, oldest first (removed ones included, marked)."""
        return self.session_runs.runs(session)

    def find_run(self, session: str, name: str | None) -> RunRecord | None:
        """The session's run called ``name``, or None."""
        return self.session_runs.find(session, name)

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
            for training in list(self._queue):
                self._dequeue(training, "the server is shutting down")
            if self._current is not None:
                self._current.cancel("the server is shutting down")
            self._wakeup.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # -- the queue ---------------------------------------------------------------

    def _split_sizes(self, config: TrainConfig, train_size: int | None) -> tuple[int, int]:
        """Digits a run trains and validates on: exact once the data is loaded, an upper
        estimate before. Left out, ``train_size`` is the server's most."""
        wanted = self.caps.max_train_size if train_size is None else train_size
        fraction = config.val_fraction
        if self._data is None:
            return wanted, math.ceil(wanted * fraction / (1 - fraction))
        total = len(self._data[0].labels)
        val_count = math.ceil(total * fraction)
        return min(wanted, total - val_count), val_count

    def _enqueue(
        self,
        session: str,
        kind: str,
        config: TrainConfig,
        train_size: int | None,
        cost: RunCost,
        key: str,
        finetune: FinetuneRequest | None = None,
    ) -> Job:
        with self._lock:
            if self._closing:
                raise TrainingRefused("the server is shutting down; try again in a minute")
            if self._active_job(session) is not None:
                raise TrainingRefused(
                    "you already have a run queued or training; wait for it or press Stop"
                )
            training = self._training_of(key)
            stored = self.session_runs.stored(key) if training is None else None
            if training is None and stored is None and len(self._queue) >= self.caps.max_queue:
                raise TrainingRefused(
                    f"{len(self._queue)} runs are already waiting (the most this server "
                    f"queues); try again in a few minutes"
                )
            counter = (session, kind)  # run-1, run-2... and tuned-1, tuned-2... apart
            self._counters[counter] = self._counters.get(counter, 0) + 1
            name = f"{kind}-{self._counters[counter]}"
            if stored is not None:
                return self._handed_over(session, name, stored)
            if training is None:
                estimate = cost.total / self._throughput + RUN_OVERHEAD_S
                training = Training(key, config, train_size, finetune, clock=self.clock)
                training.work, training.estimate = cost.total, estimate
                self._queue.append(training)
            job = Job(session, name, training)
            training.jobs.append(job)
            self._active[session] = job
            self._reposition()
            self._start_worker()
            self._wakeup.notify_all()
        return job

    def _training_of(self, key: str) -> Training | None:
        """The queued or running training of ``key`` that a new job may join."""
        for training in (self._current, *self._queue):
            if (
                training is not None
                and training.key == key
                and not training.finished
                and not training.discarded
                and training.stop_reason is None
            ):
                return training
        return None

    def _handed_over(self, session: str, name: str, stored: StoredRun) -> Job:
        """A job that is done at once: ``session``'s own record of a run already trained."""
        training = Training(stored.key, stored.config, None, clock=self.clock)
        job = Job(session, name, training)
        job.done(self.session_runs.add(session, name, stored))
        data = stored.metadata.get("data", {})
        training.update(
            state=DONE, reports=list(stored.reports), train_count=data.get("train_count")
        )
        return job

    def _active_job(self, session: str) -> Job | None:
        job = self._active.get(session)
        if job is not None and job.finished:
            del self._active[session]
            return None
        return job

    def _leave(self, job: Job, reason: str) -> None:
        training = job.training
        job.leave(reason)
        if job in training.jobs:
            training.jobs.remove(job)
        if self._active.get(job.session) is job:
            del self._active[job.session]
        if not training.jobs and not training.finished:
            if training in self._queue:
                self._dequeue(training, reason)
            else:
                training.cancel(reason)
        self._reposition()

    def _dequeue(self, training: Training, reason: str) -> None:
        self._queue.remove(training)
        training.cancel(reason)
        training.update(state=CANCELLED, position=0)
        self._reposition()

    def _reposition(self) -> None:
        """Each queued training's place and expected start, from the estimates ahead."""
        now = self.clock()
        current = self._current
        ahead = 0 if current is None or current.finished else 1
        wait = 0.0
        if ahead:
            wait = max(0.0, current.estimate - (now - (current._picked_at or now)))
        for index, training in enumerate(self._queue):
            if training._position != ahead + index or training._starts_at is None:
                training.update(position=ahead + index, starts_at=now + wait)
            wait += training.estimate

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="digitnet-trainer", daemon=True)
            self._worker.start()

    # -- the worker ------------------------------------------------------------

    def _work(self) -> None:
        _lower_priority(self.nice)
        _warm_up()
        try:
            self._digits()  # admission's sizes are exact from now on
            self._render_default_split()
        except DigitnetError as error:
            log.warning("could not load the training digits: %s", error)
        self.ready.set()
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._wakeup.wait()
                if self._closing:
                    return
                training = self._queue.popleft()
                self._current = training
                training._picked_at = self.clock()
                training.start_clock(self.caps.max_seconds)
                training.update(state=PREPARING, position=0)
                self._reposition()
            self._run(training)

    def _run(self, training: Training) -> None:
        began = time.monotonic()
        try:
            if self.torch_threads is not None:
                torch.set_num_threads(self.torch_threads)
            if training.finetune is not None:
                self._finetune(training)
            else:
                self._train(training)
        except DigitnetError as error:
            training.update(state=FAILED, error=str(error))
        except Exception as error:  # a bug: log it, tell the visitor, keep serving others
            log.exception("training %s failed", training.id)
            training.update(
                state=FAILED,
                error=f"training failed with an internal error ({type(error).__name__}); "
                f"the server's log has the details",
            )
        finally:
            seconds = time.monotonic() - began
            if training.state == DONE and training.stop_reason is None:
                measured = training.work / max(seconds - RUN_OVERHEAD_S, 0.5)
                self._throughput = 0.5 * self._throughput + 0.5 * max(measured, 1e8)
            with self._lock:
                self._current = None
                self._reposition()

    def _train(self, training: Training) -> None:
        config = training.config
        data = self._prepare(config, training.train_size)
        train_inputs, train_labels = data.train
        steps_per_epoch = -(-len(train_labels) // config.batch_size)
        run = TrainingRun(
            config,
            train_inputs,
            train_labels,
            *data.val,
            report_every=max(1, steps_per_epoch // REPORTS_PER_EPOCH),
            stop_when=training.should_stop,
            nondigits=shared_nondigits() if config.nondigit_fraction > 0 else None,
        )
        training.update(state=TRAINING, train_count=len(train_labels), started=time.monotonic())
        for report in run:
            training.add(report)
        result = run.result
        if training.discarded:
            training.update(state=CANCELLED)
            return
        training.update(state=MEASURING)
        metadata = run_metadata(
            result,
            config,
            data,
            extra={"run": self._file_name(training), "nondigits": SHARED_NONDIGITS},
            calibration_drawings=CALIBRATION_DRAWINGS,
        )
        metadata = self._measured(training, metadata, result.model, config, data)
        self._save_run(training, result.model, config, metadata)

    def _finetune(self, training: Training) -> None:
        request = training.finetune
        run = FinetuneRun(
            request.model,
            request.metadata,
            request.drawings,
            request.settings,
            mnist=self._digits(),
            base_name=request.base_name,
            command=f"app: fine-tune {request.base_name} on the drawings",
            stop_when=training.should_stop,
        )
        trained_on = len(run.training.labels)  # MNIST's training split plus repeated drawings
        training.update(state=TRAINING, train_count=trained_on, started=time.monotonic())
        for report in run:
            if isinstance(report, FinetuneReport):
                training.measured(report)
                if report.training is not None:
                    training.add(report.training)  # validation here is MNIST's, as for any run
            else:
                training.add(report)
        if training.discarded:
            training.update(state=CANCELLED)
            return
        training.update(state=MEASURING)
        result = run.result
        metadata = {**result.metadata, "run": self._file_name(training)}
        metadata = self._measured(training, metadata, result.model, result.config, run.mnist)
        self._save_run(training, result.model, result.config, metadata)

    def _measured(
        self,
        training: Training,
        metadata: dict,
        model: nn.Module,
        config: TrainConfig,
        data: PreparedData,
    ) -> dict:
        """``metadata`` with the drawings measured (unless past the time cap) and the reason
        the run stopped early, if it did."""
        if self.drawings and len(data.val_index) and not self._out_of_time(training, "drawing"):
            metadata["metrics"]["drawings"] = self._measure_drawings(model, config, data)
        metadata["stop_reason"] = training.stop_reason
        return metadata

    @staticmethod
    def _file_name(training: Training) -> str:
        """The run's files are named after the first job following it (run-1.safetensors)."""
        jobs = list(training.jobs)
        return jobs[0].name if jobs else "run"

    @staticmethod
    def _out_of_time(training: Training, what: str) -> bool:
        """Past the time cap: the run is saved as it is, without ``what``."""
        if not training.past_deadline():
            return False
        training.stop(TIME_CAP)
        log.info("%s: past the time cap, saved without its %s", training.id, what)
        return True

    def _save_run(
        self, training: Training, model: nn.Module, config: TrainConfig, metadata: dict
    ) -> None:
        """Save a trained model as every following session's run: checkpoint, web model, zip."""
        stem = self.runs_dir / training.id / metadata["run"]
        weights, meta = save_checkpoint(stem, model, config, metadata)
        # Drawn against as it was saved: a strict reload proves the download works.
        model, saved_metadata = load_checkpoint(stem)
        web = None
        if not self._out_of_time(training, "web model"):
            web = export_beside(model, saved_metadata, stem)
        with zipfile.ZipFile(stem.with_name(stem.name + ".zip"), "w") as archive:
            archive.write(weights, weights.name)  # stored: weights don't shrink
            archive.write(meta, meta.name)
        key = training.key
        if training.stop_reason not in (None, TIME_CAP):  # stopped early: not what others ask
            key = f"{key}-stopped-{training.id}"
        stored = StoredRun(
            key,
            model,
            saved_metadata,
            config,
            stem,
            web_model=web,
            size_bytes=sum(path.stat().st_size for path in stem.parent.iterdir()),
            reports=tuple(training._reports),
        )
        with self._lock:
            if training.discarded or not training.jobs:  # everyone left while measuring
                training.update(state=CANCELLED)
                shutil.rmtree(stem.parent, ignore_errors=True)
                return
            for job in training.jobs:
                job.done(self.session_runs.add(job.session, job.name, stored))
            # Before DONE: whoever sees the run done sees the disk settled.
            self.session_runs.free_disk()
            training.update(state=DONE)

    def _prepare(self, config: TrainConfig, train_size: int | None) -> PreparedData:
        """The digits (loaded once), split by the config; the first ``train_size`` train
        (left out: as many as the server allows).

        The validation digits depend only on the split, never on ``train_size``, so runs on
        500 and 7,200 digits are measured on the same digits and compare fairly.
        """
        digits, sources = self._digits(), self._data[1]
        data = prepare_data(config, digits=digits)
        wanted = self.caps.max_train_size if train_size is None else train_size
        keep = data.train_index[:wanted]
        return dataclasses.replace(data, train_index=keep, sources=sources)

    def _digits(self) -> Digits:
        """The training digits, loaded once (only the worker thread calls this)."""
        if self._data is None:
            self._data = load_training_sources(self.data_paths)
        return self._data[0]

    def _render_default_split(self) -> None:
        """Render the drawings a run on the default split is calibrated and measured on
        (~3 s), as ``run_metadata`` and ``_measure_drawings`` will ask for them: most runs,
        every preset's included, use that split."""
        config = TrainConfig()
        data = self._prepare(config, None)
        images = data.digits.images[data.val_index]
        drawing_inputs(images[:CALIBRATION_DRAWINGS], seed=config.seed + 1)
        if self.drawings:
            drawing_inputs(images[: self.drawings], seed=config.seed)

    def _measure_drawings(self, model: nn.Module, config: TrainConfig, data: PreparedData) -> dict:
        """``evaluate_drawings``' figure on the first validation digits (their renders are
        kept by ``drawing_inputs``: they depend on the split and the seed, not the model)."""
        chosen = data.val_index[: self.drawings]
        inputs = drawing_inputs(data.digits.images[chosen], config.seed)
        return drawing_accuracy(model, inputs, data.digits.labels[chosen], config.seed)


def _files_fingerprint(paths: list[str | Path]) -> list[list]:
    """The data files as a run's identity sees them: path, size and modification time."""
    prints = []
    for path in paths:
        try:
            info = os.stat(path)
            prints.append([str(Path(path).resolve()), info.st_size, info.st_mtime_ns])
        except OSError:
            prints.append([str(path), None, None])  # loading will say what is wrong
    return prints


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
    """Import what the first optimiser step needs (torch's compiler, ~3 s) and draw the
    non-digits every run shares and the held-out ones its calibration measures (~8 s, kept
    for the process) before any run, so that the first visitor's clock does not pay for it."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    shared_nondigits()
    make_nondigits(CALIBRATION_NONDIGITS, seed=0, split="heldout")

"""Room mode for a workshop: a shared leaderboard, the room's drawings and the room's model.

A :class:`Room` sits beside the app's training service and drawings store:

- **Publish**: a learner puts one of their own runs on the leaderboard under a nickname. The
  run's files are pinned (linked into the room's folder), so the entry keeps its model when
  the session's quota or the disk cap removes the run, and across a restart; its figures
  (validation, MNIST's test digits, training time) are kept in the database.
- **The leaderboard** (:meth:`Room.leaderboard_rows`): best validation first; each entry's
  accuracy on the room's drawings is measured on the drawings as they are now, leaving out
  any it trained on. Rows are computed again only when the database or the room changed.
- **The room's drawings** (:meth:`Room.digit_counts`): what everyone kept (room_store).
- **The room's model**: the operator's fine-tune of a shipped model on the room's drawings,
  a job of the training service like any fine-tune. Its result joins every session's model
  choice (:meth:`Room.room_model`) and the leaderboard.

Removing an entry and the room's fine-tune need the operator's token
(``DIGITNET_OPERATOR_TOKEN``). Room mode is on locally and, on a Hugging Face Space, only
when the operator sets ``DIGITNET_ROOM=1`` (:class:`RoomSettings`).
"""

from __future__ import annotations

import hmac
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from digitnet.checkpoint import load_checkpoint
from digitnet.config import ConfigError
from digitnet.drawing_data import AnswerCache
from digitnet.errors import DigitnetError
from digitnet.finetune import MIN_DRAWINGS, FinetuneConfig, split_drawings
from digitnet.jobs import FAILED, FinetuneRequest, Job, RunRecord
from digitnet.leaderboard import (
    RoomError,
    best_first,
    clean_nickname,
    entry_figures,
    entry_row,
    room_accuracy,
)
from digitnet.room_store import (
    KIND_ROOM,
    KIND_RUN,
    StoredEntry,
    add_entry,
    change_mark,
    delete_entry,
    list_entries,
    room_counts,
    room_drawings,
)
from digitnet.storage import on_space
from digitnet.store import LABEL_COUNT, DrawingStore, label_text
from digitnet.training_service import TrainingService

__all__ = ["ROOM_VARIABLES", "Room", "RoomError", "RoomModel", "RoomSettings"]

log = logging.getLogger(__name__)

ROOM_ENV = "DIGITNET_ROOM"
OPERATOR_TOKEN_ENV = "DIGITNET_OPERATOR_TOKEN"
ROOM_VARIABLES = {  # the operator's variables, for the README and the start-up checks
    ROOM_ENV: "1: room mode on a Space too (it is on locally); off: off everywhere",
    OPERATOR_TOKEN_ENV: "the operator's token: removes leaderboard entries, runs the room's "
    "fine-tune (at least 8 characters; without it nobody can)",
}
MIN_TOKEN_CHARS = 8
ROOM_SESSION = "the room"  # the training service's session of the room's fine-tunes
ROOM_NICKNAME = "the room"  # the room's model's nickname on the leaderboard
ROOM_MODEL = "room model"  # its name in the model choice (then "room model 2"...)
ROOM_FOLDER = "room"  # under the runs folder: never one of the service's run folders
MAX_ENTRIES = 100  # on the leaderboard at once: a room of 20, five runs each
MAX_ENTRIES_PER_SESSION = 5  # as many as a session keeps runs by default
WATCH_SECONDS = 0.5  # how often the room looks at its fine-tune's job
WEIGHTS, METADATA = "model.safetensors", "model.json"  # a pinned checkpoint's files


@dataclass(frozen=True)
class RoomSettings:
    """Room mode as the operator set it up (environment variables, read once at start)."""

    enabled: bool
    operator_token: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RoomSettings:
        """On locally, on a Space only with ``DIGITNET_ROOM=1``; a bad value is one line."""
        text = environ.get(ROOM_ENV, "").strip().lower()
        if text not in ("", "1", "on", "0", "off"):
            raise ConfigError(f"{ROOM_ENV}={text!r}: give 1 (room mode on) or off")
        enabled = text in ("1", "on") or (text == "" and not on_space(environ))
        token = environ.get(OPERATOR_TOKEN_ENV, "").strip() or None
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"{OPERATOR_TOKEN_ENV}: at least {MIN_TOKEN_CHARS} characters, got "
                f"{len(token)}; choose a longer token"
            )
        return cls(enabled, token)


@dataclass(frozen=True)
class RoomModel:
    """The room's model: its name in every session's model choice, and its files."""

    name: str
    model: nn.Module
    metadata: dict
    web_model: Path | None  # the browser's copy; None answers from the server only
    entry: int  # its leaderboard entry


@dataclass
class _Pinned:
    """An entry's model in memory (None once its files are gone)."""

    model: nn.Module | None
    metadata: dict
    web_model: Path | None = None


def room_model_name(number: int) -> str:
    """The room's model's name: a new one for each fine-tune, so a page that already has
    an older one in its pad never mistakes one for the other."""
    return ROOM_MODEL if number == 1 else f"{ROOM_MODEL} {number}"


def room_model_number(name: str) -> int:
    """The inverse of :func:`room_model_name` (0 for any other name)."""
    if name == ROOM_MODEL:
        return 1
    tail = name.removeprefix(f"{ROOM_MODEL} ")
    return int(tail) if tail != name and tail.isdigit() else 0


class Room:
    """The room of one server: its leaderboard, drawings and model. Thread-safe.

    ``bases`` are the models the room's fine-tune may start from (the shipped ones, by
    choice name: anything with ``.model`` and ``.metadata``).
    """

    def __init__(
        self,
        store: DrawingStore,
        service: TrainingService,
        settings: RoomSettings,
        bases: Mapping[str, object],
        folder: Path | None = None,
    ):
        self.store = store
        self.service = service
        self.settings = settings
        self.bases = dict(bases)
        self.folder = Path(folder) if folder is not None else service.runs_dir / ROOM_FOLDER
        self._lock = threading.RLock()
        self._publishing = threading.Lock()  # guards the caps' checks and the claims
        self._claims: set[tuple[str, str]] = set()  # (session, run) being published
        self._pinned: dict[int, _Pinned] = {}
        self._answers = AnswerCache()
        self._version = 0  # moves with what the database does not hold: the fine-tune
        self._rows: tuple[tuple, list[dict]] | None = None
        self._job: Job | None = None  # the room's last fine-tune
        self._watching = False  # until its result is kept (or its failure known)
        self._failure: str | None = None
        self._room_numbers = 0
        self._room_model: RoomModel | None = None
        self._restore()

    # -- what a UI reads -------------------------------------------------------

    def key(self) -> tuple:
        """Moves whenever the rows, the counts or the room's model (or its fine-tune's
        progress) may have changed."""
        job = self._job if self._watching else None
        return change_mark(self.store), self._version, job.version if job else None

    def leaderboard_rows(self) -> list[dict]:
        """Every entry as a row (:func:`digitnet.leaderboard.entry_row`), best validation
        first; computed again only when :meth:`key` has moved."""
        key = self.key()
        with self._lock:
            if self._rows is None or self._rows[0] != key:
                self._rows = (key, self._compute_rows())
            return [dict(row) for row in self._rows[1]]

    def digit_counts(self) -> dict[str, int]:
        """The room's drawings per label: "0" ... "9", then "not a digit"."""
        counts = room_counts(self.store)
        return {label_text(label): counts[label] for label in range(LABEL_COUNT)}

    def room_model(self) -> RoomModel | None:
        """The room's model, once the operator's fine-tune is done."""
        return self._room_model

    def publishable_runs(self, session: str) -> list[str]:
        """The session's runs still on disk, which it may publish, newest first."""
        return [r.name for r in reversed(self.service.runs(session)) if not r.evicted]

    def finetune_status(self) -> dict:
        """The room's fine-tune: ``none`` (no room's model yet), the job's state while it runs
        (``queued``, ``preparing``, ``training``, ``measuring``, then ``saving`` while its model
        is pinned and measured), ``ready`` or ``failed``; with the job's progress and the
        room's model's name."""
        with self._lock:
            job, model, watching, failure = (
                self._job,
                self._room_model,
                self._watching,
                self._failure,
            )
        status: dict = {"state": "ready" if model else "none"}
        if job is not None:
            status["job"] = job.snapshot().summary()
            if watching:
                status["state"] = "saving" if job.finished else job.state
        if failure and not watching:
            status.update(state=FAILED, error=failure)
        status["room_model"] = model.name if model else None
        return status

    # -- what a learner does -----------------------------------------------------

    def publish(self, session: str, run: object, nickname: object) -> dict:
        """Put ``session``'s run called ``run`` on the leaderboard as ``nickname``; returns
        its row. Measures it on MNIST's 10,000 test digits (about a second): call it off
        the event loop. Refused in one line: an unknown or removed run, a run already on
        the leaderboard, a bad nickname, a full leaderboard."""
        nickname = clean_nickname(nickname)
        record = self._own_run(session, run)
        claim = (session, record.name)
        with self._publishing:  # the checks and the claim together: two presses, one entry
            entries = list_entries(self.store)
            claimed = [(e.session, e.run) for e in entries] + list(self._claims)
            for entry in entries:
                if (entry.session, entry.run) == claim:
                    raise RoomError(
                        f"{record.name} is already on the leaderboard as {entry.nickname!r} "
                        f"(entry {entry.id}); train another run to publish"
                    )
            if claim in self._claims:
                raise RoomError(f"{record.name} is being published; wait a second")
            mine = sum(owner == session for owner, _ in claimed)
            if mine >= MAX_ENTRIES_PER_SESSION:
                raise RoomError(
                    f"you have {mine} runs on the leaderboard, the most one page may publish"
                )
            if len(claimed) >= MAX_ENTRIES:
                raise RoomError(
                    f"the leaderboard is full ({MAX_ENTRIES} entries); ask the operator to "
                    f"remove some"
                )
            self._claims.add(claim)
        try:  # measured outside the lock: other publishes need not wait a second each
            entry = self._add(session, nickname, record, KIND_RUN)
        finally:
            with self._publishing:
                self._claims.discard(claim)
        return self._row_of(entry)

    def _own_run(self, session: str, run: object) -> RunRecord:
        name = str(run or "").strip()
        record = self.service.find_run(session, name) if name else None
        if record is None:
            names = self.publishable_runs(session)
            yours = f"your runs: {', '.join(names)}" if names else "train one on the Train tab"
            shown = f" called {name[:40]!r}" if name else ""
            raise RoomError(f"you have no run{shown} to publish; {yours}")
        if record.evicted:
            raise RoomError(
                f"{record.name} was removed to make room (this server keeps its last "
                f"{self.service.keep_runs} runs); train it again to publish it"
            )
        return record

    # -- what the operator does -----------------------------------------------------

    def check_operator(self, token: object) -> None:
        """Refuse, in one line, anyone without the operator's token."""
        expected = self.settings.operator_token
        if expected is None:
            raise RoomError(
                f"this server has no operator token; its operator sets {OPERATOR_TOKEN_ENV} "
                f"and restarts it"
            )
        given = token.strip() if isinstance(token, str) else ""
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise RoomError("wrong operator token; only the room's operator may do this")

    def remove(self, entry_id: object, token: object) -> dict:
        """The operator removes an entry (its pinned files go too); returns what went."""
        self.check_operator(token)
        try:
            number = int(str(entry_id).strip().removeprefix("#"))
        except ValueError:
            raise RoomError(f"entry: give the entry's number, e.g. 3 (got {entry_id!r})") from None
        removed = delete_entry(self.store, number)
        if removed is None:
            raise RoomError(f"there is no entry {number} on the leaderboard")
        with self._lock:
            self._pinned.pop(number, None)
            if self._room_model is not None and self._room_model.entry == number:
                self._room_model = self._latest_room_model()
            self._version += 1
        if removed.folder:
            shutil.rmtree(self.folder / removed.folder, ignore_errors=True)
        left = len(list_entries(self.store))
        return {"removed": number, "nickname": removed.nickname, "run": removed.run, "left": left}

    def start_finetune(self, token: object, base: object = None, epochs: object = 3) -> dict:
        """The operator fine-tunes ``base`` (a shipped model) on the room's drawings: queued
        on the training service; its result becomes the room's model when done. Returns
        :meth:`finetune_status`."""
        self.check_operator(token)
        name = str(base or next(iter(self.bases), ""))
        loaded = self.bases.get(name)
        if loaded is None:
            raise RoomError(f"no model called {name[:40]!r}; choose one of {', '.join(self.bases)}")
        try:
            count = int(float(str(epochs)))
        except ValueError:
            raise RoomError(f"epochs: give a whole number, e.g. 3 (got {epochs!r})") from None
        settings = FinetuneConfig(epochs=count)  # out of range: one line
        ids, drawings = room_drawings(self.store)
        if len(ids) < MIN_DRAWINGS:
            raise RoomError(
                f"the room has {len(ids)} drawings; its fine-tune needs {MIN_DRAWINGS} "
                f"({MIN_DRAWINGS - len(ids)} more confirmed on the Draw tab)"
            )
        split = split_drawings(drawings, ids, settings)
        request = FinetuneRequest(name, loaded.model, loaded.metadata, split, settings)
        with self._lock:
            if self._watching:
                raise RoomError("the room's fine-tune is already queued or training; wait for it")
            self._job = self.service.submit_finetune(ROOM_SESSION, request)
            self._watching, self._failure = True, None
            self._version += 1
        watcher = threading.Thread(
            target=self._watch, args=(self._job,), name="digitnet-room-finetune", daemon=True
        )
        watcher.start()
        return self.finetune_status()

    def _watch(self, job: Job) -> None:
        """Wait for the room's fine-tune; once done, it becomes the room's model."""
        while not job.finished:
            time.sleep(WATCH_SECONDS)
        snapshot = job.snapshot()
        try:
            if snapshot.record is None:
                self._failure = snapshot.error or f"it was {snapshot.state}"
            else:
                self._adopt(snapshot.record)
        except (DigitnetError, OSError) as error:
            log.exception("the room's model could not be kept")
            self._failure = f"its model could not be kept ({error})".splitlines()[0]
        finally:
            self.service.end_session(ROOM_SESSION)  # the room keeps its own copy
            with self._lock:
                self._watching = False
                self._version += 1

    def _adopt(self, record: RunRecord) -> None:
        with self._lock:
            self._room_numbers += 1
            name = room_model_name(self._room_numbers)
        record = RunRecord(name, ROOM_SESSION, record.stored)  # its name on the leaderboard
        entry = self._add(ROOM_SESSION, ROOM_NICKNAME, record, KIND_ROOM)
        with self._lock:
            self._room_model = self._latest_room_model()
            self._version += 1
        log.info("the room's model %s is ready (entry %d)", name, entry.id)

    # -- pinning and rows ----------------------------------------------------------

    def _add(self, session: str, nickname: str, record: RunRecord, kind: str) -> StoredEntry:
        """Pin ``record``'s files, measure it, and add its entry."""
        model, metadata = record.stored.model, record.metadata
        if model is None:
            raise RoomError(f"{record.name} was removed meanwhile; train it again")
        folder = self._pin(record.checkpoint, record.web_model if kind == KIND_ROOM else None)
        try:
            ids, drawings = room_drawings(self.store)
            room = room_accuracy(model, metadata, ids, drawings, self._answers)
            figures = entry_figures(model, metadata, room)
            entry = add_entry(
                self.store,
                session=session,
                nickname=nickname,
                run=record.name,
                kind=kind,
                folder=folder.name,
                figures=figures,
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        web = next(folder.glob("web-*"), None)
        with self._lock:
            self._pinned[entry.id] = _Pinned(model, metadata, web)
        return entry

    def _pin(self, checkpoint: Path, web_model: Path | None) -> Path:
        """The run's checkpoint (and web model) linked, or copied, into a folder of the
        room's own: the session's run may go, the entry's stays."""
        folder = self.folder / uuid.uuid4().hex
        folder.mkdir(parents=True)
        files = [
            (checkpoint.with_name(checkpoint.name + ".safetensors"), WEIGHTS),
            (checkpoint.with_name(checkpoint.name + ".json"), METADATA),
        ]
        if web_model is not None:  # its random name keeps its address unguessable
            files.append((web_model, f"web-{uuid.uuid4().hex[:16]}.safetensors"))
        try:
            for source, name in files:
                try:
                    os.link(source, folder / name)
                except OSError:  # another file system, or no hard links: a copy
                    shutil.copyfile(source, folder / name)
        except OSError as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise RoomError(f"could not keep the run's files ({error.strerror})") from None
        return folder

    def _load(self, entry: StoredEntry) -> _Pinned:
        """An entry's model from its pinned files (None when they are gone)."""
        with self._lock:
            if entry.id in self._pinned:
                return self._pinned[entry.id]
        folder = self.folder / (entry.folder or "")
        try:
            model, metadata = load_checkpoint(folder / "model")
        except DigitnetError as error:
            log.warning("leaderboard entry %d: its run's files are gone (%s)", entry.id, error)
            model, metadata = None, {}
        pinned = _Pinned(model, metadata, next(folder.glob("web-*"), None) if model else None)
        with self._lock:
            return self._pinned.setdefault(entry.id, pinned)

    def _row_of(self, entry: StoredEntry, ids=None, drawings=None) -> dict:
        pinned = self._load(entry)
        if pinned.model is None:
            return entry_row(entry, None, gone=True)
        if ids is None:
            ids, drawings = room_drawings(self.store)
        accuracy = room_accuracy(pinned.model, pinned.metadata, ids, drawings, self._answers)
        return entry_row(entry, accuracy, gone=False)

    def _compute_rows(self) -> list[dict]:
        ids, drawings = room_drawings(self.store)
        return best_first([self._row_of(e, ids, drawings) for e in list_entries(self.store)])

    def _latest_room_model(self) -> RoomModel | None:
        """The newest room entry whose files are still there, as the room's model."""
        for entry in reversed(list_entries(self.store)):
            if entry.kind != KIND_ROOM:
                continue
            pinned = self._load(entry)
            if pinned.model is not None:
                return RoomModel(
                    entry.run, pinned.model, pinned.metadata, pinned.web_model, entry.id
                )
        return None

    def _restore(self) -> None:
        """After a restart: the room's model back, and pinned folders no entry holds (a
        removal or a publish cut short) deleted."""
        entries = list_entries(self.store)
        self._room_numbers = max(
            [room_model_number(e.run) for e in entries if e.kind == KIND_ROOM], default=0
        )
        self._room_model = self._latest_room_model()
        kept = {entry.folder for entry in entries}
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.is_dir() and path.name not in kept:
                    shutil.rmtree(path, ignore_errors=True)

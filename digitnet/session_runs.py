"""The runs each session holds, the files identical runs share, and what goes when the disk fills.

Each session keeps its newest ``keep_runs`` runs. Across sessions the disk holds at most
``max_stored`` run folders and ``max_bytes``; over either, the least recently used runs of
sessions that have ended go first, then those of live sessions, but never a live session's
newest run. A stored run is deleted when the last record of it goes.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from digitnet.jobs import RunRecord, StoredRun

# The folders a training service makes (a training's id); nothing else in runs_dir is touched.
RUN_FOLDER = re.compile(r"^[0-9a-f]{12}$")
OLDEST = "oldest"  # a record's ``removed``: over its session's quota
DISK_FULL = "to free disk space"  # over the server's disk cap


class SessionRuns:
    """Every session's finished runs and the stored runs behind them. Thread-safe."""

    def __init__(
        self,
        runs_dir: Path,
        *,
        keep_runs: int,
        max_stored: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.runs_dir = runs_dir
        self.keep_runs = keep_runs
        self.max_stored = max_stored
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.RLock()
        self._live: dict[str, list[RunRecord]] = {}  # evicted records too: the table says so
        self._ended: list[RunRecord] = []  # kept records of sessions that have ended
        self._stored: dict[str, StoredRun] = {}  # by key: what was trained

    def runs(self, session: str) -> list[RunRecord]:
        """The session's runs, oldest first (removed ones included, marked)."""
        with self._lock:
            return list(self._live.get(session, []))

    def find(self, session: str, name: str | None) -> RunRecord | None:
        """The session's run called ``name``, or None; finding it counts as using it."""
        with self._lock:
            record = next((r for r in self._live.get(session, []) if r.name == name), None)
            if record is not None and not record.evicted:
                record.stored.last_used = self.clock()
            return record

    def stored(self, key: str) -> StoredRun | None:
        """The run trained as ``key`` if some session still holds it."""
        with self._lock:
            return self._stored.get(key)

    def add(self, session: str, name: str, stored: StoredRun) -> RunRecord:
        """Give ``session`` a record of ``stored`` called ``name``; apply its quota."""
        with self._lock:
            self._stored.setdefault(stored.key, stored)
            record = RunRecord(name, session, stored)
            stored.records.append(record)
            stored.last_used = self.clock()
            records = self._live.setdefault(session, [])
            records.append(record)
            kept = [r for r in records if not r.evicted]
            for old in kept[: max(0, len(kept) - self.keep_runs)]:
                self._remove(old, OLDEST)
            return record

    def end_session(self, session: str) -> None:
        """Nobody can reach the session's runs any more; they stay until the disk needs room."""
        with self._lock:
            records = self._live.pop(session, [])
            self._ended.extend(r for r in records if not r.evicted)

    def free_disk(self) -> None:
        """Remove runs until the disk is within its caps, as the module says."""
        with self._lock:
            orphans = self._orphans()
            while self._over(len(orphans)):
                if orphans:  # left by an earlier server: no session can reach them
                    shutil.rmtree(orphans.pop(0), ignore_errors=True)
                    continue
                victim = self._victim()
                if victim is None:
                    return
                for record in list(victim.records):
                    self._remove(record, DISK_FULL)

    def _over(self, orphans: int) -> bool:
        stored = self._stored.values()
        return (
            len(stored) + orphans > self.max_stored
            or sum(s.size_bytes for s in stored) > self.max_bytes
        )

    def _victim(self) -> StoredRun | None:
        """The least recently used stored run, ended sessions' first; None if all are kept."""
        newest = set()
        for records in self._live.values():
            kept = [r for r in records if not r.evicted]
            if kept:
                newest.add(id(kept[-1].stored))
        candidates = [s for s in self._stored.values() if id(s) not in newest]
        if not candidates:
            return None
        return min(
            candidates,
            key=lambda s: (any(r.session in self._live for r in s.records), s.last_used),
        )

    def _orphans(self) -> list[Path]:
        if not self.runs_dir.is_dir():
            return []
        known = {s.folder.name for s in self._stored.values()}
        folders = [
            path
            for path in self.runs_dir.iterdir()
            if path.is_dir() and RUN_FOLDER.match(path.name) and path.name not in known
        ]
        return sorted(folders, key=lambda path: path.stat().st_mtime)

    def _remove(self, record: RunRecord, why: str) -> None:
        record.removed = why
        if record in self._ended:
            self._ended.remove(record)
        stored = record.stored
        if record in stored.records:
            stored.records.remove(record)
        if not stored.records:  # the last record of it: the files and weights go
            self._stored.pop(stored.key, None)
            stored.model = None
            shutil.rmtree(stored.folder, ignore_errors=True)

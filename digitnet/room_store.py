"""The room's rows in the drawings database: its leaderboard entries and its drawings.

The room's drawings are the labelled drawings people kept in the app (Right, No, it's a …)
or sent to the ``save_drawing`` API (:data:`ROOM_SOURCES`); imported ones (a Kaggle CSV,
scikit-learn's UCI digits) are not the room's. An entry is a run published to the
leaderboard, or the room's own model, with the figures measured when it was published (JSON),
so a row outlives its run's files. The table is schema version 4 (:mod:`digitnet.store_schema`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from digitnet.data import IMAGE_SIZE, Digits
from digitnet.store import LABEL_COUNT, SOURCE_API, SOURCE_APP, DrawingStore

ROOM_SOURCES = (SOURCE_APP, SOURCE_API)  # what people drew, not what was imported
KIND_RUN = "run"  # a learner's published run
KIND_ROOM = "room"  # the room's model: the operator's fine-tune on the room's drawings
_COLUMNS = "id, created_at, session, nickname, run, kind, folder, figures"
_ROOM_ROWS = f"label IS NOT NULL AND source IN ({', '.join('?' * len(ROOM_SOURCES))})"


@dataclass(frozen=True)
class StoredEntry:
    """One leaderboard row as stored."""

    id: int
    created_at: str  # ISO 8601, UTC
    session: str  # who published it (the room's own session for the room's model)
    nickname: str
    run: str  # the run's name in its session (run-3), or the room model's name
    kind: str  # KIND_RUN or KIND_ROOM
    folder: str | None  # its pinned files, a folder name under the room's folder
    figures: dict  # what was measured when it was published


def _entry(row: tuple) -> StoredEntry:
    *head, figures = row
    return StoredEntry(*head, json.loads(figures))


def add_entry(
    store: DrawingStore,
    *,
    session: str,
    nickname: str,
    run: str,
    kind: str,
    folder: str | None,
    figures: dict,
) -> StoredEntry:
    """Insert an entry (the caller has checked its values); durable when this returns."""
    created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    text = json.dumps(figures, allow_nan=False)
    with store.writing("publish") as connection:
        new_id = connection.execute(
            "INSERT INTO room_entries (created_at, session, nickname, run, kind, folder, "
            "figures) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [created, session, nickname, run, kind, folder, text],
        ).lastrowid
    return StoredEntry(int(new_id), created, session, nickname, run, kind, folder, figures)


def list_entries(store: DrawingStore) -> list[StoredEntry]:
    """Every entry, oldest first."""
    with store.reading("read") as connection:
        rows = connection.execute(f"SELECT {_COLUMNS} FROM room_entries ORDER BY id").fetchall()
    return [_entry(row) for row in rows]


def delete_entry(store: DrawingStore, entry_id: int) -> StoredEntry | None:
    """Delete one entry; returns it, or None when there was no such entry."""
    with store.writing("remove") as connection:
        row = connection.execute(
            f"SELECT {_COLUMNS} FROM room_entries WHERE id = ?", [int(entry_id)]
        ).fetchone()
        if row is not None:
            connection.execute("DELETE FROM room_entries WHERE id = ?", [int(entry_id)])
    return None if row is None else _entry(row)


def room_drawings(store: DrawingStore) -> tuple[np.ndarray, Digits]:
    """The room's labelled drawings: their row ids (ascending) and the drawings, read in one
    go so that the two agree. Labels are 0-9, or NOT_A_DIGIT."""
    with store.reading("read") as connection:
        rows = connection.execute(
            f"SELECT id, pixels, label FROM drawings WHERE {_ROOM_ROWS} ORDER BY id",
            ROOM_SOURCES,
        ).fetchall()
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    images = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.uint8)
    images = images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE).copy()
    labels = np.array([row[2] for row in rows], dtype=np.int64)
    return ids, Digits(images, labels, "the room's drawings")


def room_counts(store: DrawingStore) -> list[int]:
    """The room's drawings of each label: the digits 0-9, then "not a digit"."""
    counts = [0] * LABEL_COUNT
    with store.reading("read") as connection:
        for label, count in connection.execute(
            f"SELECT label, count(*) FROM drawings WHERE {_ROOM_ROWS} GROUP BY label",
            ROOM_SOURCES,
        ):
            counts[int(label)] = int(count)
    return counts


def change_mark(store: DrawingStore) -> tuple[int, int]:
    """A mark that moves whenever anything in the database changes: a drawing kept, corrected
    or deleted, an entry published or removed, by this process (its connection's count of
    changed rows) or another one (SQLite's ``data_version``). Costs microseconds."""
    with store.reading("read") as connection:
        other = connection.execute("PRAGMA data_version").fetchone()[0]
        return int(other), int(connection.total_changes)

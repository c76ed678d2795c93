"""An embedded SQLite store of people's drawings, each with its true label.

One row is one drawing: when and in which session it was saved, the 28x28 input the
model saw (uint8, 255 = ink), the drawing itself (its strokes as JSON or a small PNG),
the model and its ten probabilities, the predicted and the true label, and where the row
came from ("app", "api", "import", "sklearn-digits", ...).

Why these choices (the standard library's ``sqlite3``, no file format of our own):

- **WAL journal, synchronous=FULL.** In WAL mode a commit appends to the ``-wal`` file;
  once ``save`` returns, the row is in the operating system's hands, so a SIGKILL of the
  process loses nothing even with synchronous=NORMAL. FULL also fsyncs the WAL at every
  commit, so an acknowledged drawing survives a power cut too. It costs one fsync per
  save (measured: 4 ms median per save against 0.15 ms with NORMAL, on the 2-core dev
  VM's disk), and a person saves a drawing every few seconds, so we pay it.
- **One connection per store, behind a lock.** SQLite lets one writer in at a time
  anyway; serialising our own threads in Python means they never race for SQLite's
  lock, so "database is locked" cannot come from within the process. Other processes
  (a CLI import while the app runs) are waited for by SQLite's busy handler for up to
  ``BUSY_TIMEOUT_MS``. Writes start with ``BEGIN IMMEDIATE``: taking the write lock
  first means the busy handler always applies (a read that later upgrades to a write
  can fail at once with SQLITE_BUSY instead of waiting).
- **A schema version** in ``PRAGMA user_version`` and our mark in
  ``PRAGMA application_id``; ``MIGRATIONS`` bring any older file up to date in order,
  and a file that is not ours is refused, never changed.

Every failure is a :class:`StoreError` of one line naming the file and what to do, so
the app can start with saving switched off.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from digitnet.data import IMAGE_SIZE, Digits
from digitnet.preprocess import canvas_to_mnist
from digitnet.storage import (
    DB_ENV,
    DEFAULT_DB_PATH,
    MAX_MB_ENV,
    check_location,
    damaged_error,
    resolve_db_path,
    resolve_max_bytes,
    sqlite_error,
    sqlite_error_name,
)
from digitnet.store_schema import (
    APPLICATION_ID,
    COLUMNS,
    IMPORT_SESSION,
    INSERT_SQL,
    LABEL_COUNT,
    MAX_DRAWING_BYTES,
    MIGRATIONS,
    NOT_A_DIGIT,
    NOT_A_DIGIT_TEXT,
    PNG_SIGNATURE,
    SCHEMA_VERSION,
    SOURCE_API,
    SOURCE_APP,
    SOURCE_IMPORT,
    SOURCE_SKLEARN,
    NewDrawing,
    SavedDrawing,
    StoredDrawing,
    StoreError,
    StoreStats,
    as_pixels,
    check_label,
    check_name,
    check_probs,
    drawing_png,
    label_text,
    stored_drawing,
    strokes_json,
)

# Importers read the store's names from here; the schema and the paths have modules of their own.
__all__ = [
    "APPLICATION_ID", "DB_ENV", "DEFAULT_DB_PATH", "IMPORT_SESSION", "LABEL_COUNT",
    "MAX_MB_ENV", "NOT_A_DIGIT", "NOT_A_DIGIT_TEXT", "SCHEMA_VERSION", "SOURCE_API",
    "SOURCE_APP", "SOURCE_IMPORT", "SOURCE_SKLEARN", "DrawingStore", "NewDrawing", "SavedDrawing",
    "StoreError", "StoreStats", "StoredDrawing", "as_pixels", "check_label", "drawing_png",
    "label_text", "open_store", "utc_text", "resolve_db_path", "resolve_max_bytes",
]  # fmt: skip

BUSY_TIMEOUT_MS = 10_000  # how long a write waits for another process's write lock
DEFAULT_PAGE_SIZE = 60  # rows per page when listing
MAX_PAGE_SIZE = 1000


def open_store(
    path: str | Path | None = None,
    *,
    max_bytes: int | None = None,
    max_drawing_bytes: int = MAX_DRAWING_BYTES,
) -> DrawingStore:
    """Open (creating or migrating if needed) the drawings database; see :func:`resolve_db_path`.

    Raises a one-line :class:`StoreError` for a folder, a read-only file or folder, a
    file that is not SQLite, a damaged database, or another program's database.
    """
    return DrawingStore(resolve_db_path(path), resolve_max_bytes(max_bytes), max_drawing_bytes)


class DrawingStore:
    """A drawings database, safe to share between threads. Open it with :func:`open_store`."""

    def __init__(self, path: Path, max_bytes: int, max_drawing_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_drawing_bytes = max_drawing_bytes
        self._lock = threading.RLock()
        check_location(path)
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            self._connection = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,  # the lock below serialises every use
            )
        except sqlite3.Error as error:
            raise self._error(error, "open") from None
        try:
            self._prepare()
        except sqlite3.Error as error:
            self._connection.close()
            raise self._error(error, "open") from None
        except StoreError:
            self._connection.close()
            raise

    # -- opening -----------------------------------------------------------

    def _prepare(self) -> None:
        connection = self._connection
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Read-only checks first: a foreign database must be refused before WAL changes it.
        self._check_identity()
        problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise self._damaged("; ".join(problems))
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"{self.path}: SQLite could not switch the database to WAL mode (it stays "
                f"'{mode}'; a network drive?); put the database on a local disk"
            )
        connection.execute("PRAGMA synchronous = FULL")
        self._migrate()
        self._check_columns()
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        # SQLite itself refuses to grow past this; we turn its SQLITE_FULL into a message.
        connection.execute(f"PRAGMA max_page_count = {max(1, self.max_bytes // page_size)}")

    def _check_identity(self) -> None:
        application_id, version, tables = self._identity()
        if application_id != APPLICATION_ID and (tables or version):
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(
                f"{self.path}: an SQLite database of another program (tables: "
                f"{shown or 'none'}), not digitnet's drawings; choose another --db or {DB_ENV}"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: made by a newer digitnet (schema {version}, this one reads up to "
                f"{SCHEMA_VERSION}); upgrade digitnet or choose another --db"
            )

    def _identity(self) -> tuple[int, int, list[str]]:
        connection = self._connection
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return application_id, version, tables

    def _migrate(self) -> None:
        application_id, version, _ = self._identity()
        if application_id == APPLICATION_ID and version == SCHEMA_VERSION:
            return  # up to date: no need for the write lock
        with self._transaction():
            # Re-read under the write lock: another process may have migrated meanwhile.
            self._check_identity()
            application_id, version, _ = self._identity()
            if application_id != APPLICATION_ID:
                self._connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for target, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    self._connection.execute(statement)
                self._connection.execute(f"PRAGMA user_version = {target}")

    def _check_columns(self) -> None:
        found = {row[1] for row in self._connection.execute("PRAGMA table_info(drawings)")}
        missing = [column for column in COLUMNS if column not in found]
        if missing:
            raise StoreError(
                f"{self.path}: its drawings table lacks the columns {', '.join(missing)}; "
                f"it was changed by hand: move it away or choose another --db"
            )

    def _damaged(self, detail: str) -> StoreError:
        return damaged_error(self.path, detail)

    def _error(self, error: sqlite3.Error, action: str) -> StoreError:
        """One line for an SQLite failure while trying to ``action`` (open / save / read)."""
        used = self._size_bytes() if sqlite_error_name(error).startswith("SQLITE_FULL") else 0
        return sqlite_error(self.path, error, action, used, self.max_bytes, BUSY_TIMEOUT_MS)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds SQLite's write lock from its first statement."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, say) leaves the transaction open: end it.
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise

    @contextmanager
    def writing(self, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction, its failures one line: for the room's tables (room_store)."""
        with self._guard(action), self._transaction() as connection:
            yield connection

    def reading(self, action: str):
        """The connection under the lock, its failures one line: for the room's tables."""
        return self._guard(action)

    @contextmanager
    def _guard(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, with SQLite's failures turned into one line."""
        with self._lock:
            if self._connection is None:
                raise StoreError(f"{self.path}: the store is closed; open it again")
            try:
                yield self._connection
            except sqlite3.Error as error:
                raise self._error(error, action) from None

    # -- writing -----------------------------------------------------------

    def _row(self, drawing: NewDrawing, *, session: str, source: str, created_at: str) -> tuple:
        """A checked row for ``INSERT_SQL``; raises StoreError before anything is written."""
        label = check_label(drawing.label)
        check_name(session, "session")
        check_name(source, "source")
        if drawing.model is not None:
            check_name(drawing.model, "model")
        prob_list = None if drawing.probs is None else check_probs(drawing.probs)
        predicted = drawing.predicted
        if predicted is not None:
            predicted = check_label(predicted, "predicted label")
        elif prob_list is not None:
            predicted = int(np.argmax(prob_list))
        strokes_text = None if drawing.strokes is None else strokes_json(drawing.strokes)
        png = drawing.png
        if png is not None:
            if not isinstance(png, (bytes, bytearray)) or not bytes(png).startswith(PNG_SIGNATURE):
                raise StoreError("the drawing's image is not PNG data; pass drawing_png(image)")
            png = bytes(png)
        drawing_bytes = len(png or b"") + len((strokes_text or "").encode("utf-8"))
        if drawing_bytes > self.max_drawing_bytes:
            raise StoreError(
                f"the drawing takes {drawing_bytes / 1024:.0f} KiB, over the "
                f"{self.max_drawing_bytes / 1024:.0f} KiB cap per drawing; send a smaller PNG "
                f"(drawing_png makes one) or fewer stroke points"
            )
        return (
            created_at,
            session,
            as_pixels(drawing.pixels).tobytes(),
            drawing.model,
            None if prob_list is None else json.dumps(prob_list),
            predicted,
            label,
            source,
            strokes_text,
            png,
        )

    def save(
        self,
        pixels: np.ndarray,
        label: object,
        *,
        session: str,
        source: str = SOURCE_APP,
        model: str | None = None,
        probs: Sequence[float] | np.ndarray | None = None,
        predicted: object = None,
        strokes: object = None,
        png: bytes | None = None,
    ) -> SavedDrawing:
        """Save one labelled drawing; durable when this returns.

        ``pixels`` is the model's 28x28 input (``canvas_to_mnist(...).image`` or uint8),
        ``label`` the true digit, ``probs`` the model's ten probabilities (``predicted``
        defaults to their argmax), and ``strokes`` (JSON) and/or ``png``
        (:func:`drawing_png`) the drawing itself. A bad value raises before any write.
        """
        drawing = NewDrawing(pixels, label, model, probs, predicted, strokes, png)
        (saved,) = self.save_each([drawing], session=session, source=source)
        return saved

    def save_each(
        self, drawings: Sequence[NewDrawing], *, session: str, source: str = SOURCE_APP
    ) -> list[SavedDrawing]:
        """Save drawings in one transaction (all or none: a number's digits), each with its
        new id; durable when this returns. A bad value raises before any write."""
        created_at = _now()
        rows = [
            self._row(drawing, session=session, source=source, created_at=created_at)
            for drawing in drawings
        ]
        with self._guard("save"), self._transaction() as connection:
            ids = [connection.execute(INSERT_SQL, row).lastrowid for row in rows]
            count = connection.execute("SELECT count(*) FROM drawings").fetchone()[0]
        return [SavedDrawing(int(new_id), int(count)) for new_id in ids]

    def save_image(
        self,
        image: Image.Image | np.ndarray,
        label: object,
        *,
        session: str,
        source: str = SOURCE_APP,
        model: str | None = None,
        probs: Sequence[float] | np.ndarray | None = None,
        strokes: object = None,
    ) -> SavedDrawing:
        """Preprocess a drawing (``canvas_to_mnist``) and save it with a PNG of it.

        A bad label is refused before the image is even looked at; a blank drawing too.
        """
        label = check_label(label)
        preprocessed = canvas_to_mnist(image)
        if preprocessed.is_blank:
            raise StoreError("the drawing is blank (no ink found); draw a digit, then save it")
        return self.save(
            preprocessed.image,
            label,
            session=session,
            source=source,
            model=model,
            probs=probs,
            strokes=strokes,
            png=drawing_png(preprocessed),
        )

    def save_many(
        self,
        images: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        *,
        session: str,
        source: str,
        pngs: Sequence[bytes | None] | None = None,
    ) -> int:
        """Save labelled 28x28 inputs in one transaction (all or none); returns the count added.

        For imports: ``images`` (N, 28, 28) uint8 255 = ink or floats in [0, 1].
        """
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 3 or len(images) != len(labels):
            raise StoreError(
                f"expected N images of 28x28 and N labels, got shapes {images.shape} "
                f"and {labels.shape}"
            )
        if pngs is not None and len(pngs) != len(images):
            raise StoreError(f"expected {len(images)} PNGs, one per image, got {len(pngs)}")
        created_at = _now()
        rows = []
        for index, (image, label) in enumerate(zip(images, labels)):
            try:
                png = None if pngs is None else pngs[index]
                drawing = NewDrawing(image, label, png=png)
                rows.append(
                    self._row(drawing, session=session, source=source, created_at=created_at)
                )
            except StoreError as error:
                raise StoreError(f"drawing {index + 1} of {len(images)}: {error}") from None
        with self._guard("import"), self._transaction() as connection:
            connection.executemany(INSERT_SQL, rows)
        return len(rows)

    def delete(self, ids: int | Iterable[int], *, session: str) -> int:
        """Delete the given rows that belong to ``session``; returns how many were deleted."""
        check_name(session, "session")
        wanted = [int(ids)] if isinstance(ids, (int, np.integer)) else [int(i) for i in ids]
        deleted = 0
        with self._guard("delete"), self._transaction() as connection:
            for start in range(0, len(wanted), 500):  # SQLite limits parameters per statement
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                deleted += connection.execute(
                    f"DELETE FROM drawings WHERE session = ? AND id IN ({marks})",
                    [session, *chunk],
                ).rowcount
        return deleted

    def delete_matching(
        self,
        *,
        ids: Iterable[int] | None = None,
        session: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> int:
        """The operator's delete: every row with one of ``ids``, of ``session``, and saved at
        or after ``since`` and before ``until`` (all that are given must hold); returns how
        many rows went. At least one filter is required: nothing here deletes every row."""
        clauses, params = [], []
        if session is not None:
            clauses.append("session = ?")
            params.append(check_name(session, "session"))
        for bound, operator in ((since, ">="), (until, "<")):
            if bound is not None:
                clauses.append(f"created_at {operator} ?")
                params.append(utc_text(bound))
        wanted = None if ids is None else sorted({int(i) for i in ids})
        if not clauses and wanted is None:
            raise StoreError("say which drawings to delete: by id, by session, or by time")
        where = " AND ".join(clauses) or "1"
        deleted = 0
        with self._guard("delete"), self._transaction() as connection:
            if wanted is None:
                return connection.execute(f"DELETE FROM drawings WHERE {where}", params).rowcount
            for start in range(0, len(wanted), 500):  # SQLite limits parameters per statement
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                deleted += connection.execute(
                    f"DELETE FROM drawings WHERE {where} AND id IN ({marks})", [*params, *chunk]
                ).rowcount
        return deleted

    # -- reading -----------------------------------------------------------

    def list_drawings(
        self,
        *,
        digit: object = None,
        correct: bool | None = None,
        session: str | None = None,
        source: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        offset: int = 0,
    ) -> list[StoredDrawing]:
        """Rows newest first, filtered by true label (a digit or "not a digit"), right/wrong,
        session and source; paged."""
        if not 1 <= int(limit) <= MAX_PAGE_SIZE or int(offset) < 0:
            raise StoreError(
                f"page of {limit} rows from {offset}: give 1-{MAX_PAGE_SIZE} rows from 0 up"
            )
        where, params = _filters(digit, correct, session, source)
        sql = f"SELECT {', '.join(COLUMNS)} FROM drawings{where} ORDER BY id DESC LIMIT ? OFFSET ?"
        with self._guard("read") as connection:
            rows = connection.execute(sql, [*params, int(limit), int(offset)]).fetchall()
        return [stored_drawing(row) for row in rows]

    def count(
        self,
        *,
        digit: object = None,
        correct: bool | None = None,
        session: str | None = None,
        source: str | None = None,
    ) -> int:
        """How many rows match the filters (all rows without filters)."""
        where, params = _filters(digit, correct, session, source)
        with self._guard("read") as connection:
            return int(
                connection.execute(f"SELECT count(*) FROM drawings{where}", params).fetchone()[0]
            )

    def counts_per_label(
        self,
        *,
        correct: bool | None = None,
        session: str | None = None,
        source: str | None = None,
    ) -> list[int]:
        """Labelled rows of each true label: the digits 0-9, then "not a digit" (index 10)."""
        where, params = _filters(None, correct, session, source)
        where += " AND label IS NOT NULL" if where else " WHERE label IS NOT NULL"
        counts = [0] * LABEL_COUNT
        with self._guard("read") as connection:
            for label, count in connection.execute(
                f"SELECT label, count(*) FROM drawings{where} GROUP BY label", params
            ):
                counts[int(label)] = int(count)
        return counts

    def counts_per_source(self) -> dict[str, int]:
        with self._guard("read") as connection:
            rows = connection.execute(
                "SELECT source, count(*) FROM drawings GROUP BY source ORDER BY source"
            ).fetchall()
        return {source: int(count) for source, count in rows}

    def drawing_ids(self, *, source: str | None = None) -> np.ndarray:
        """Ids of the labelled rows, ascending (int64), e.g. for :func:`split_by_seed`."""
        where, params = _filters(None, None, None, source)
        where += " AND label IS NOT NULL" if where else " WHERE label IS NOT NULL"
        with self._guard("read") as connection:
            rows = connection.execute(f"SELECT id FROM drawings{where} ORDER BY id", params)
            return np.array([row[0] for row in rows], dtype=np.int64)

    def labelled_digits(
        self, *, source: str | None = None, ids: Iterable[int] | None = None
    ) -> Digits:
        """Labelled rows (all, or of ``source``, or only ``ids``) as Digits, in id order.

        Their labels are 0-9, or :data:`NOT_A_DIGIT` for a drawing kept as not a digit."""
        where, params = _filters(None, None, None, source)
        where += " AND label IS NOT NULL" if where else " WHERE label IS NOT NULL"
        with self._guard("read") as connection:
            rows = connection.execute(
                f"SELECT id, pixels, label FROM drawings{where} ORDER BY id", params
            ).fetchall()
        row_ids = np.array([row[0] for row in rows], dtype=np.int64)
        images = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.uint8)
        images = images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE).copy()
        labels = np.array([row[2] for row in rows], dtype=np.int64)
        if ids is not None:
            # Filtering here, not in SQL, avoids SQLite's limit on parameters.
            keep = np.isin(row_ids, np.fromiter((int(i) for i in ids), dtype=np.int64))
            images, labels = images[keep], labels[keep]
        return Digits(images, labels, f"drawings:{self.path}")

    def size_bytes(self) -> int:
        """The database's size, WAL included (what the cap measures)."""
        with self._guard("read"):
            return self._size_bytes()

    def _size_bytes(self) -> int:
        connection = self._connection
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        return int(pages) * int(connection.execute("PRAGMA page_size").fetchone()[0])

    def stats(self) -> StoreStats:
        """Counts and sizes for ``drawings stats`` and the app."""
        return StoreStats(
            str(self.path),
            self.count(),
            self.counts_per_label(),
            self.counts_per_source(),
            self.size_bytes(),
            self.max_bytes,
        )

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> DrawingStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def utc_text(moment: datetime | str) -> str:
    """A time as the store writes ``created_at`` (ISO 8601, UTC, milliseconds), so that
    comparing the texts compares the times. A time without a zone is taken as UTC."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.strip())
        except ValueError:
            raise StoreError(
                f"{moment[:40]!r} is not a time; give ISO 8601, e.g. 2025-05-01 or 2025-05-01T14:30"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _filters(
    digit: object, correct: bool | None, session: str | None, source: str | None
) -> tuple[str, list]:
    """A WHERE clause and its parameters (the empty string when nothing filters)."""
    clauses, params = [], []
    if digit is not None:
        clauses.append("label = ?")
        params.append(check_label(digit, "digit"))
    if correct is not None:
        clauses.append("predicted = label" if correct else "predicted != label")
    if session is not None:
        clauses.append("session = ?")
        params.append(session)
    if source is not None:
        clauses.append("source = ?")
        params.append(source)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

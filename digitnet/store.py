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
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from digitnet.data import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS, Digits
from digitnet.errors import DigitnetError
from digitnet.preprocess import Preprocessed, canvas_to_mnist

DB_ENV = "DIGITNET_DB"  # the database's path when no path is given
MAX_MB_ENV = "DIGITNET_DB_MAX_MB"  # the database's size cap in MiB when none is given
DEFAULT_DB_PATH = Path("runs") / "drawings.sqlite"  # runs/ is git-ignored
DEFAULT_MAX_DB_BYTES = 256 * 2**20  # ~100,000 drawings with their PNGs
MAX_DRAWING_BYTES = 64 * 2**10  # per row: the PNG plus the strokes' JSON
PNG_MAX_SIDE = 280  # a stored drawing PNG is shrunk to fit this (a few KB of grey)
BUSY_TIMEOUT_MS = 10_000  # how long a write waits for another process's write lock
DEFAULT_PAGE_SIZE = 60  # rows per page when listing
MAX_PAGE_SIZE = 1000
MAX_NAME_CHARS = 200  # session, model and source names

SOURCE_APP = "app"  # confirmed or corrected in the app
SOURCE_API = "api"  # sent to the save_drawing endpoint
SOURCE_IMPORT = "import"  # a Kaggle train CSV
SOURCE_SKLEARN = "sklearn-digits"  # scikit-learn's UCI digits
IMPORT_SESSION = "import"  # the session of imported rows (no app session can delete them)

SQLITE_HEADER = b"SQLite format 3\x00"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
APPLICATION_ID = 0x44474E54  # "DGNT" in the file header marks a digitnet drawings database

# Migration i brings a database from schema version i to i + 1. Never edit a released one:
# append a new one. Version 1 kept only the 28x28 input; version 2 keeps the drawing too.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE drawings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            session TEXT NOT NULL,
            pixels BLOB NOT NULL CHECK (length(pixels) = 784),
            model TEXT,
            probs TEXT,
            predicted INTEGER CHECK (predicted BETWEEN 0 AND 9),
            label INTEGER CHECK (label BETWEEN 0 AND 9),
            source TEXT NOT NULL
        )""",
        "CREATE INDEX drawings_label ON drawings (label)",
    ),
    (
        "ALTER TABLE drawings ADD COLUMN strokes TEXT",
        "ALTER TABLE drawings ADD COLUMN png BLOB",
        "CREATE INDEX drawings_session ON drawings (session)",
        "CREATE INDEX drawings_source ON drawings (source)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
COLUMNS = (
    "id",
    "created_at",
    "session",
    "pixels",
    "model",
    "probs",
    "predicted",
    "label",
    "source",
    "strokes",
    "png",
)
_INSERT = (
    "INSERT INTO drawings (created_at, session, pixels, model, probs, predicted, label, "
    "source, strokes, png) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class StoreError(DigitnetError):
    """A drawings database that cannot be opened or written, or a drawing that is refused."""


@dataclass(frozen=True)
class SavedDrawing:
    """What ``save`` acknowledges: the new row's id and how many rows the store holds."""

    id: int
    count: int


@dataclass(frozen=True)
class StoredDrawing:
    """One row, as read back."""

    id: int
    created_at: str  # ISO 8601, UTC
    session: str
    pixels: np.ndarray  # (28, 28) uint8, 255 = ink: the model's input
    model: str | None
    probs: tuple[float, ...] | None  # the model's ten probabilities, classes 0-9
    predicted: int | None
    label: int | None  # the true label
    source: str
    strokes: str | None  # JSON text, as the drawing pad sent it
    png: bytes | None

    @property
    def is_correct(self) -> bool | None:
        if self.predicted is None or self.label is None:
            return None
        return self.predicted == self.label


@dataclass(frozen=True)
class StoreStats:
    path: str
    count: int
    per_digit: list[int]  # labelled rows of each class 0-9
    per_source: dict[str, int]
    size_bytes: int
    max_bytes: int


# ---------------------------------------------------------------------------
# Checking values before anything is written


def check_label(value: object, what: str = "label") -> int:
    """A digit 0-9 from an int, a whole float or a one-digit string; else a StoreError."""
    label = None
    if isinstance(value, (bool, np.bool_)):
        label = None  # True is an int to Python, but not a digit anyone chose
    elif isinstance(value, (int, np.integer)):
        label = int(value)
    elif isinstance(value, (float, np.floating)):
        label = int(value) if float(value).is_integer() else None
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip() in "0123456789":
        label = int(value.strip())
    if label is None or not 0 <= label < NUM_CLASSES:
        shown = repr(value)[:20]
        raise StoreError(f"{what} {shown} is not a digit; choose a whole number from 0 to 9")
    return label


def as_pixels(image: np.ndarray) -> np.ndarray:
    """The model's input as stored: (28, 28) uint8, 255 = ink.

    Takes uint8 or integer 0-255 (as in a Kaggle CSV), floats in [0, 1] (as
    ``canvas_to_mnist`` returns), or booleans. A blank input is refused.
    """
    array = np.asarray(image)
    if array.shape not in ((IMAGE_SIZE, IMAGE_SIZE), (NUM_PIXELS,)):
        raise StoreError(
            f"the model input has shape {array.shape}; expected a 28x28 image "
            f"(pass the drawing through canvas_to_mnist)"
        )
    array = array.reshape(IMAGE_SIZE, IMAGE_SIZE)
    if array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise StoreError("the model input has values outside 0-255; expected uint8 pixels")
        pixels = array.astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise StoreError(
                "the model input has float values outside [0, 1]; expected canvas_to_mnist's image"
            )
        pixels = np.rint(array * 255.0).astype(np.uint8)
    else:
        raise StoreError(f"the model input has dtype {array.dtype}; expected uint8 or float")
    if not pixels.any():
        raise StoreError("the drawing is blank (no ink); draw a digit, then save it")
    return pixels


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise StoreError(
            f"{what} {repr(value)[:40]} is not a name; give a non-empty text of at most "
            f"{MAX_NAME_CHARS} characters"
        )
    if "\n" in value or "\r" in value:
        raise StoreError(f"{what} {repr(value)[:40]} spans several lines; give one line")
    return value


def _check_probs(probs: Sequence[float] | np.ndarray) -> list[float]:
    values = np.asarray(probs, dtype=np.float64).ravel()
    if values.shape != (NUM_CLASSES,) or not np.isfinite(values).all():
        raise StoreError(f"expected 10 probabilities (classes 0-9), got {values.size} values")
    if values.min() < 0.0 or values.max() > 1.0 + 1e-6:
        raise StoreError("probabilities must lie in [0, 1]; pass softmax outputs, not logits")
    return [round(float(v), 6) for v in values.clip(0.0, 1.0)]


def _strokes_json(strokes: object) -> str:
    """The strokes as compact JSON text (a JSON string is checked, anything else encoded)."""
    try:
        if isinstance(strokes, str):
            json.loads(strokes)
            return strokes
        return json.dumps(strokes, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise StoreError(f"the strokes are not valid JSON ({error}); send them as JSON") from None


def drawing_png(image: Image.Image | np.ndarray | Preprocessed) -> bytes:
    """A small grey PNG of a drawing for the gallery: dark ink on white, at most 280 px.

    Given a :class:`Preprocessed` (or any image, which is preprocessed here), it draws
    the ink map, so dark-mode and transparent canvases all look alike.
    """
    preprocessed = image if isinstance(image, Preprocessed) else canvas_to_mnist(image)
    paper = np.rint(255.0 * (1.0 - preprocessed.ink)).astype(np.uint8)
    picture = Image.fromarray(paper, mode="L")
    picture.thumbnail((PNG_MAX_SIDE, PNG_MAX_SIDE), Image.Resampling.LANCZOS)
    buffer = BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Opening


def resolve_db_path(path: str | Path | None = None) -> Path:
    """The argument, else ``$DIGITNET_DB``, else ``runs/drawings.sqlite``."""
    if path is not None and str(path).strip():
        return Path(path).expanduser()
    from_env = os.environ.get(DB_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else DEFAULT_DB_PATH


def resolve_max_bytes(max_bytes: int | None = None) -> int:
    """The argument, else ``$DIGITNET_DB_MAX_MB`` MiB, else 256 MiB."""
    if max_bytes is not None:
        if max_bytes < 64 * 2**10:
            raise StoreError(f"a database cap of {max_bytes} bytes is too small; give 64 KiB+")
        return int(max_bytes)
    text = os.environ.get(MAX_MB_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_DB_BYTES
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = -1.0
    if not math.isfinite(megabytes) or megabytes < 0.0625:
        raise StoreError(f"{MAX_MB_ENV}={text!r} is not a size; give megabytes, e.g. 256")
    return int(megabytes * 2**20)


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


def _is_writable(path: Path) -> bool:
    # The mode bits count too: root passes os.access whatever they say, but a file or
    # folder someone marked read-only should not be written by an app run as root either.
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def _check_location(path: Path) -> None:
    """Refuse, before SQLite touches it, what SQLite would fail on or silently change."""
    if path.is_dir():
        raise StoreError(f"{path}: is a folder; give a file path for the drawings database")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"{folder}: cannot create the database's folder ({error.strerror or error}); "
            f"choose another path with --db or {DB_ENV}"
        ) from None
    if path.exists():
        if not path.is_file():
            raise StoreError(f"{path}: is not a regular file; choose another --db or {DB_ENV}")
        try:
            with path.open("rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
        except OSError as error:
            raise StoreError(
                f"{path}: cannot read the file ({error.strerror or error}); "
                f"fix its permissions or choose another --db"
            ) from None
        if header and header != SQLITE_HEADER:
            raise StoreError(
                f"{path}: not an SQLite database (it starts with {header[:8]!r}); "
                f"move it away or choose another --db or {DB_ENV}"
            )
        if not _is_writable(path):
            raise StoreError(
                f"{path}: the file is read-only; make it writable (chmod u+w) "
                f"or choose another --db or {DB_ENV}"
            )
    if not _is_writable(folder):
        raise StoreError(
            f"{path}: its folder {folder} is read-only, and SQLite must write its journal "
            f"beside the database; make the folder writable or choose another --db or {DB_ENV}"
        )


def _error_name(error: sqlite3.Error) -> str:
    """SQLite's error code name (Python 3.11+), else guessed from the message."""
    name = getattr(error, "sqlite_errorname", "") or ""
    if name:
        return name
    message = str(error).lower()
    for needle, guess in (
        ("locked", "SQLITE_BUSY"),
        ("full", "SQLITE_FULL"),
        ("readonly", "SQLITE_READONLY"),
        ("malformed", "SQLITE_CORRUPT"),
        ("not a database", "SQLITE_NOTADB"),
        ("unable to open", "SQLITE_CANTOPEN"),
    ):
        if needle in message:
            return guess
    return "SQLITE_ERROR"


class DrawingStore:
    """A drawings database, safe to share between threads. Open it with :func:`open_store`."""

    def __init__(self, path: Path, max_bytes: int, max_drawing_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_drawing_bytes = max_drawing_bytes
        self._lock = threading.RLock()
        _check_location(path)
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

    # -- errors ------------------------------------------------------------

    def _damaged(self, detail: str) -> StoreError:
        detail = " ".join(detail.split())[:100]
        return StoreError(
            f"{self.path}: the database is damaged ({detail}); move it aside to start a new "
            f"one (sqlite3's .recover may rescue its rows), or choose another --db or {DB_ENV}"
        )

    def _error(self, error: sqlite3.Error, action: str) -> StoreError:
        """One line for an SQLite failure while trying to ``action`` (open / save / read)."""
        name = _error_name(error)
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return self._damaged(str(error))
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreError(
                f"{self.path}: another program kept the database locked for over "
                f"{BUSY_TIMEOUT_MS / 1000:g} s, so nothing was {_done(action)}; try again"
            )
        if name.startswith("SQLITE_FULL"):
            used, cap = self._size_bytes(), self.max_bytes
            if used + 16 * 2**10 >= cap:
                return StoreError(
                    f"{self.path}: the drawings database is full ({used / 2**20:.1f} MiB of its "
                    f"{cap / 2**20:.1f} MiB cap), so nothing was {_done(action)}; export and "
                    f"delete drawings, or raise the cap with {MAX_MB_ENV}"
                )
            return StoreError(
                f"{self.path}: the disk is full, so nothing was {_done(action)}; free some space"
            )
        if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")):
            return StoreError(
                f"{self.path}: the database is read-only, so nothing was {_done(action)}; "
                f"make it and its folder writable or choose another --db or {DB_ENV}"
            )
        if name.startswith("SQLITE_CANTOPEN"):
            return StoreError(
                f"{self.path}: SQLite cannot open the file ({error}); check the path and "
                f"its permissions or choose another --db or {DB_ENV}"
            )
        return StoreError(
            f"{self.path}: could not {action} ({name}: {error}); check the disk and the file"
        )

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

    def _row(
        self,
        pixels: np.ndarray,
        label: object,
        *,
        session: str,
        source: str,
        model: str | None,
        probs: Sequence[float] | np.ndarray | None,
        predicted: object,
        strokes: object,
        png: bytes | None,
        created_at: str,
    ) -> tuple:
        """A checked row for ``_INSERT``; raises StoreError before anything is written."""
        label = check_label(label)
        _check_name(session, "session")
        _check_name(source, "source")
        if model is not None:
            _check_name(model, "model")
        prob_list = None if probs is None else _check_probs(probs)
        if predicted is not None:
            predicted = check_label(predicted, "predicted label")
        elif prob_list is not None:
            predicted = int(np.argmax(prob_list))
        strokes_text = None if strokes is None else _strokes_json(strokes)
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
            as_pixels(pixels).tobytes(),
            model,
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
        row = self._row(
            pixels,
            label,
            session=session,
            source=source,
            model=model,
            probs=probs,
            predicted=predicted,
            strokes=strokes,
            png=png,
            created_at=_now(),
        )
        with self._guard("save"), self._transaction() as connection:
            new_id = connection.execute(_INSERT, row).lastrowid
            count = connection.execute("SELECT count(*) FROM drawings").fetchone()[0]
        return SavedDrawing(int(new_id), int(count))

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
                rows.append(
                    self._row(
                        image,
                        label,
                        session=session,
                        source=source,
                        model=None,
                        probs=None,
                        predicted=None,
                        strokes=None,
                        png=None if pngs is None else pngs[index],
                        created_at=created_at,
                    )
                )
            except StoreError as error:
                raise StoreError(f"drawing {index + 1} of {len(images)}: {error}") from None
        with self._guard("import"), self._transaction() as connection:
            connection.executemany(_INSERT, rows)
        return len(rows)

    def delete(self, ids: int | Iterable[int], *, session: str) -> int:
        """Delete the given rows that belong to ``session``; returns how many were deleted."""
        _check_name(session, "session")
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
        """Rows newest first, filtered by true digit, right/wrong, session and source; paged."""
        if not 1 <= int(limit) <= MAX_PAGE_SIZE or int(offset) < 0:
            raise StoreError(
                f"page of {limit} rows from {offset}: give 1-{MAX_PAGE_SIZE} rows from 0 up"
            )
        where, params = _filters(digit, correct, session, source)
        sql = f"SELECT {', '.join(COLUMNS)} FROM drawings{where} ORDER BY id DESC LIMIT ? OFFSET ?"
        with self._guard("read") as connection:
            rows = connection.execute(sql, [*params, int(limit), int(offset)]).fetchall()
        return [_stored(row) for row in rows]

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

    def counts_per_digit(
        self,
        *,
        correct: bool | None = None,
        session: str | None = None,
        source: str | None = None,
    ) -> list[int]:
        """Labelled rows of each true digit 0-9."""
        where, params = _filters(None, correct, session, source)
        where += " AND label IS NOT NULL" if where else " WHERE label IS NOT NULL"
        counts = [0] * NUM_CLASSES
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
        """Labelled rows (all, or of ``source``, or only ``ids``) as Digits, in id order."""
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
            self.counts_per_digit(),
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


def _done(action: str) -> str:
    return {"save": "saved", "import": "imported", "delete": "deleted"}.get(action, "changed")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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


def _stored(row: Sequence) -> StoredDrawing:
    values: Mapping = dict(zip(COLUMNS, row))
    probs = values["probs"]
    return StoredDrawing(
        id=int(values["id"]),
        created_at=values["created_at"],
        session=values["session"],
        pixels=np.frombuffer(values["pixels"], dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE),
        model=values["model"],
        probs=None if probs is None else tuple(json.loads(probs)),
        predicted=values["predicted"],
        label=values["label"],
        source=values["source"],
        strokes=values["strokes"],
        png=values["png"],
    )

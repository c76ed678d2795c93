"""What a drawings database holds, and the checks a value passes before it is written.

The schema (``MIGRATIONS``, versioned in ``PRAGMA user_version`` and marked as ours by
``PRAGMA application_id``), the rows as Python sees them (:class:`StoredDrawing`), and the
value checks that make a bad value a one-line :class:`StoreError` before anything is written.
The queries live in :mod:`digitnet.store`, where the database lives in
:mod:`digitnet.storage`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image

from digitnet.data import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS
from digitnet.errors import DigitnetError
from digitnet.preprocess import Preprocessed, canvas_to_mnist

DEFAULT_MAX_DB_BYTES = 256 * 2**20  # ~100,000 drawings with their PNGs
MAX_DRAWING_BYTES = 64 * 2**10  # per row: the PNG plus the strokes' JSON
PNG_MAX_SIDE = 280  # a stored drawing PNG is shrunk to fit this (a few KB of grey)
MAX_NAME_CHARS = 200  # session, model and source names

SOURCE_APP = "app"  # confirmed or corrected in the app
SOURCE_API = "api"  # sent to the save_drawing endpoint
SOURCE_IMPORT = "import"  # a Kaggle train CSV
SOURCE_SKLEARN = "sklearn-digits"  # scikit-learn's UCI digits
IMPORT_SESSION = "import"  # the session of imported rows (no app session can delete them)

SQLITE_HEADER = b"SQLite format 3\x00"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
APPLICATION_ID = 0x44474E54  # "DGNT" in the file header marks a digitnet drawings database

# A drawing's true label (and a model's answer) may be "not a digit": stored as this number,
# one past the digits, so a label is a small integer whatever it is.
NOT_A_DIGIT = NUM_CLASSES  # 10
NOT_A_DIGIT_TEXT = "not a digit"  # the same as digitnet.predict.NOT_A_LABEL
LABEL_COUNT = NUM_CLASSES + 1  # the digits 0-9, then "not a digit"
LABEL_STRINGS = frozenset(str(label) for label in range(LABEL_COUNT))  # "0" ... "10"

# Version 3's table: the same columns in the same order, the labels 0-9 or NOT_A_DIGIT.
_TABLE_V3 = """CREATE TABLE {name} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            session TEXT NOT NULL,
            pixels BLOB NOT NULL CHECK (length(pixels) = 784),
            model TEXT,
            probs TEXT,
            predicted INTEGER CHECK (predicted BETWEEN 0 AND 10),
            label INTEGER CHECK (label BETWEEN 0 AND 10),
            source TEXT NOT NULL,
            strokes TEXT,
            png BLOB
        )"""
_V3_COLUMNS = (
    "id, created_at, session, pixels, model, probs, predicted, label, source, strokes, png"
)

# Migration i brings a database from schema version i to i + 1. Never edit a released one:
# append a new one. Version 1 kept only the 28x28 input; version 2 keeps the drawing too;
# version 3 lets a label be "not a digit" (10). SQLite cannot change a CHECK constraint, so
# version 3 rebuilds the table: every row is copied with its id, AUTOINCREMENT's counter is
# carried over (a deleted id is never given again), and the indexes are made anew. Version 4
# adds the room's leaderboard (digitnet.room_store): the drawings table is left as it is.
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
    (
        _TABLE_V3.format(name="drawings_v3"),
        f"INSERT INTO drawings_v3 ({_V3_COLUMNS}) SELECT {_V3_COLUMNS} FROM drawings ORDER BY id",
        "DELETE FROM sqlite_sequence WHERE name = 'drawings_v3'",
        "INSERT INTO sqlite_sequence (name, seq) "
        "SELECT 'drawings_v3', seq FROM sqlite_sequence WHERE name = 'drawings'",
        "DROP TABLE drawings",  # its indexes and its sqlite_sequence row go with it
        "ALTER TABLE drawings_v3 RENAME TO drawings",
        "CREATE INDEX drawings_label ON drawings (label)",
        "CREATE INDEX drawings_session ON drawings (session)",
        "CREATE INDEX drawings_source ON drawings (source)",
    ),
    (
        # One published run (or the room's model) per row; ``figures`` is JSON, measured
        # when it was published, so a row outlives its run's files.
        """CREATE TABLE room_entries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            session TEXT NOT NULL,
            nickname TEXT NOT NULL,
            run TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('run', 'room')),
            folder TEXT,
            figures TEXT NOT NULL
        )""",
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
INSERT_SQL = (
    "INSERT INTO drawings (created_at, session, pixels, model, probs, predicted, label, "
    "source, strokes, png) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class StoreError(DigitnetError):
    """A drawings database that cannot be opened or written, or a drawing that is refused."""


@dataclass(frozen=True)
class NewDrawing:
    """One drawing to save (``DrawingStore.save`` explains each field)."""

    pixels: np.ndarray  # the model's 28x28 input
    label: object  # the true label: 0-9 or NOT_A_DIGIT
    model: str | None = None
    probs: Sequence[float] | np.ndarray | None = None
    predicted: object = None
    strokes: object = None
    png: bytes | None = None


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
    predicted: int | None  # the model's answer: a digit, or NOT_A_DIGIT when it refused
    label: int | None  # the true label: a digit, or NOT_A_DIGIT
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
    per_label: list[int]  # labelled rows of each digit 0-9, then of "not a digit"
    per_source: dict[str, int]
    size_bytes: int
    max_bytes: int


# ---------------------------------------------------------------------------
# Checking values before anything is written


def label_text(label: int | None) -> str:
    """A stored label as people read it: "7", or "not a digit" (and "?" for none)."""
    if label is None:
        return "?"
    return NOT_A_DIGIT_TEXT if label == NOT_A_DIGIT else str(label)


def check_label(value: object, what: str = "label") -> int:
    """A label: a digit 0-9 from an int, a whole float or a one-digit string, or
    :data:`NOT_A_DIGIT` from 10 or the text "not a digit"; else a StoreError."""
    label = None
    if isinstance(value, str) and value.strip().lower() == NOT_A_DIGIT_TEXT:
        label = NOT_A_DIGIT
    elif isinstance(value, (bool, np.bool_)):
        label = None  # True is an int to Python, but not a digit anyone chose
    elif isinstance(value, (int, np.integer)):
        label = int(value)
    elif isinstance(value, (float, np.floating)):
        label = int(value) if float(value).is_integer() else None
    elif isinstance(value, str) and value.strip() in LABEL_STRINGS:
        label = int(value.strip())
    if label is None or not 0 <= label <= NOT_A_DIGIT:
        shown = repr(value)[:20]
        raise StoreError(
            f"{what} {shown} is not a label; choose a whole number from 0 to 9, "
            f"or '{NOT_A_DIGIT_TEXT}' (10)"
        )
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


def check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise StoreError(
            f"{what} {repr(value)[:40]} is not a name; give a non-empty text of at most "
            f"{MAX_NAME_CHARS} characters"
        )
    if "\n" in value or "\r" in value:
        raise StoreError(f"{what} {repr(value)[:40]} spans several lines; give one line")
    return value


def check_probs(probs: Sequence[float] | np.ndarray) -> list[float]:
    values = np.asarray(probs, dtype=np.float64).ravel()
    if values.shape != (NUM_CLASSES,) or not np.isfinite(values).all():
        raise StoreError(f"expected 10 probabilities (classes 0-9), got {values.size} values")
    if values.min() < 0.0 or values.max() > 1.0 + 1e-6:
        raise StoreError("probabilities must lie in [0, 1]; pass softmax outputs, not logits")
    return [round(float(v), 6) for v in values.clip(0.0, 1.0)]


def strokes_json(strokes: object) -> str:
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


def stored_drawing(row: Sequence) -> StoredDrawing:
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

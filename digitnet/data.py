"""Reading digits: Kaggle "Digit Recognizer" CSVs and MNIST IDX files.

Every reader returns a :class:`Digits` with images as ``uint8`` arrays of shape
(N, 28, 28), 255 = ink, exactly as stored on disk. Anything that is not a
well-formed file raises :class:`DataError` with one line naming the file and,
for a CSV, the line and column to fix.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from digitnet.config import ConfigError
from digitnet.download import MNIST_FILES, default_cache_dir, file_sha256
from digitnet.errors import DataError

IMAGE_SIZE = 28
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE  # 784
NUM_CLASSES = 10
PIXEL_COLUMNS = [f"pixel{i}" for i in range(NUM_PIXELS)]

# IDX magic numbers: two zero bytes, type 0x08 (unsigned byte), number of dimensions.
IDX_LABELS_MAGIC = 0x00000801
IDX_IMAGES_MAGIC = 0x00000803

# The 8,000 labelled MNIST digits that ship with the repo (Kaggle format, gzipped), so a bare
# clone trains, tests and benchmarks. DIGITNET_DATA or --data point anywhere else.
SAMPLE_DATA = Path(__file__).resolve().parent.parent / "assets" / "mnist-train-8k.csv.gz"
# MNIST's four files as its mirrors serve them, checked against their SHA-256 when read.
MNIST_DIR = Path(__file__).resolve().parent.parent / "assets" / "mnist"
DATA_ENV = "DIGITNET_DATA"

# Standard MNIST file names, without the optional ".gz".
IDX_TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
IDX_TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class Digits:
    """A set of digits: images (N, 28, 28) uint8, labels (N,) int64 or None."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: np.ndarray) -> Digits:
        labels = None if self.labels is None else self.labels[indices]
        return Digits(self.images[indices], labels, self.source)


# ---------------------------------------------------------------------------
# Kaggle CSV


def load_kaggle_csv(path: str | Path, *, require_labels: bool) -> Digits:
    """Read a Kaggle CSV: ``label,pixel0..pixel783`` (train) or ``pixel0..pixel783`` (test).

    With ``require_labels=False`` a ``label`` column is still read if present. Blank
    lines are skipped; error messages count lines as an editor does (the header is line 1).
    """
    path = Path(path)
    name = path.name
    _check_readable_file(path)
    compression = _sniff_compression(path)
    frame = _read_csv_frame(path, as_text=False, compression=compression)
    columns = [str(c).strip() for c in frame.columns]
    _check_header(columns, name, require_labels)
    has_label = "label" in columns
    frame.columns = columns
    if not all(pd.api.types.is_integer_dtype(t) for t in frame.dtypes):
        # A blank line or a cell that is not a whole number: read again as text, drop
        # blank lines (keeping the others' line numbers), and name any bad cell exactly.
        frame = _read_csv_frame(path, as_text=True, compression=compression)
        frame.columns = columns
        frame = frame[~frame.fillna("").eq("").all(axis=1)]
    if len(frame) == 0:
        raise DataError(f"{name}: the header is there but there are no rows of digits")
    pixels = _parse_int_cells(frame[PIXEL_COLUMNS], name, low=0, high=255, what="pixel value")
    labels = None
    if has_label:
        # A copy: pandas may hand back a read-only view, which torch warns about.
        labels = _parse_int_cells(frame[["label"]], name, low=0, high=9, what="label")[:, 0].copy()
    images = pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return Digits(images, labels, str(path))


def _sniff_compression(path: Path) -> str | None:
    """'gzip' for a gzipped CSV; a DataError for a spreadsheet saved under a .csv name."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"PK\x03\x04":
        raise DataError(
            f"{path.name}: this is a zip or Excel file, not a CSV; "
            f"export it as CSV (comma-separated values)"
        )
    return None


def _check_header(columns: list[str], name: str, require_labels: bool) -> None:
    """One clear line for each way a header goes wrong."""
    if len(columns) == 1:
        for separator, called in ((";", "semicolons"), ("\t", "tabs")):
            if separator in columns[0]:
                raise DataError(
                    f"{name}: cells are separated by {called}; "
                    f"save the file with commas between cells"
                )
    if _is_number(columns[0]):
        raise DataError(
            f"{name}: the first line holds numbers, not a header; add the header "
            f"'label,pixel0,...,pixel783' (train) or 'pixel0,...,pixel783' (test)"
        )
    has_label = "label" in columns
    if require_labels and not has_label:
        raise DataError(
            f"{name}: no 'label' column; a training CSV needs the header "
            f"'label,pixel0,...,pixel783' (is this a test CSV?)"
        )
    pixel_columns = [c for c in columns if c != "label"]
    if pixel_columns != PIXEL_COLUMNS:
        found = len(pixel_columns)
        if found != NUM_PIXELS:
            raise DataError(
                f"{name}: expected {NUM_PIXELS} pixel columns pixel0..pixel783, "
                f"found {found}; each digit must be 28x28 = 784 values"
            )
        first_wrong = next(i for i, c in enumerate(pixel_columns) if c != PIXEL_COLUMNS[i])
        raise DataError(
            f"{name}: column {first_wrong + 1 + has_label} is "
            f"'{pixel_columns[first_wrong]}', expected '{PIXEL_COLUMNS[first_wrong]}'"
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv_frame(path: Path, *, as_text: bool, compression: str | None) -> pd.DataFrame:
    """pandas' C parser, with its failures turned into one-line DataErrors."""
    name = path.name
    text_options = {"dtype": str, "keep_default_na": False, "na_filter": False} if as_text else {}
    try:
        # Blank lines are kept as empty rows so that row numbers stay line numbers.
        return pd.read_csv(
            path, engine="c", skip_blank_lines=False, compression=compression, **text_options
        )
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{name}: the file is empty; expected a header "
            f"'label,pixel0,...,pixel783' and one row per digit"
        ) from None
    except pd.errors.ParserError as error:
        # pandas says e.g. "Expected 785 fields in line 7, saw 786".
        detail = (
            str(error).strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")
        )
        raise DataError(
            f"{name}: rows have different numbers of cells ({detail}); "
            f"every row needs the same columns as the header"
        ) from None
    except (UnicodeDecodeError, EOFError, OSError) as error:
        raise DataError(
            f"{name}: not a readable text CSV file ({error}); save it as comma-separated values"
        ) from None


def _parse_int_cells(
    frame: pd.DataFrame, name: str, *, low: int, high: int, what: str
) -> np.ndarray:
    """Integer or text cells -> int64 array, or a DataError naming the first bad cell."""
    expected = f"expected a whole {what} from {low} to {high}"
    if all(pd.api.types.is_integer_dtype(t) for t in frame.dtypes):
        values = frame.to_numpy(dtype=np.int64)
        bad = (values < low) | (values > high)
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            raise DataError(
                f"{_where(frame, name, row, col)}: {values[row, col]} is outside "
                f"{low}-{high}; {expected}"
            )
        return values
    as_numbers = frame.apply(pd.to_numeric, errors="coerce")
    values = as_numbers.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < low) | (values > high)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        cell = str(frame.iat[row, col])
        value = values[row, col]
        where = _where(frame, name, row, col)
        if cell.strip() == "":
            raise DataError(f"{where} is empty; every cell needs a {what}")
        if not np.isfinite(value):
            raise DataError(f"{where}: '{cell[:20]}' is not a number; {expected}")
        if value != np.round(value):
            raise DataError(f"{where}: {cell[:20]} is not a whole number; {expected}")
        raise DataError(f"{where}: {cell[:20]} is outside {low}-{high}; {expected}")
    return values.astype(np.int64)


def _where(frame: pd.DataFrame, name: str, row: int, col: int) -> str:
    """'file: line L, column 'C'', with L as an editor counts it (the header is line 1)."""
    return f"{name}: line {int(frame.index[row]) + 2}, column '{frame.columns[col]}'"


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty")


# ---------------------------------------------------------------------------
# MNIST IDX


def load_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) as a uint8 array with the header's shape."""
    path = Path(path)
    _check_readable_file(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DataError(f"{path.name}: broken gzip data ({error}); download it again") from None
    if len(raw) < 8:
        raise DataError(f"{path.name}: too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IDX_LABELS_MAGIC, IDX_IMAGES_MAGIC):
        raise DataError(
            f"{path.name}: wrong magic number 0x{magic:08x}; expected 0x00000801 "
            f"(labels) or 0x00000803 (images) for an MNIST IDX file"
        )
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path.name}: header cut short; the file is truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    body = len(raw) - header_size
    if body != expected:
        raise DataError(
            f"{path.name}: header says {'x'.join(map(str, shape))} = {expected} "
            f"bytes of data but the file holds {body}; it is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def load_idx_pair(images_path: str | Path, labels_path: str | Path) -> Digits:
    """Read an MNIST images file and its labels file into :class:`Digits`."""
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{Path(images_path).name}: expected images of 28x28, found shape {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{Path(labels_path).name}: {labels.shape} labels for "
            f"{len(images)} images; the two files do not belong together"
        )
    if labels.max(initial=0) > 9:
        raise DataError(f"{Path(labels_path).name}: label {labels.max()} is outside 0-9")
    return Digits(images.copy(), labels.astype(np.int64), str(images_path))


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``folder``: plain, gzipped, or with the '.idx' dot variant."""
    variants = [stem, stem.replace("-idx", ".idx")]
    for variant in variants:
        for suffix in ("", ".gz"):
            candidate = folder / f"{variant}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_idx_folder(folder: str | Path, *, split: str = "train") -> Digits:
    """Read the MNIST ``train`` or ``test`` (t10k) pair from a folder of IDX files.

    In the repo's ``assets/mnist`` and the download cache, each file must have the SHA-256
    of MNIST's own: a damaged or replaced file is refused before it is read.
    """
    folder = Path(folder)
    stems = IDX_TRAIN_FILES if split == "train" else IDX_TEST_FILES
    found = [find_idx_file(folder, stem) for stem in stems]
    missing = [stem for stem, path in zip(stems, found) if path is None]
    if missing:
        raise DataError(f"{folder}: no {' or '.join(missing)}[.gz]; expected the MNIST IDX files")
    if folder.resolve() in (MNIST_DIR.resolve(), default_cache_dir().resolve()):
        for path in found:
            check_mnist_file(path)
    return load_idx_pair(found[0], found[1])


def load_mnist(split: str = "train", folder: str | Path = MNIST_DIR) -> Digits:
    """MNIST's 60,000 training digits (``train``) or its 10,000 test digits (``test``)."""
    return load_idx_folder(folder, split=split)


def check_mnist_file(path: Path) -> None:
    """Refuse, in one line, an MNIST file whose SHA-256 is not the one its mirrors serve."""
    expected = MNIST_FILES.get(path.name)
    if expected is None:
        raise DataError(f"{path}: not one of MNIST's four .gz files; restore assets/mnist")
    if file_sha256(path) != expected:
        raise DataError(
            f"{path}: its SHA-256 is not MNIST's, so the file is damaged or replaced; "
            f"restore it (git checkout -- assets/mnist) or run 'python -m digitnet download'"
        )


# ---------------------------------------------------------------------------
# Dispatch, splits and summaries


def load_training_data(path: str | Path) -> Digits:
    """Labelled digits from a Kaggle train CSV, an IDX images file, or a folder of either."""
    path = Path(path)
    if path.is_dir():
        if (path / "train.csv").is_file():
            return load_kaggle_csv(path / "train.csv", require_labels=True)
        if find_idx_file(path, IDX_TRAIN_FILES[0]) is not None:
            return load_idx_folder(path, split="train")
        raise DataError(f"{path}: found neither train.csv nor MNIST IDX files in this folder")
    if _looks_like_idx(path):
        labels_path = path.parent / path.name.replace("images-idx3", "labels-idx1").replace(
            "images.idx3", "labels.idx1"
        )
        if labels_path == path or not labels_path.is_file():
            raise DataError(f"{path.name}: an IDX images file needs its labels file beside it")
        return load_idx_pair(path, labels_path)
    return load_kaggle_csv(path, require_labels=True)


def default_data() -> str:
    """Where training data comes from when none is named: $DIGITNET_DATA, else MNIST's 60,000
    training digits in assets/mnist."""
    return os.environ.get(DATA_ENV) or str(MNIST_DIR)


def load_training_sources(paths: Sequence[str | Path]) -> tuple[Digits, list[dict]]:
    """Labelled digits from one or more sources, concatenated in the order given.

    Each source is anything :func:`load_training_data` reads. Returns the digits (their
    ``source`` joins the names with " + ") and :func:`summarize` of each source, so a
    run's metadata records where every digit came from.
    """
    if not paths:
        raise DataError("no data given; name a Kaggle train CSV, an IDX file or a folder")
    parts = [load_training_data(path) for path in paths]
    summaries = [summarize(part) for part in parts]
    if len(parts) == 1:
        return parts[0], summaries
    digits = Digits(
        np.concatenate([part.images for part in parts]),
        np.concatenate([part.labels for part in parts]),
        " + ".join(part.source for part in parts),
    )
    return digits, summaries


def _looks_like_idx(path: Path) -> bool:
    return "idx3" in path.name or "idx1" in path.name


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of indices keeping each class's share; returns sorted (train, val) indices.

    scikit-learn's ``train_test_split(stratify=)`` does the work. A class with a single
    digit cannot be split, so it trains; every other class keeps at least one digit on
    each side.
    """
    # Imported here: scikit-learn costs half a second, and the app never splits.
    from sklearn.model_selection import train_test_split

    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    everything = np.arange(len(labels))
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    splittable = everything[counts[labels] >= 2]
    classes = int(np.count_nonzero(counts >= 2))
    # At least one validation digit per class; at least one training digit per class.
    val_count = min(max(round(len(splittable) * val_fraction), classes), len(splittable) - classes)
    if val_fraction == 0 or classes == 0 or val_count < 1:
        return everything, everything[:0]
    train, val = train_test_split(
        splittable, test_size=val_count, stratify=labels[splittable], random_state=seed
    )
    singles = everything[counts[labels] < 2]
    return np.sort(np.concatenate([train, singles])), np.sort(val)


def class_counts(labels: np.ndarray) -> list[int]:
    """How many digits of each class 0-9."""
    return np.bincount(labels, minlength=NUM_CLASSES)[:NUM_CLASSES].tolist()


def fingerprint(digits: Digits) -> str:
    """A short SHA-256 of the images and labels, to tell which data trained a model."""
    digest = hashlib.sha256(np.ascontiguousarray(digits.images).tobytes())
    if digits.labels is not None:
        digest.update(np.ascontiguousarray(digits.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def rows_fingerprint(rows: np.ndarray) -> str:
    """A short SHA-256 of a set of row numbers: which digits a split held out."""
    ordered = np.sort(np.asarray(rows, dtype=np.int64))
    return hashlib.sha256(ordered.tobytes()).hexdigest()[:16]


def summarize(digits: Digits) -> dict:
    """Counts per class, total, and the fingerprint, for logs and metadata."""
    summary = {"source": digits.source, "count": len(digits), "fingerprint": fingerprint(digits)}
    if digits.labels is not None:
        summary["class_counts"] = class_counts(digits.labels)
    return summary

"""Where the app keeps what it keeps, and whether it survives a restart.

A Hugging Face Space's container disk is wiped at every restart, rebuild or out-of-memory
kill; its persistent storage, when the owner turns it on, is mounted at ``/data``. So the
drawings database and the app's runs default under that folder where there is one, and
under ``runs/`` (git-ignored) elsewhere. ``$DIGITNET_PERSISTENT_DIR`` names another folder
that survives (and lets tests stand a temporary folder in for ``/data``).
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from digitnet.store_schema import DEFAULT_MAX_DB_BYTES, SQLITE_HEADER, StoreError

DB_ENV = "DIGITNET_DB"  # the database's path when no path is given
MAX_MB_ENV = "DIGITNET_DB_MAX_MB"  # the database's size cap in MiB when none is given
RUNS_ENV = "DIGITNET_RUNS_DIR"  # the folder the app's runs are saved in
PERSISTENT_ENV = "DIGITNET_PERSISTENT_DIR"  # a folder that survives restarts
SPACE_ENV = "SPACE_ID"  # set by Hugging Face Spaces
SPACE_PERSISTENT_DIR = Path("/data")  # where a Space's persistent storage is mounted
DB_NAME = "drawings.sqlite"
DEFAULT_DB_PATH = Path("runs") / DB_NAME  # runs/ is git-ignored
DEFAULT_RUNS_DIR = Path("runs") / "app"


def on_space(environ: Mapping[str, str]) -> bool:
    """Whether this runs on a Hugging Face Space, where visitors are strangers."""
    return bool(environ.get(SPACE_ENV, "").strip())


def persistent_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder that survives a restart: ``$DIGITNET_PERSISTENT_DIR``, else ``/data`` on a
    Space; None when there is none, or it is missing or read-only (then nothing survives)."""
    environ = os.environ if environ is None else environ
    named = environ.get(PERSISTENT_ENV, "").strip()
    folder = Path(named).expanduser() if named else None
    if folder is None and on_space(environ):
        folder = SPACE_PERSISTENT_DIR
    if folder is None or not folder.is_dir() or not _is_writable(folder):
        return None
    return folder


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    """``drawings.sqlite`` in the persistent folder, else ``runs/drawings.sqlite``."""
    folder = persistent_dir(environ)
    return folder / DB_NAME if folder is not None else DEFAULT_DB_PATH


def default_runs_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$DIGITNET_RUNS_DIR``, else ``runs/app`` in the persistent folder, else ``runs/app``."""
    environ = os.environ if environ is None else environ
    named = environ.get(RUNS_ENV, "").strip()
    if named:
        return Path(named).expanduser()
    folder = persistent_dir(environ)
    return folder / DEFAULT_RUNS_DIR if folder is not None else DEFAULT_RUNS_DIR


def resolve_db_path(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The argument, else ``$DIGITNET_DB``, else :func:`default_db_path`."""
    environ = os.environ if environ is None else environ
    if path is not None and str(path).strip():
        return Path(path).expanduser()
    from_env = environ.get(DB_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else default_db_path(environ)


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


@dataclass(frozen=True)
class Storage:
    """Where the app keeps drawings and runs, and whether they outlive a restart."""

    db_path: Path
    runs_dir: Path
    space: bool  # on a Hugging Face Space, whose own disk is wiped at every restart
    persistent: Path | None  # the folder that survives, if any

    def survives(self, path: Path) -> bool:
        """Off a Space, the disk survives; on one, only the persistent folder does."""
        if not self.space:
            return True
        if self.persistent is None:
            return False
        return path.resolve().is_relative_to(self.persistent.resolve())

    @property
    def log_line(self) -> str:
        """For the operator's log at start: both paths, and whether they survive."""

        def kept(path: Path) -> str:
            return "survives restarts" if self.survives(path) else "LOST at every restart"

        return (
            f"drawings kept in {self.db_path} ({kept(self.db_path)}); "
            f"runs in {self.runs_dir} ({kept(self.runs_dir)})"
        )

    @property
    def notice(self) -> str | None:
        """A warning for the page, without server paths, when a Space keeps nothing."""
        if self.survives(self.db_path):
            return None
        return (
            "This Space has no persistent storage: the drawings people keep and the runs "
            "they train are lost whenever it restarts or is rebuilt. Its owner can turn "
            "persistent storage on in the Space's settings."
        )


def storage_of(
    db_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Storage:
    """Where drawings (``db_path``, see :func:`resolve_db_path`) and runs are kept."""
    environ = os.environ if environ is None else environ
    return Storage(
        resolve_db_path(db_path, environ),
        default_runs_dir(environ),
        on_space(environ),
        persistent_dir(environ),
    )


def _is_writable(path: Path) -> bool:
    # The mode bits count too: root passes os.access whatever they say, but a file or
    # folder someone marked read-only should not be written by an app run as root either.
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def check_location(path: Path) -> None:
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


def sqlite_error_name(error: sqlite3.Error) -> str:
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


def _done(action: str) -> str:
    return {"save": "saved", "import": "imported", "delete": "deleted"}.get(action, "changed")


def damaged_error(path: Path, detail: str) -> StoreError:
    detail = " ".join(detail.split())[:100]
    return StoreError(
        f"{path}: the database is damaged ({detail}); move it aside to start a new "
        f"one (sqlite3's .recover may rescue its rows), or choose another --db or {DB_ENV}"
    )


def sqlite_error(
    path: Path, error: sqlite3.Error, action: str, used: int, cap: int, busy_ms: int
) -> StoreError:
    """One line for an SQLite failure while trying to ``action`` (open / save / read);
    ``used`` and ``cap`` (bytes) tell a full database from a full disk."""
    name = sqlite_error_name(error)
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return damaged_error(path, str(error))
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(
            f"{path}: another program kept the database locked for over "
            f"{busy_ms / 1000:g} s, so nothing was {_done(action)}; try again"
        )
    if name.startswith("SQLITE_FULL"):
        if used + 16 * 2**10 >= cap:
            return StoreError(
                f"{path}: the drawings database is full ({used / 2**20:.1f} MiB of its "
                f"{cap / 2**20:.1f} MiB cap), so nothing was {_done(action)}; export and "
                f"delete drawings, or raise the cap with {MAX_MB_ENV}"
            )
        return StoreError(
            f"{path}: the disk is full, so nothing was {_done(action)}; free some space"
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")):
        return StoreError(
            f"{path}: the database is read-only, so nothing was {_done(action)}; "
            f"make it and its folder writable or choose another --db or {DB_ENV}"
        )
    if name.startswith("SQLITE_CANTOPEN"):
        return StoreError(
            f"{path}: SQLite cannot open the file ({error}); check the path and "
            f"its permissions or choose another --db or {DB_ENV}"
        )
    return StoreError(f"{path}: could not {action} ({name}: {error}); check the disk and the file")

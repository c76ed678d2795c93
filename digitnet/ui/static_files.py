"""The UI's own files (JS, CSS, HTML templates) and the URLs Gradio serves files at."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import gradio as gr
from gradio.data_classes import _StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"


def read_static(name: str) -> str:
    """The text of ``static/NAME`` (a component's template, CSS or JS)."""
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def served_path(path: str | Path) -> str:
    """How a page names a file Gradio serves: relative to the working folder (the app's
    own folder, on a Space), so that no URL shows where the server keeps its files; an
    absolute path only for a file outside it."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(resolved)


def file_url(path: str | Path) -> str:
    """A page-relative URL for a file Gradio may serve (see ``gr.set_static_paths``).

    A hash of the content rides along, so browsers cache the file until it changes.
    """
    path = Path(path).resolve()
    stat = path.stat()
    version = content_version(path, stat.st_mtime_ns, stat.st_size)
    return f"gradio_api/file={quote(served_path(path))}?v={version}"


@functools.lru_cache(maxsize=256)
def content_version(path: Path, mtime_ns: int, size: int) -> str:
    """A short hash of the file's content, read once while its time and size stay the same:
    the pad's model list is rebuilt whenever a run ends, and the models are megabytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


_serving_lock = threading.Lock()


def serve_files(paths: Iterable[str | Path]) -> None:
    """Let Gradio serve these files as they are (``gr.set_static_paths``), each once, and stop
    listing the files that are gone (evicted runs).

    Gradio checks every file an event returns against every static path, resolving both, on
    the event loop. Added once per finished run and per session following it, the list grew
    without end: 20 learners sharing one run made 20 copies, and each later answer with a
    file paid for all of them (1.8 s of a room's event loop, measured with py-spy).
    """
    with _serving_lock:
        listed = [path for path in _StaticFiles.all_paths if path.exists()]
        new = {Path(path).resolve() for path in paths} - set(listed)
        # A new list, not an edit of the old one: the event loop may be reading it.
        _StaticFiles.all_paths = listed
        if new:
            gr.set_static_paths(sorted(new))


SERVED_DIR_NAME = "digitnet-served"
SERVED_RUNS_KEPT = 200  # runs' served copies kept in the temp folder, newest used first


def served_folder(folder: Path) -> Path:
    """Where files of ``folder`` (a run's) are served from: the folder itself when Gradio may
    serve it (under the working folder or the temp folder), else one folder per run under the
    temp folder (a Space keeps runs under /data), made once and shared by every session."""
    resolved = folder.resolve()
    for root in (Path.cwd(), Path(tempfile.gettempdir())):
        if resolved.is_relative_to(root.resolve()):
            return resolved
    copies = Path(tempfile.gettempdir()) / SERVED_DIR_NAME
    served = copies / hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    if not served.is_dir():
        served.mkdir(parents=True, exist_ok=True)
        _forget_oldest(copies, keep=SERVED_RUNS_KEPT)
    return served


def _forget_oldest(copies: Path, keep: int) -> None:
    folders = sorted(copies.iterdir(), key=lambda path: path.stat().st_mtime, reverse=True)
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def servable(path: Path) -> Path:
    """``path`` where Gradio may serve it: itself, or a copy in its run's ``served_folder``,
    made once (a room of 20 following one run was sent 20 copies of its zip)."""
    served = served_folder(path.parent) / path.name
    if served != path.resolve() and not served.exists():
        partial = served.with_name(f".{served.name}.{threading.get_ident()}")
        shutil.copyfile(path, partial)
        os.replace(partial, served)  # whole or absent, for a session reading it meanwhile
    return served


def page_css(*names: str) -> str:
    """Page-level CSS: the named static files, one after another."""
    return "\n".join(read_static(name) for name in names)

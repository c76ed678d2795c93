"""The UI's own files (JS, CSS, HTML templates) and the URLs Gradio serves files at."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from urllib.parse import quote

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


def page_css(*names: str) -> str:
    """Page-level CSS: the named static files, one after another."""
    return "\n".join(read_static(name) for name in names)

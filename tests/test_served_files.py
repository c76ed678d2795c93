"""Files the app serves to many sessions are made once and listed once: a room of 20
following one run shares its zip, its mistakes and its web model."""

from __future__ import annotations

import base64
import tempfile

import numpy as np
import pytest
from gradio.data_classes import _StaticFiles
from PIL import Image

from digitnet.ui.run_figures import mistake_files
from digitnet.ui.static_files import servable, serve_files


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """A working folder, a temp folder and a data folder outside both (a Space's /data)."""
    for name in ("work", "temp", "data"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    monkeypatch.setattr(_StaticFiles, "all_paths", list(_StaticFiles.all_paths))
    return tmp_path


def test_a_file_is_served_once_and_forgotten_when_gone(outside):
    model = outside / "data" / "run-1.web"
    model.write_bytes(b"weights")
    before = len(_StaticFiles.all_paths)
    for _ in range(20):  # twenty sessions following the same run
        serve_files([model])
    assert _StaticFiles.all_paths.count(model.resolve()) == 1
    assert len(_StaticFiles.all_paths) == before + 1
    model.unlink()  # the run was evicted
    serve_files([])
    assert model.resolve() not in _StaticFiles.all_paths


def test_a_run_outside_the_served_folders_is_copied_once(outside):
    run = outside / "data" / "abc123"
    run.mkdir()
    archive = run / "run-1.zip"
    archive.write_bytes(b"zip")
    first = servable(archive)
    assert first != archive and first.is_relative_to(outside / "temp")
    assert first.read_bytes() == b"zip"
    assert servable(archive) == first  # the same copy for the next session
    assert [p.name for p in first.parent.iterdir()] == ["run-1.zip"]  # no partial left
    inside = outside / "work" / "run-2.zip"
    inside.write_bytes(b"zip")
    assert servable(inside) == inside.resolve()


def test_mistakes_are_written_once_as_png(outside):
    digit = (np.arange(784) % 256).astype(np.uint8)
    pixels = base64.b64encode(digit.tobytes()).decode()
    mistake = {"pixels": pixels, "predicted": 7, "true": 1, "confidence": 0.9}
    metadata = {
        "metrics": {"validation": {"mistakes": [{**mistake, "true": 1, "confidence": 0.9}]}}
    }
    folder = outside / "work"
    gallery = mistake_files(metadata, folder)
    assert [caption for _, caption in gallery] == ["said 7, was 1 (90%)"]
    path = gallery[0][0]
    written = Image.open(path)
    assert written.format == "PNG" and written.size == (112, 112)
    stamp = (folder / path).stat().st_mtime_ns
    assert mistake_files(metadata, folder) == gallery
    assert (folder / path).stat().st_mtime_ns == stamp  # not written again

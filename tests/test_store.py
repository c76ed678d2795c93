"""digitnet.store and digitnet.drawing_data: the SQLite store of drawings, imports, exports."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, assert_one_line, write_kaggle_csv
from PIL import Image
from torch import nn

from digitnet import store as store_module
from digitnet import store_schema
from digitnet.data import load_kaggle_csv, load_training_data
from digitnet.drawing_data import (
    UCI_DIGITS,
    accuracy_on_drawings,
    answers_from_probs,
    count_not_digits,
    export_kaggle_csv,
    import_kaggle_csv,
    import_sklearn_digits,
    load_uci_digits,
    model_answers,
    save_image_file,
    split_by_seed,
    wilson_interval,
)
from digitnet.errors import DigitnetError, ImageError
from digitnet.store import (
    APPLICATION_ID,
    DB_ENV,
    DEFAULT_DB_PATH,
    MAX_MB_ENV,
    NOT_A_DIGIT,
    SCHEMA_VERSION,
    SOURCE_SKLEARN,
    StoreError,
    drawing_png,
    label_text,
    open_store,
    resolve_db_path,
    resolve_max_bytes,
)

SAMPLE_CSV = REPO / "assets" / "mnist-train-8k.csv.gz"

# Schema version 1 exactly as it was released: a frozen copy, so that a change to
# MIGRATIONS[0] cannot hide a break in upgrading real version-1 files.
SCHEMA_V1 = """
CREATE TABLE drawings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    session TEXT NOT NULL,
    pixels BLOB NOT NULL CHECK (length(pixels) = 784),
    model TEXT,
    probs TEXT,
    predicted INTEGER CHECK (predicted BETWEEN 0 AND 9),
    label INTEGER CHECK (label BETWEEN 0 AND 9),
    source TEXT NOT NULL
);
CREATE INDEX drawings_label ON drawings (label);
"""
# Version 2 as released: version 1 plus the drawing itself (frozen too).
SCHEMA_V2 = (
    SCHEMA_V1
    + """
ALTER TABLE drawings ADD COLUMN strokes TEXT;
ALTER TABLE drawings ADD COLUMN png BLOB;
CREATE INDEX drawings_session ON drawings (session);
CREATE INDEX drawings_source ON drawings (source);
"""
)

# A writer that acknowledges each save on stdout once save() has returned.
SAVING_CHILD = """
import sys
import numpy as np
from digitnet.store import open_store

store = open_store(sys.argv[1])
pixels = np.full((28, 28), 200, dtype=np.uint8)
for index in range(100_000):
    saved = store.save(pixels, index % 10, session="child", strokes=[[index, index]])
    print(saved.id, index % 10, flush=True)
"""


@pytest.fixture(scope="module")
def mnist_sample():
    """300 real labelled MNIST digits from the sample that ships in the repo."""
    return load_training_data(SAMPLE_CSV).subset(np.arange(300))


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "drawings.sqlite") as opened:
        yield opened


def ink(seed: int = 0) -> np.ndarray:
    """A non-blank 28x28 uint8 input."""
    return np.random.default_rng(seed).integers(1, 256, size=(28, 28), dtype=np.uint8)


def png_file(path: Path, image: Image.Image) -> Path:
    image.save(path, format="PNG")
    return path


def seven_on_canvas() -> Image.Image:
    """A thick dark 7 on a white 200x200 canvas."""
    canvas = np.full((200, 200), 255, dtype=np.uint8)
    canvas[40:56, 50:150] = 0
    for row in range(56, 170):
        column = 150 - (row - 56) * 60 // 114
        canvas[row, column - 8 : column + 8] = 0
    return Image.fromarray(canvas, mode="L")


def store_error(call, *args, **kwargs) -> str:
    with pytest.raises(StoreError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# ---------------------------------------------------------------------------
# Opening, the file's settings, the default path


def test_a_new_store_is_wal_full_sync_versioned_and_marked_ours(tmp_path):
    path = tmp_path / "new" / "drawings.sqlite"  # the folder is created too
    with open_store(path) as store:
        assert store._connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    outside = sqlite3.connect(path)
    assert outside.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outside.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert outside.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    outside.close()


def test_the_path_comes_from_the_argument_then_the_environment_then_runs(monkeypatch, tmp_path):
    for name in (DB_ENV, "SPACE_ID", "DIGITNET_PERSISTENT_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_db_path() == DEFAULT_DB_PATH == Path("runs/drawings.sqlite")
    monkeypatch.setenv(DB_ENV, str(tmp_path / "env.sqlite"))
    assert resolve_db_path() == tmp_path / "env.sqlite"
    assert resolve_db_path(tmp_path / "arg.sqlite") == tmp_path / "arg.sqlite"
    # The default folder must stay out of git.
    ignored = (REPO / ".gitignore").read_text().split()
    assert "runs/" in ignored


def test_the_size_cap_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv(MAX_MB_ENV, raising=False)
    assert resolve_max_bytes() == store_schema.DEFAULT_MAX_DB_BYTES
    assert resolve_max_bytes(2**20) == 2**20
    monkeypatch.setenv(MAX_MB_ENV, "1.5")
    assert resolve_max_bytes() == 3 * 2**19
    monkeypatch.setenv(MAX_MB_ENV, "lots")
    assert_one_line(store_error(resolve_max_bytes), MAX_MB_ENV, "megabytes")


# ---------------------------------------------------------------------------
# Saving and reading back


def test_save_returns_the_id_and_count_and_keeps_every_field(store):
    probs = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.6, 0.08, 0.04])
    image = np.linspace(0.0, 1.0, 784, dtype=np.float32).reshape(28, 28)  # canvas_to_mnist-like
    png = drawing_png(seven_on_canvas())
    first = store.save(
        image,
        9,
        session="s1",
        model="MLP",
        probs=probs,
        strokes=[[[1, 2], [3, 4]]],
        png=png,
    )
    second = store.save(ink(), "4", session="s1", source="api", predicted=4)
    assert (first.count, second.count) == (1, 2)
    assert second.id > first.id
    newest, oldest = store.list_drawings()
    assert newest.id == second.id and newest.label == 4 and newest.source == "api"
    assert oldest.label == 9 and oldest.predicted == 7 and not oldest.is_correct
    assert oldest.model == "MLP" and oldest.session == "s1" and oldest.source == "app"
    np.testing.assert_allclose(oldest.probs, probs, atol=1e-6)
    np.testing.assert_array_equal(oldest.pixels, np.rint(image * 255).astype(np.uint8))
    assert oldest.strokes == "[[[1,2],[3,4]]]" and oldest.png == png
    assert oldest.created_at.endswith("+00:00")
    assert Image.open(io.BytesIO(png)).size[0] <= store_schema.PNG_MAX_SIDE


def test_save_image_file_preprocesses_classifies_and_keeps_a_png(store, tmp_path):
    from digitnet.checkpoint import load_checkpoint

    model, _ = load_checkpoint("mlp")
    path = png_file(tmp_path / "seven.png", seven_on_canvas())
    saved = save_image_file(store, path, 7, session="api-session", model_name="mlp", model=model)
    (row,) = store.list_drawings()
    assert (saved.id, saved.count) == (row.id, 1)
    assert row.label == 7 and row.model == "mlp" and row.predicted == 7 and row.source == "api"
    assert row.pixels.max() == 255 and Image.open(io.BytesIO(row.png)).size == (200, 200)


# ---------------------------------------------------------------------------
# Bad input writes nothing


@pytest.mark.parametrize("label", [-1, 11, 3.5, "x", "12", "", None, True, [3], "not a"])
def test_a_label_outside_0_to_9_is_one_line_and_writes_nothing(store, tmp_path, label):
    message = store_error(store.save, ink(), label, session="s")
    assert_one_line(message, "0 to 9")
    path = png_file(tmp_path / "seven.png", seven_on_canvas())
    assert_one_line(store_error(save_image_file, store, path, label, session="s"), "0 to 9")
    assert store.count() == 0


@pytest.mark.parametrize("label", [7, 7.0, "7", " 7 ", np.int64(7)])
def test_labels_arrive_as_ints_floats_or_strings(store, label):
    store.save(ink(), label, session="s")
    assert store.list_drawings()[0].label == 7


@pytest.mark.parametrize("label", ["not a digit", " Not a digit ", 10, "10", 10.0])
def test_a_drawing_may_be_kept_as_not_a_digit(store, tmp_path, label):
    store.save(ink(), label, session="s", predicted="not a digit")
    (row,) = store.list_drawings()
    assert (row.label, row.predicted, row.is_correct) == (NOT_A_DIGIT, NOT_A_DIGIT, True)
    assert label_text(row.label) == "not a digit" and label_text(7) == "7"
    path = png_file(tmp_path / "seven.png", seven_on_canvas())
    assert save_image_file(store, path, label, session="s").count == 2
    assert store.counts_per_label() == [0] * 10 + [2]


def test_a_non_image_or_a_blank_drawing_is_one_line_and_writes_nothing(store, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(ImageError) as caught:
        save_image_file(store, text, 3, session="s")
    assert_one_line(str(caught.value), "notes.png")
    blank = png_file(tmp_path / "blank.png", Image.new("L", (200, 200), 255))
    assert_one_line(store_error(save_image_file, store, blank, 3, session="s"), "blank")
    assert_one_line(store_error(store.save, np.zeros((28, 28), np.uint8), 3, session="s"), "blank")
    assert_one_line(store_error(store.save, np.ones((20, 20), np.uint8), 3, session="s"), "28x28")
    too_bright = np.full((28, 28), 2.0, dtype=np.float32)
    assert_one_line(store_error(store.save, too_bright, 3, session="s"), "[0, 1]")
    assert_one_line(store_error(store.save, ink(), 3, session="s", probs=[0.5] * 3), "10")
    assert_one_line(store_error(store.save, ink(), 3, session="s", png=b"GIF89a"), "PNG")
    assert_one_line(store_error(store.save, ink(), 3, session=""), "session")
    assert store.count() == 0


# ---------------------------------------------------------------------------
# Many writers, and a kill -9


@pytest.mark.parametrize("connections", ["one store shared", "one store per thread"])
def test_20_threads_saving_10_drawings_each_store_all_200(tmp_path, connections):
    path = tmp_path / "drawings.sqlite"
    shared = open_store(path)
    problems: list[str] = []
    ids: list[tuple[int, int]] = []
    start = threading.Barrier(20)

    def writer(thread: int) -> None:
        store = shared if connections == "one store shared" else open_store(path)
        start.wait()  # all at once, to make them collide
        try:
            for index in range(10):
                saved = store.save(ink(thread), (thread + index) % 10, session=f"s{thread}")
                ids.append((saved.id, (thread + index) % 10))
        except DigitnetError as error:  # "database is locked" would land here
            problems.append(str(error))

    threads = [threading.Thread(target=writer, args=(thread,)) for thread in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert shared.count() == 200 and len({saved_id for saved_id, _ in ids}) == 200
    labels = {row.id: row.label for row in shared.list_drawings(limit=1000)}
    assert all(labels[saved_id] == label for saved_id, label in ids)
    for thread in range(20):
        assert shared.count(session=f"s{thread}") == 10


def test_another_process_holding_the_lock_too_long_is_one_line_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    store = open_store(tmp_path / "drawings.sqlite")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program's long write
    assert_one_line(store_error(store.save, ink(), 1, session="s"), str(store.path), "try again")
    other.execute("ROLLBACK")
    assert store.save(ink(), 1, session="s").count == 1


def test_every_acknowledged_save_survives_a_sigkill(tmp_path):
    path = tmp_path / "drawings.sqlite"
    script = tmp_path / "child.py"
    script.write_text(SAVING_CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    acknowledged = {}
    try:
        for line in child.stdout:
            saved_id, label = (int(part) for part in line.split())
            acknowledged[saved_id] = label
            if len(acknowledged) == 50:
                break
        os.kill(child.pid, signal.SIGKILL)  # while it is saving more
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL and len(acknowledged) == 50
    with open_store(path) as store:
        rows = {row.id: row.label for row in store.list_drawings(limit=1000)}
    assert len(rows) >= 50
    assert {saved_id: rows.get(saved_id) for saved_id in acknowledged} == acknowledged


# ---------------------------------------------------------------------------
# Bad database files: one line naming the file, and the file left as it was


def _damage(path: Path, start: int, end: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(start)
        handle.write(b"\xa5" * (end - start))


@pytest.fixture
def filled_path(tmp_path) -> Path:
    """A store of 40 drawings with strokes (several pages), closed."""
    path = tmp_path / "drawings.sqlite"
    with open_store(path) as store:
        for index in range(40):
            store.save(ink(index), index % 10, session="s", strokes=[[i, i] for i in range(200)])
    return path


@pytest.mark.parametrize(
    ("start", "end"), [(16, 100), (100, 4096), (4096, 3 * 4096)], ids=["header", "page1", "pages"]
)
def test_a_damaged_database_is_one_line_naming_the_file(filled_path, start, end):
    _damage(filled_path, start, end)
    before = filled_path.read_bytes()
    assert_one_line(store_error(open_store, filled_path), str(filled_path), "damaged")
    assert filled_path.read_bytes() == before


def test_another_programs_database_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "shop.db"
    foreign = sqlite3.connect(path)
    foreign.execute("CREATE TABLE customers (name TEXT)")
    foreign.execute("INSERT INTO customers VALUES ('Ada')")
    foreign.commit()
    foreign.close()
    before = path.read_bytes()
    message = store_error(open_store, path)
    assert_one_line(message, str(path), "another program", "customers", "--db")
    assert path.read_bytes() == before and not Path(f"{path}-wal").exists()


@pytest.mark.parametrize(
    "content", [b"label,pixel0\n3,0\n", b"\x89PNG\r\n\x1a\n" + bytes(64)], ids=["csv", "png"]
)
def test_a_file_that_is_not_sqlite_is_one_line_naming_it(tmp_path, content):
    path = tmp_path / "drawings.sqlite"
    path.write_bytes(content)
    assert_one_line(store_error(open_store, path), str(path), "not an SQLite database")
    assert path.read_bytes() == content


def test_a_read_only_file_or_folder_is_one_line_naming_it(filled_path):
    filled_path.chmod(0o444)
    try:
        message = store_error(open_store, filled_path)
    finally:
        filled_path.chmod(0o644)
    assert_one_line(message, str(filled_path), "read-only", "writable")
    folder = filled_path.parent
    folder.chmod(0o555)
    try:
        message = store_error(open_store, filled_path)
        new_file = store_error(open_store, folder / "new.sqlite")
    finally:
        folder.chmod(0o755)
    assert_one_line(message, str(filled_path), "read-only", "folder")
    assert_one_line(new_file, "new.sqlite", "read-only")


def test_a_folder_or_a_newer_schema_is_one_line(tmp_path, filled_path):
    assert_one_line(store_error(open_store, tmp_path), str(tmp_path), "folder")
    connection = sqlite3.connect(filled_path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.commit()
    connection.close()
    assert_one_line(store_error(open_store, filled_path), str(filled_path), "newer digitnet")


def test_store_errors_are_digitnet_errors():
    assert issubclass(StoreError, DigitnetError)


# ---------------------------------------------------------------------------
# Migration


def test_a_version_1_database_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_V1)
    old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old.execute("PRAGMA user_version = 1")
    old.execute(
        "INSERT INTO drawings (created_at, session, pixels, model, probs, predicted, label, "
        "source) VALUES ('2024-01-01T00:00:00.000+00:00', 'old', ?, 'mlp', NULL, 2, 3, 'app')",
        [ink().tobytes()],
    )
    old.commit()
    old.close()
    with open_store(path) as store:
        (row,) = store.list_drawings()
        assert (row.label, row.predicted, row.session) == (3, 2, "old")
        assert row.strokes is None and row.png is None
        np.testing.assert_array_equal(row.pixels, ink())
        saved = store.save(ink(1), 5, session="new", png=drawing_png(seven_on_canvas()))
        assert saved.count == 2 and store.list_drawings()[0].png is not None
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    check.close()


def test_a_version_2_database_is_rebuilt_keeping_every_row_and_id(tmp_path):
    """Version 3 lets a label be "not a digit": SQLite cannot change a CHECK, so the table is
    rebuilt; every row keeps its id and values, and a deleted id is never given again."""
    path = tmp_path / "v2.sqlite"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_V2)
    old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old.execute("PRAGMA user_version = 2")
    insert = (
        "INSERT INTO drawings (created_at, session, pixels, model, probs, predicted, label, "
        "source, strokes, png) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    png = drawing_png(seven_on_canvas())
    for index in range(5):
        old.execute(
            insert,
            [f"2024-01-0{index + 1}T00:00:00.000+00:00", f"s{index % 2}", ink(index).tobytes()]
            + ["mlp", "[0.1]", index, (index + 1) % 10, "app", f"[[{index}]]", png],
        )
    with pytest.raises(sqlite3.IntegrityError):
        old.execute(insert, ["t", "s", ink().tobytes(), None, None, None, 10, "app", None, None])
    old.execute("DELETE FROM drawings WHERE id IN (2, 5)")  # the newest id too
    old.commit()
    before = old.execute("SELECT * FROM drawings ORDER BY id").fetchall()
    old.close()

    with open_store(path) as store:
        assert store.count() == 3
        saved = store.save(ink(9), "not a digit", session="new", predicted=10)
        assert saved.id == 6  # not 5: the deleted id stays unused
        assert store.list_drawings(digit=10)[0].id == 6
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert check.execute("SELECT * FROM drawings WHERE id < 6 ORDER BY id").fetchall() == before
    indexes = {
        row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert {"drawings_label", "drawings_session", "drawings_source"} <= indexes
    tables = [
        row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    assert sorted(tables) == ["drawings", "room_entries", "sqlite_sequence"]  # no drawings_v3
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with pytest.raises(sqlite3.IntegrityError):  # the new CHECK still bounds the labels
        check.execute(insert, ["t", "s", ink().tobytes(), None, None, None, 11, "app", None, None])
    check.close()


# ---------------------------------------------------------------------------
# Caps


def test_a_drawing_over_the_per_row_cap_is_refused(tmp_path):
    with open_store(tmp_path / "d.sqlite", max_drawing_bytes=2000) as store:
        big_png = b"\x89PNG\r\n\x1a\n" + bytes(3000)
        assert_one_line(store_error(store.save, ink(), 1, session="s", png=big_png), "cap")
        long_strokes = [[i, i] for i in range(500)]
        assert_one_line(store_error(store.save, ink(), 1, session="s", strokes=long_strokes), "cap")
        assert store.count() == 0
        store.save(ink(), 1, session="s", png=drawing_png(seven_on_canvas()))
        assert store.count() == 1


def test_a_full_database_says_so_and_writes_nothing_until_space_is_freed(tmp_path):
    with open_store(tmp_path / "d.sqlite", max_bytes=96 * 2**10) as store:
        strokes = [[i, i] for i in range(1500)]  # ~10 KB each
        saved = []
        with pytest.raises(StoreError) as caught:
            for index in range(100):
                saved.append(store.save(ink(index), index % 10, session="s", strokes=strokes).id)
        assert_one_line(str(caught.value), str(store.path), "full", MAX_MB_ENV)
        assert 0 < len(saved) < 100 and store.count() == len(saved)
        store.delete(saved[:3], session="s")  # freed pages are reused
        assert store.save(ink(), 1, session="s", strokes=strokes).count == len(saved) - 2


# ---------------------------------------------------------------------------
# Delete, filters, counts


def test_delete_removes_only_the_sessions_own_rows(store):
    mine = [store.save(ink(i), i, session="mine").id for i in range(3)]
    theirs = [store.save(ink(i), i, session="theirs").id for i in range(3)]
    assert store.delete(mine + theirs, session="mine") == 3
    assert store.delete(theirs[0], session="mine") == 0
    assert sorted(row.id for row in store.list_drawings()) == theirs


def test_filters_paging_and_counts(store):
    # (label, predicted, session, source)
    rows = [(3, 3, "a", "app"), (3, 5, "a", "app"), (5, 5, "b", "app"), (8, 1, "b", "api")]
    rows += [(1, None, "import", "import")] * 2
    rows += [(10, 10, "a", "app"), (10, 4, "b", "app")]  # not digits: refused, then not
    ids = [
        store.save(ink(i), label, session=session, source=source, predicted=predicted).id
        for i, (label, predicted, session, source) in enumerate(rows)
    ]
    assert store.count() == 8
    assert [row.id for row in store.list_drawings(digit=3)] == [ids[1], ids[0]]
    assert [row.id for row in store.list_drawings(digit="not a digit")] == [ids[7], ids[6]]
    assert [row.id for row in store.list_drawings(correct=True)] == [ids[6], ids[2], ids[0]]
    assert [row.id for row in store.list_drawings(correct=False)] == [ids[7], ids[3], ids[1]]
    assert [row.id for row in store.list_drawings(digit=3, correct=False)] == [ids[1]]
    assert store.count(session="b") == 3 and store.count(source="import") == 2
    first, second = store.list_drawings(limit=4), store.list_drawings(limit=4, offset=4)
    assert [row.id for row in first + second] == ids[::-1]
    assert store.counts_per_label() == [0, 2, 0, 2, 0, 1, 0, 0, 1, 0, 2]
    assert store.counts_per_label(correct=True) == [0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1]
    assert store.counts_per_source() == {"api": 1, "app": 5, "import": 2}
    stats = store.stats()
    assert stats.count == 8 and stats.size_bytes > 0 and stats.max_bytes == store.max_bytes
    assert stats.per_label == store.counts_per_label()
    assert_one_line(store_error(store.list_drawings, digit=12), "digit", "0 to 9")
    assert_one_line(store_error(store.list_drawings, limit=0), "rows")


# ---------------------------------------------------------------------------
# Kaggle CSV in and out


def test_import_then_export_round_trips_pixels_byte_for_byte(tmp_path, mnist_sample):
    source = write_kaggle_csv(tmp_path / "in.csv", mnist_sample.images, mnist_sample.labels)
    with open_store(tmp_path / "d.sqlite") as store:
        result = import_kaggle_csv(store, source)
        assert (result.added, result.total) == (300, 300)
        assert store.counts_per_source() == {"import": 300}
        out = tmp_path / "out.csv"
        assert export_kaggle_csv(store, out) == 300
    assert out.read_bytes() == source.read_bytes()
    exported = load_training_data(out)  # what `digitnet train --data out.csv` reads
    np.testing.assert_array_equal(exported.images, mnist_sample.images)
    np.testing.assert_array_equal(exported.labels, mnist_sample.labels)


def test_app_drawings_export_as_the_inputs_the_model_saw(store, tmp_path):
    store.save(ink(1), 4, session="s")
    store.save(ink(2), 9, session="s", source="api")
    assert export_kaggle_csv(store, tmp_path / "out.csv") == 2
    exported = load_kaggle_csv(tmp_path / "out.csv", require_labels=True)
    np.testing.assert_array_equal(exported.images, [ink(1), ink(2)])
    assert exported.labels.tolist() == [4, 9]
    assert export_kaggle_csv(store, tmp_path / "api.csv", source="api") == 1


def test_export_refuses_an_empty_store_and_overwriting_the_database(store, tmp_path):
    assert_one_line(store_error(export_kaggle_csv, store, tmp_path / "x.csv"), "no labelled")
    store.save(ink(), 1, session="s")
    with pytest.raises(DigitnetError) as caught:
        export_kaggle_csv(store, store.path)
    assert_one_line(str(caught.value), "input")
    assert not (tmp_path / "x.csv").exists()


def test_a_bad_csv_imports_nothing(store, tmp_path, mnist_sample):
    images = mnist_sample.images[:5].copy()
    images[3] = 0  # a blank row among good ones
    path = write_kaggle_csv(tmp_path / "blank-row.csv", images, mnist_sample.labels[:5])
    assert_one_line(store_error(import_kaggle_csv, store, path), "blank-row.csv", "4 of 5")
    assert store.count() == 0


# ---------------------------------------------------------------------------
# scikit-learn's UCI digits


@pytest.fixture(scope="module")
def sklearn_store(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("sklearn") / "d.sqlite")
    result = import_sklearn_digits(store)
    yield store, result
    store.close()


def test_the_1797_uci_digits_import_once_with_their_labels(sklearn_store):
    store, result = sklearn_store
    assert (result.added, result.total) == (UCI_DIGITS, 1797)
    _, labels = load_uci_digits()
    assert store.counts_per_label() == np.bincount(labels, minlength=11).tolist()
    assert store.counts_per_source() == {SOURCE_SKLEARN: 1797}
    assert store.labelled_digits().labels.tolist() == labels.tolist()  # in the same order
    again = import_sklearn_digits(store)
    assert (again.added, again.total) == (0, 1797)


def test_rendered_uci_digits_look_like_mnist_to_the_shipped_mlp(sklearn_store):
    from digitnet.checkpoint import load_checkpoint

    store, _ = sklearn_store
    digits = store.labelled_digits(source=SOURCE_SKLEARN)
    # MNIST-like: ink in a 20x20 box, centred by mass at (14, 14).
    rows, cols = np.indices((28, 28))
    mass = digits.images.astype(np.float64)
    centre_row = (mass * rows).sum(axis=(1, 2)) / mass.sum(axis=(1, 2))
    centre_col = (mass * cols).sum(axis=(1, 2)) / mass.sum(axis=(1, 2))
    assert np.abs(centre_row - 14).max() < 1.0 and np.abs(centre_col - 14).max() < 1.0
    for axis in (1, 2):  # the ink's bounding box is at most 20 pixels on each side
        inked = digits.images.max(axis=axis) > 0  # (N, 28)
        span = 28 - inked.argmax(axis=1) - inked[:, ::-1].argmax(axis=1)
        assert span.max() <= 20 and span.min() >= 1
    (row,) = store.list_drawings(limit=1)
    assert Image.open(io.BytesIO(row.png)).size == (64, 64)
    # The measurement the fine-tune relies on: ~88% read right before any fine-tuning.
    model, _ = load_checkpoint("mlp")
    accuracy = accuracy_on_drawings({"mlp": model}, digits)["mlp"].overall
    assert 0.85 <= accuracy.value <= 0.92, accuracy


# ---------------------------------------------------------------------------
# Splits, intervals, accuracy


def test_split_by_seed_gives_disjoint_halves_the_same_way_each_time():
    ids = np.arange(1, 1798)
    train, held_out = split_by_seed(ids, seed=0)
    assert (len(train), len(held_out)) == (899, 898)
    assert not set(train) & set(held_out) and set(train) | set(held_out) == set(ids)
    again = split_by_seed(ids[::-1].tolist(), seed=0)
    np.testing.assert_array_equal(again[1], held_out)
    assert not np.array_equal(split_by_seed(ids, seed=1)[1], held_out)
    with pytest.raises(ValueError):
        split_by_seed(ids, seed=0, held_out_fraction=1.0)


@pytest.mark.parametrize(("correct", "total"), [(0, 1), (8, 10), (10, 10), (1578, 1797), (3, 50)])
def test_wilson_interval_matches_scipy(correct, total):
    from scipy.stats import binomtest

    expected = binomtest(correct, total).proportion_ci(0.95, method="wilson")
    low, high = wilson_interval(correct, total, z=1.959964)
    assert low == pytest.approx(expected.low, abs=1e-6)
    assert high == pytest.approx(expected.high, abs=1e-6)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)  # the textbook example
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


class AlwaysThree(nn.Module):
    """A model whose answer is always 3: its accuracy is known exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(inputs), 10) + self.bias
        logits[:, 3] = 10.0
        return logits


def test_accuracy_on_drawings_overall_and_per_digit_with_intervals(store):
    for index, label in enumerate([3, 3, 3, 1, 5]):
        store.save(ink(index), label, session="s")
    result = accuracy_on_drawings({"three": AlwaysThree()}, store.labelled_digits())["three"]
    assert (result.overall.correct, result.overall.total) == (3, 5)
    assert result.overall.interval == wilson_interval(3, 5, z=1.959964)
    assert [a.total for a in result.per_digit] == [0, 1, 0, 3, 0, 1, 0, 0, 0, 0]
    assert [a.value for a in result.per_digit][1:6] == [0.0, None, 1.0, None, 0.0]
    assert result.per_digit[0].interval == (0.0, 1.0)
    assert result.overall.to_dict()["accuracy"] == 0.6


def test_a_model_is_right_on_a_non_digit_when_it_refuses_it(store):
    from digitnet.calibration import Calibration, set_calibration

    for index, label in enumerate([3, 3, "not a digit", 1, "not a digit"]):
        store.save(ink(index), label, session="s")
    digits = store.labelled_digits()
    assert digits.labels.tolist() == [3, 3, NOT_A_DIGIT, 1, NOT_A_DIGIT]
    # Always 3 and sure of it; the same model made flat (probabilities ~0.16) and refusing.
    sure = AlwaysThree()
    refusing = set_calibration(AlwaysThree(), Calibration(temperature=20.0, reject_below=0.5))
    assert model_answers(sure, digits.images / 255.0).tolist() == [3] * 5
    assert model_answers(refusing, digits.images / 255.0).tolist() == [NOT_A_DIGIT] * 5
    result = accuracy_on_drawings({"sure": sure, "refusing": refusing}, digits)
    assert (result["sure"].overall.correct, result["sure"].overall.total) == (2, 5)
    assert (result["sure"].not_a_digit.correct, result["sure"].not_a_digit.total) == (0, 2)
    refused = result["refusing"]
    assert (refused.overall.correct, refused.per_digit[3].correct) == (2, 0)  # a refused 3 is wrong
    assert refused.not_a_digit.value == 1.0 and len(refused.per_label) == 11
    assert refused.not_a_digit.interval == wilson_interval(2, 2)
    assert answers_from_probs([[0.3, 0.7] + [0.0] * 8], 0.8).tolist() == [NOT_A_DIGIT]


def test_export_leaves_out_non_digits(store, tmp_path):
    store.save(ink(1), 4, session="s")
    store.save(ink(2), "not a digit", session="s")
    assert export_kaggle_csv(store, tmp_path / "out.csv") == 1
    assert load_kaggle_csv(tmp_path / "out.csv", require_labels=True).labels.tolist() == [4]
    assert count_not_digits(store) == 1 and count_not_digits(store, source="api") == 0
    store.delete_matching(ids=[1])
    message = store_error(export_kaggle_csv, store, tmp_path / "none.csv")
    assert_one_line(message, "no labelled digits")


# ---------------------------------------------------------------------------
# The operator's delete (``drawings delete``), and where the database lives


def _rows(store, sessions):
    pixels = np.full((28, 28), 200, dtype=np.uint8)
    return [store.save(pixels, 3, session=session).id for session in sessions]


def test_the_operator_deletes_by_id_by_session_and_by_time(tmp_path):
    from datetime import datetime, timedelta, timezone

    with open_store(tmp_path / "d.sqlite") as store:
        first, second, third, fourth = _rows(store, ["a", "b", "b", "c"])
        assert store.delete_matching(ids=[first, 999]) == 1
        assert store.delete_matching(session="b") == 2
        assert [row.id for row in store.list_drawings()] == [fourth]
        # By time: nothing saved before an hour ago; the row saved just now since then.
        hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
        assert store.delete_matching(until=hour_ago) == 0
        assert store.delete_matching(ids=[fourth], session="a") == 0  # every filter must hold
        assert store.delete_matching(since=hour_ago.isoformat()) == 1
        assert store.count() == 0


def test_the_operator_delete_refuses_to_delete_everything_or_a_bad_time(tmp_path):
    with open_store(tmp_path / "d.sqlite") as store:
        _rows(store, ["a"])
        for kwargs in ({}, {"since": "yesterday"}, {"session": ""}):
            with pytest.raises(StoreError) as refused:
                store.delete_matching(**kwargs)
            assert_one_line(str(refused.value))
        assert store.count() == 1


def test_a_naive_time_is_utc_and_times_compare_as_text():
    from digitnet.store import utc_text

    assert utc_text("2025-05-01") == "2025-05-01T00:00:00.000+00:00"
    assert utc_text("2025-05-01T16:30+02:00") == "2025-05-01T14:30:00.000+00:00"


def test_on_a_space_with_persistent_storage_drawings_and_runs_default_under_it(tmp_path):
    from digitnet.storage import default_runs_dir, resolve_db_path, storage_of

    data = tmp_path / "data"  # stands in for a Space's /data
    data.mkdir()
    space = {"SPACE_ID": "someone/digitnet", "DIGITNET_PERSISTENT_DIR": str(data)}
    assert resolve_db_path(None, space) == data / "drawings.sqlite"
    assert default_runs_dir(space) == data / "runs" / "app"
    storage = storage_of(None, space)
    assert storage.survives(storage.db_path) and storage.notice is None
    assert "survives restarts" in storage.log_line and "LOST" not in storage.log_line
    # The operator's own choices still win.
    chosen = {**space, DB_ENV: str(tmp_path / "mine.sqlite"), "DIGITNET_RUNS_DIR": "elsewhere"}
    assert resolve_db_path(None, chosen) == tmp_path / "mine.sqlite"
    assert default_runs_dir(chosen) == Path("elsewhere")
    assert not storage_of(None, chosen).survives(tmp_path / "mine.sqlite")


def test_on_a_space_without_persistent_storage_the_operator_is_told(tmp_path):
    from digitnet.storage import storage_of

    space = {"SPACE_ID": "someone/digitnet", "DIGITNET_PERSISTENT_DIR": str(tmp_path / "absent")}
    storage = storage_of(None, space)
    assert storage.db_path == DEFAULT_DB_PATH
    assert "LOST at every restart" in storage.log_line
    assert "no persistent storage" in storage.notice
    assert "/" not in storage.notice  # visitors see it too: no server path


def test_a_read_only_persistent_folder_is_not_used(tmp_path):
    from digitnet.storage import persistent_dir

    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o555)
    try:
        assert persistent_dir({"SPACE_ID": "x", "DIGITNET_PERSISTENT_DIR": str(data)}) is None
    finally:
        data.chmod(0o755)


def test_off_a_space_the_local_disk_survives_and_there_is_no_notice(tmp_path):
    from digitnet.storage import storage_of

    storage = storage_of(tmp_path / "d.sqlite", {})
    assert storage.notice is None and "LOST" not in storage.log_line

"""Shared fixtures: the MNIST sample shipped in assets/, tiny CSV/IDX writers, a small model.

Everything is offline and deterministic; files are written under pytest's tmp paths.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# An app a test builds keeps its drawings in a throwaway database, never runs/drawings.sqlite.
_DB_DIR = tempfile.mkdtemp(prefix="digitnet-tests-")
atexit.register(shutil.rmtree, _DB_DIR, ignore_errors=True)
os.environ["DIGITNET_DB"] = os.path.join(_DB_DIR, "drawings.sqlite")
# Hypothesis keeps a cache even without a database; keep it out of the repository.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "digitnet-hypothesis")
)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Two cores shared with other work: one thread avoids OpenMP oversubscription,
# which can make small CPU steps tens of times slower.
torch.set_num_threads(1)

# Property tests: few examples, same examples every run, no database in the repo.
settings.register_profile(
    "digitnet",
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("digitnet")

REPO = Path(__file__).resolve().parent.parent
# The 8,000 labelled digits that ship with the repo, so a bare clone runs every test.
from digitnet.data import SAMPLE_DATA  # noqa: E402

TRAIN_DATA = SAMPLE_DATA
PIXEL_HEADER = ",".join(f"pixel{i}" for i in range(784))
TRAIN_HEADER = "label," + PIXEL_HEADER


def assert_one_line(message: str, *needles: str) -> None:
    """A user-facing error: exactly one non-empty line, containing each of ``needles``."""
    assert message.strip(), "empty message"
    assert "\n" not in message.strip(), f"message is more than one line: {message!r}"
    assert "Traceback" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def csv_row(label: int | None, pixels) -> str:
    cells = [str(v) for v in np.asarray(pixels).ravel()]
    return ",".join(([] if label is None else [str(label)]) + cells)


def write_kaggle_csv(path: Path, images: np.ndarray, labels: np.ndarray | None) -> Path:
    """A Kaggle CSV (train format with labels, test format without)."""
    lines = [TRAIN_HEADER if labels is not None else PIXEL_HEADER]
    for index, image in enumerate(images):
        lines.append(csv_row(None if labels is None else int(labels[index]), image))
    path.write_text("\n".join(lines) + "\n")
    return path


def idx_bytes(array: np.ndarray, *, magic: int | None = None) -> bytes:
    """MNIST IDX encoding of a uint8 array (magic 0x0801 labels / 0x0803 images)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def head_lines(source: Path, target: Path, rows: int) -> Path:
    """The header plus the first ``rows`` rows of a CSV, byte for byte."""
    with source.open() as handle:
        lines = [next(handle) for _ in range(rows + 1)]
    target.write_text("".join(lines))
    return target


@pytest.fixture(scope="session")
def mnist():
    """The 8,000 labelled MNIST digits shipped as assets/mnist-train-8k.csv.gz."""
    from digitnet.data import load_training_data

    return load_training_data(TRAIN_DATA)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def small_train_csv(data_dir, mnist) -> Path:
    """The first 600 labelled digits, as a plain Kaggle train CSV."""
    return write_kaggle_csv(data_dir / "small_train.csv", mnist.images[:600], mnist.labels[:600])


@pytest.fixture(scope="session")
def small_test_csv(data_dir, mnist) -> Path:
    """50 other digits as a Kaggle test CSV (no label column), as Kaggle's test.csv is."""
    return write_kaggle_csv(data_dir / "small_test.csv", mnist.images[-50:], None)


@pytest.fixture(scope="session")
def trained(mnist):
    """A small MLP (784-64-64-10, so fc1/fc2/fc3) trained briefly on 1,500 digits."""
    from digitnet.preprocess import digits_to_inputs
    from digitnet.train import TrainConfig, train_model

    config = TrainConfig.from_knobs(hidden_sizes=(64, 64), epochs=4, augment=False, seed=0)
    inputs = digits_to_inputs(mnist.images)
    result = train_model(
        config, inputs[:1500], mnist.labels[:1500], inputs[7500:], mnist.labels[7500:]
    )
    return config, result


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, trained, mnist) -> Path:
    """The small MLP saved as a digitnet checkpoint, with the metadata every trainer writes
    (``run_metadata``); returns its stem (no suffix)."""
    from digitnet.checkpoint import save_checkpoint
    from digitnet.data import summarize
    from digitnet.preprocess import digits_to_inputs
    from digitnet.runs import PreparedData, run_metadata

    config, result = trained
    data = PreparedData(  # the rows `trained` used
        digits=mnist,
        inputs=digits_to_inputs(mnist.images),
        train_index=np.arange(1500),
        val_index=np.arange(7500, len(mnist)),
        sources=[summarize(mnist)],
    )
    stem = tmp_path_factory.mktemp("ckpt") / "small"
    save_checkpoint(stem, result.model, config, run_metadata(result, config, data))
    return stem


# ---------------------------------------------------------------------------
# Browser tests: Debian's chromium driven by Python Playwright (its own browser download does
# not work offline). Each browser test module marks itself with BROWSER_MARKS.

CHROMIUM = Path(os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium, or set DIGITNET_CHROMIUM)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, one per test module (Playwright's sync API must not outlive the
    module: other modules run asyncio event loops of their own)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def close_when_idle(demo, timeout_s: float = 60.0) -> None:
    """Close a served app once none of its events is running.

    An event still inside torch (the Why panel's explanation, say) in one of Gradio's daemon
    threads when the interpreter exits aborts the whole process ("terminate called without
    an active exception"), failing a run whose tests all passed.
    """
    deadline = time.monotonic() + timeout_s
    queue = demo._queue  # Gradio's own queue: its running events, None where a slot is free
    while any(job is not None for job in queue.active_jobs) and time.monotonic() < deadline:
        time.sleep(0.05)
    demo.close()

"""The training service as an operator sets it up: environment variables, read once at start."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from digitnet.admission import Caps
from digitnet.config import ConfigError
from digitnet.data import DATA_ENV, SAMPLE_DATA
from digitnet.training_service import TrainingService

# Environment variables a server reads for its training service, with what each sets.
SETTINGS_ENV = {
    "DIGITNET_RUNS_DIR": "the folder runs are saved in (default runs/app)",
    "DIGITNET_KEEP_RUNS": "how many runs each session keeps (default 5)",
    "DIGITNET_MAX_STORED_RUNS": "how many runs are kept on disk across sessions (default 100)",
    "DIGITNET_MAX_RUNS_MB": "the disk the runs may take, in MB (default 2000)",
    "DIGITNET_MAX_EPOCHS": "the epochs cap (default 100)",
    "DIGITNET_MAX_TRAIN_SIZE": "the training digits cap (default 10,000)",
    "DIGITNET_MAX_TRAIN_SECONDS": "the time cap of a whole run in seconds (default 120)",
    "DIGITNET_MAX_QUEUE": "how many distinct runs may wait (default 40)",
}


def service_from_environ(environ: Mapping[str, str]) -> TrainingService:
    """A service set up by the variables in SETTINGS_ENV, trained on $DIGITNET_DATA or the
    shipped sample. A bad value is a one-line ConfigError naming the variable."""

    def read(name: str, default: float, kind: type = int) -> float:
        text = environ.get(name, "").strip()
        if not text:
            return default
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise ConfigError(f"{name}={text!r}: expected a positive number ({SETTINGS_ENV[name]})")
        return value

    defaults = Caps()
    caps = dataclasses.replace(
        defaults,
        max_epochs=read("DIGITNET_MAX_EPOCHS", defaults.max_epochs),
        max_train_size=read("DIGITNET_MAX_TRAIN_SIZE", defaults.max_train_size),
        max_seconds=read("DIGITNET_MAX_TRAIN_SECONDS", defaults.max_seconds, float),
        max_queue=read("DIGITNET_MAX_QUEUE", defaults.max_queue),
    )
    return TrainingService(
        environ.get("DIGITNET_RUNS_DIR") or "runs/app",
        caps=caps,
        keep_runs=read("DIGITNET_KEEP_RUNS", 5),
        max_stored_runs=read("DIGITNET_MAX_STORED_RUNS", 100),
        max_disk_mb=read("DIGITNET_MAX_RUNS_MB", 2000, float),
        data_paths=[environ.get(DATA_ENV) or SAMPLE_DATA],
    )

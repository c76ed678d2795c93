"""The machine a figure was measured on, in one line: what every benchmark prints first."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    """CPU, cores, torch and its threads, Python, OS and the load average when measured.

    The load average rides along because a figure taken on a busy shared machine is slower
    than the code is; a reader comparing figures needs to know which ones were.
    """
    try:
        load = f", load average {os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):  # not on every OS
        load = ""
    return (
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}, "
        f"{platform.system()}{load}"
    )

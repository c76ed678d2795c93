"""The programs in scripts/ run end to end: the smoke test is the program itself."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
from conftest import REPO, TRAIN_DATA
from PIL import Image

from digitnet.checkpoint import ASSETS_DIR


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_quick_prints_the_table(capsys, mnist):
    if not (ASSETS_DIR / "mlp.safetensors").is_file():
        pytest.skip("assets/mlp is not there")
    benchmark = load_script("benchmark")
    assert benchmark.main(["--data", str(TRAIN_DATA), "--quick"]) == 0
    out = capsys.readouterr().out
    assert "machine:" in out
    assert "| training time (s) |" in out
    assert "| predict 2,000 rows to submission.csv (s, median) |" in out
    assert "| mlp |" in out


def test_make_examples_writes_named_drawings(tmp_path, mnist, monkeypatch):
    make_examples = load_script("make_examples")
    monkeypatch.setattr(
        "sys.argv",
        ["make_examples.py", "--data", str(TRAIN_DATA), "--out", str(tmp_path)],
    )
    make_examples.main()
    written = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in written] == sorted(
        f"{name}-{digit}.png" for name, digit, _ in make_examples.EXAMPLES
    )
    for path in written:
        assert Image.open(path).size == make_examples.CANVAS
    # The shipped examples are exactly what the script makes.
    for path in written:
        shipped = ASSETS_DIR / "examples" / path.name
        assert shipped.read_bytes() == path.read_bytes()


def test_the_machine_line_names_the_cpu_cores_torch_and_load():
    from digitnet.machine import cpu_name, describe_machine

    line = describe_machine()
    assert line.startswith(cpu_name()) and f"{os.cpu_count()} cores" in line
    assert f"torch {torch.__version__}" in line and "\n" not in line
    if hasattr(os, "getloadavg"):
        assert "load average" in line

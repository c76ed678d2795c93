"""scripts/benchmark_explain.py runs end to end: the smoke test is the program itself."""

from __future__ import annotations

import importlib.util
import sys

from conftest import REPO


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_benchmark_explain_quick_prints_both_models(capsys):
    benchmark = load_script("benchmark_explain")
    assert benchmark.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "machine:" in out
    assert "| explain one drawing (ms) | p50 | p95 |" in out
    rows = [line for line in out.splitlines() if line.startswith(("| mlp |", "| cnn |"))]
    assert len(rows) == 2
    for row in rows:
        cells = [float(cell) for cell in row.strip("|").split("|")[1:]]
        assert len(cells) == 6 and all(cell > 0 for cell in cells)
        p50, p95 = cells[:2]
        assert p50 <= p95


def test_benchmark_explain_endpoint_quick_times_the_real_endpoint(capsys):
    """--endpoint serves the app and answers each drawing over HTTP, image included."""
    benchmark = load_script("benchmark_explain")
    assert benchmark.main(["--endpoint", "--quick", "--models", "mlp"]) == 0
    out = capsys.readouterr().out
    assert "| one drawing over HTTP (ms) | endpoint | p50 | p95 |" in out
    rows = [line for line in out.splitlines() if line.startswith("| mlp |")]
    assert [row.split("|")[2].strip() for row in rows] == ["/classify", "/explain"]
    for row in rows:
        p50, p95 = (float(cell) for cell in row.strip("|").split("|")[2:])
        assert 0 < p50 <= p95

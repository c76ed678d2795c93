"""The CLI, run for real through digitnet.cli.main (and once as ``python -m digitnet``)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, assert_one_line, head_lines
from PIL import Image

from digitnet.checkpoint import load_checkpoint
from digitnet.cli import main
from digitnet.cli.interrupt import HOLD_MEASURING_ENV, HOLDING_LINE
from digitnet.data import load_kaggle_csv
from digitnet.drawings import DrawingStyle, render_drawing
from digitnet.predict import predict_probs
from digitnet.preprocess import digits_to_inputs

COMMANDS = ("train", "evaluate", "predict", "info", "download", "export", "drawings")


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_failed(code: int, err: str, *needles: str) -> None:
    """Non-zero exit and exactly one line on stderr, 'error: ...', no traceback."""
    assert code != 0
    assert_one_line(err, *needles)
    assert err.startswith("error:"), err


def read_rows(path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def drawings_folder(tmp_path_factory, mnist):
    """Four canvas-like drawings of known digits as PNG files."""
    folder = tmp_path_factory.mktemp("drawings")
    styles = [
        DrawingStyle((280, 280), 200, 9, "white", (0.5, 0.5)),
        DrawingStyle((400, 300), 150, 7, "dark", (0.1, 0.8)),
        DrawingStyle((300, 300), 250, 11, "transparent", (0.9, 0.2)),
        DrawingStyle((500, 500), 120, 5, "white", (0.3, 0.3)),
    ]
    for index, style in enumerate(styles):
        render_drawing(mnist.images[7900 + index], style).save(folder / f"d{index}.png")
    return folder


# ---------------------------------------------------------------------------
# Help


def test_python_m_digitnet_help_in_a_subprocess():
    run = subprocess.run(
        [sys.executable, "-m", "digitnet", "--help"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: python -m digitnet")
    for command in COMMANDS:
        assert command in run.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_has_help(capsys, command):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m digitnet " + command)
    if command == "predict":
        assert "--model" in out and "--skip-bad" in out and "--out" in out


# ---------------------------------------------------------------------------
# The happy paths


def test_train_writes_the_checkpoint_and_prints_the_config_first(tmp_path, capsys, small_train_csv):
    out = tmp_path / "runs" / "x"
    code, stdout, err = run_cli(
        capsys, "train", "--data", small_train_csv, "--epochs", "1", "--out", out, "--quiet"
    )
    assert code == 0, err
    first = stdout.splitlines()[0]
    assert first.startswith("config ")
    config = json.loads(first.removeprefix("config "))
    assert config["epochs"] == 1 and config["model"]["architecture"] == "mlp"
    assert "epoch   1/1" in stdout and "all" in stdout
    assert out.with_suffix(".safetensors").is_file() and out.with_suffix(".json").is_file()

    document = json.loads(out.with_suffix(".json").read_text())
    assert document["config"] == config
    assert document["data"]["count"] == 600
    assert document["data"]["train_count"] + document["data"]["val_count"] == 600
    assert len(document["history"]) == 1
    mistakes = document["metrics"]["validation"]["mistakes"]
    assert all(len(m["pixels"]) > 0 and "row" in m for m in mistakes)
    model, _ = load_checkpoint(out)
    assert model.fc1.weight.shape == (512, 784)


def test_evaluate_prints_the_table_and_writes_json(tmp_path, capsys, checkpoint, small_train_csv):
    report = tmp_path / "metrics.json"
    code, stdout, err = run_cli(
        capsys, "evaluate", "--model", checkpoint, "--data", small_train_csv, "--json", report
    )
    assert code == 0, err
    assert stdout.splitlines()[0].split() == ["digit", "precision", "recall", "f1", "correct/count"]
    assert "  all  accuracy " in stdout and "macro" in stdout
    metrics = json.loads(report.read_text())
    assert metrics["count"] == 600
    assert metrics["accuracy"] > 0.7  # trained on these digits, among others
    assert np.array(metrics["confusion"]).sum() == 600


def test_info_prints_the_model_card(capsys, checkpoint):
    code, stdout, err = run_cli(capsys, "info", "--model", checkpoint)
    assert code == 0, err
    assert "MLP 784-64-64-10" in stdout
    assert stdout.splitlines()[0].startswith("architecture")


def test_predict_a_test_csv_writes_a_kaggle_submission(
    tmp_path, capsys, checkpoint, small_test_csv
):
    out = tmp_path / "submission.csv"
    code, stdout, err = run_cli(
        capsys, "predict", small_test_csv, "--model", checkpoint, "--out", out
    )
    assert code == 0, err
    rows = read_rows(out)
    assert rows[0] == ["ImageId", "Label"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 51))

    model, _ = load_checkpoint(checkpoint)
    digits = load_kaggle_csv(small_test_csv, require_labels=False)
    expected = predict_probs(model, digits_to_inputs(digits.images)).argmax(axis=1)
    assert [int(r[1]) for r in rows[1:]] == expected.tolist()


def test_predict_a_folder_of_images(tmp_path, capsys, checkpoint, drawings_folder):
    out = tmp_path / "labels.csv"
    code, stdout, err = run_cli(
        capsys, "predict", drawings_folder, "--model", checkpoint, "--out", out
    )
    assert code == 0, err
    rows = read_rows(out)
    assert rows[0] == ["file", "label", "confidence", "is_digit"]
    assert [os.path.basename(r[0]) for r in rows[1:]] == [f"d{i}.png" for i in range(4)]
    for _, label, confidence, is_digit in rows[1:]:
        assert 0 <= int(label) <= 9
        assert 0.0 < float(confidence) <= 1.0
        assert is_digit in ("0", "1")


def test_predict_images_with_the_tutorial_model_pt(tmp_path, capsys, drawings_folder):
    import torch

    from digitnet.model import MLP

    torch.manual_seed(0)
    torch.save(MLP((16, 16)).state_dict(), tmp_path / "model.pt")
    out = tmp_path / "labels.csv"
    code, _, err = run_cli(
        capsys,
        "predict",
        drawings_folder / "d0.png",
        "--model",
        tmp_path / "model.pt",
        "--out",
        out,
    )
    assert code == 0, err
    assert len(read_rows(out)) == 2


# ---------------------------------------------------------------------------
# Failures: one line on stderr, non-zero exit, nothing clobbered


def test_train_on_a_missing_data_file(tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    code, _, err = run_cli(capsys, "train", "--data", missing, "--out", tmp_path / "x", "--quiet")
    assert_failed(code, err, "nope.csv", "no such file")
    assert not (tmp_path / "x.safetensors").exists()


def test_evaluate_on_a_missing_data_file(tmp_path, capsys, checkpoint):
    code, _, err = run_cli(capsys, "evaluate", "--model", checkpoint, "--data", tmp_path / "n.csv")
    assert_failed(code, err, "n.csv")


def test_train_on_a_bad_csv_cell_names_line_and_column(tmp_path, capsys, small_train_csv):
    lines = small_train_csv.read_text().splitlines()
    cells = lines[4].split(",")
    cells[301] = "oops"
    lines[4] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")

    code, _, err = run_cli(capsys, "train", "--data", bad, "--out", tmp_path / "x", "--quiet")
    assert_failed(code, err, "bad.csv", "line 5", "'pixel300'", "'oops'")


def test_predict_refuses_to_overwrite_its_input(tmp_path, capsys, checkpoint, small_test_csv):
    data = tmp_path / "test.csv"
    shutil.copyfile(small_test_csv, data)
    before = data.read_bytes()
    code, _, err = run_cli(capsys, "predict", data, "--model", checkpoint, "--out", data)
    assert_failed(code, err, "test.csv", "--out")
    assert data.read_bytes() == before


def test_predict_refuses_to_write_into_an_input_folder(
    tmp_path, capsys, checkpoint, drawings_folder
):
    code, _, err = run_cli(
        capsys,
        "predict",
        drawings_folder,
        "--model",
        checkpoint,
        "--out",
        drawings_folder / "o.csv",
    )
    assert_failed(code, err, "--out")
    assert not (drawings_folder / "o.csv").exists()


def test_predict_with_a_corrupt_model(tmp_path, capsys, checkpoint, small_test_csv):
    model = tmp_path / "broken"
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(checkpoint.with_suffix(suffix), model.with_suffix(suffix))
    weights = model.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])
    out = tmp_path / "s.csv"
    code, _, err = run_cli(capsys, "predict", small_test_csv, "--model", model, "--out", out)
    assert_failed(code, err, "broken.safetensors")
    assert not out.exists()


def test_predict_with_a_missing_model(tmp_path, capsys, small_test_csv):
    code, _, err = run_cli(
        capsys, "predict", small_test_csv, "--model", tmp_path / "none", "--out", tmp_path / "s.csv"
    )
    assert_failed(code, err, "none.safetensors", "missing")


def _mixed_folder(tmp_path, drawings_folder):
    folder = tmp_path / "mixed"
    shutil.copytree(drawings_folder, folder)
    Image.new("RGB", (300, 300), "white").save(folder / "c_blank.png")
    return folder


def test_blank_image_fails_and_skip_bad_skips_it(tmp_path, capsys, checkpoint, drawings_folder):
    folder = _mixed_folder(tmp_path, drawings_folder)
    out = tmp_path / "labels.csv"

    code, _, err = run_cli(capsys, "predict", folder, "--model", checkpoint, "--out", out)
    assert_failed(code, err, "c_blank.png", "blank")
    assert not out.exists()

    code, stdout, err = run_cli(
        capsys, "predict", folder, "--model", checkpoint, "--out", out, "--skip-bad"
    )
    assert code == 0
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("skipped: c_blank.png")
    names = [os.path.basename(r[0]) for r in read_rows(out)[1:]]
    assert names == [f"d{i}.png" for i in range(4)]
    assert "1 skipped" in stdout


def test_non_image_file_fails(tmp_path, capsys, checkpoint):
    fake = tmp_path / "photo.png"
    fake.write_text("not an image at all\n")
    code, _, err = run_cli(
        capsys, "predict", fake, "--model", checkpoint, "--out", tmp_path / "o.csv"
    )
    assert_failed(code, err, "photo.png", "not an image")


def test_missing_image_input(tmp_path, capsys, checkpoint):
    code, _, err = run_cli(
        capsys, "predict", tmp_path / "gone.png", "--model", checkpoint, "--out", tmp_path / "o.csv"
    )
    assert_failed(code, err, "gone.png")


def test_only_bad_images_with_skip_bad_writes_nothing(tmp_path, capsys, checkpoint):
    Image.new("L", (50, 50), 0).save(tmp_path / "black.png")
    out = tmp_path / "o.csv"
    code = main(
        ["predict", str(tmp_path / "black.png"), "--model", str(checkpoint), "--out", str(out)]
        + ["--skip-bad"]
    )
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert lines[0].startswith("skipped: black.png") and lines[-1].startswith("error:")
    assert "Traceback" not in err and not out.exists()


def test_failed_prediction_leaves_an_existing_output_intact(
    tmp_path, capsys, checkpoint, drawings_folder
):
    folder = _mixed_folder(tmp_path, drawings_folder)
    out = tmp_path / "previous.csv"
    out.write_text("sentinel: yesterday's results\n")

    code, _, err = run_cli(capsys, "predict", folder, "--model", checkpoint, "--out", out)

    assert_failed(code, err, "c_blank.png")
    assert out.read_text() == "sentinel: yesterday's results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed", "previous.csv"]


def test_csv_and_images_together_are_refused(
    tmp_path, capsys, checkpoint, small_test_csv, drawings_folder
):
    code, _, err = run_cli(
        capsys,
        "predict",
        small_test_csv,
        drawings_folder,
        "--model",
        checkpoint,
        "--out",
        tmp_path / "o.csv",
    )
    assert_failed(code, err, "CSV")


def test_train_with_an_invalid_setting(tmp_path, capsys, small_train_csv):
    code, _, err = run_cli(
        capsys, "train", "--data", small_train_csv, "--epochs", "0", "--out", tmp_path / "x"
    )
    assert_failed(code, err, "epochs")


def test_train_limit_uses_the_first_digits(tmp_path, capsys, small_train_csv):
    source = head_lines(small_train_csv, tmp_path / "two_hundred.csv", 200)
    out = tmp_path / "limited"
    code, stdout, err = run_cli(
        capsys,
        "train",
        "--data",
        source,
        "--limit",
        "100",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--out",
        out,
        "--quiet",
    )
    assert code == 0, err
    assert json.loads(out.with_suffix(".json").read_text())["data"]["count"] == 100
    assert "100 digits" in stdout


# ---------------------------------------------------------------------------
# Outputs never replace inputs, names keep their dots, unwritable places fail early


def test_a_dot_in_out_is_part_of_the_name(tmp_path, capsys, small_train_csv):
    for name in ("lr0.01", "lr0.03"):
        code, _, err = run_cli(
            capsys,
            "train",
            "--data",
            small_train_csv,
            "--epochs",
            "1",
            "--limit",
            "200",
            "--out",
            tmp_path / name,
            "--quiet",
        )
        assert code == 0, err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["lr0.01.json", "lr0.01.safetensors", "lr0.03.json", "lr0.03.safetensors"]


def test_train_out_into_an_unwritable_place_fails_before_training(
    tmp_path, capsys, small_train_csv
):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    code, stdout, err = run_cli(
        capsys,
        "train",
        "--data",
        small_train_csv,
        "--epochs",
        "1",
        "--quiet",
        "--out",
        not_a_folder / "model",
    )
    assert_failed(code, err, "file.txt")
    assert "epoch" not in stdout


def test_train_out_an_existing_folder_is_refused(tmp_path, capsys, small_train_csv):
    code, _, err = run_cli(
        capsys, "train", "--data", small_train_csv, "--epochs", "1", "--out", tmp_path
    )
    assert_failed(code, err, "is a folder")


def test_predict_refuses_to_overwrite_the_model(tmp_path, capsys, checkpoint, small_test_csv):
    model = tmp_path / "m"
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(checkpoint.with_suffix(suffix), model.with_suffix(suffix))
    before = model.with_suffix(".json").read_bytes()
    code, _, err = run_cli(
        capsys, "predict", small_test_csv, "--model", model, "--out", model.with_suffix(".json")
    )
    assert_failed(code, err, "m.json")
    assert model.with_suffix(".json").read_bytes() == before


def test_evaluate_json_refuses_to_overwrite_the_data(tmp_path, capsys, checkpoint, small_train_csv):
    data = tmp_path / "copy.csv"
    shutil.copyfile(small_train_csv, data)
    code, _, err = run_cli(
        capsys, "evaluate", "--model", checkpoint, "--data", data, "--json", data
    )
    assert_failed(code, err, "copy.csv")
    assert data.read_bytes() == small_train_csv.read_bytes()


def test_predict_into_a_missing_folder_under_a_file_is_one_line(
    tmp_path, capsys, checkpoint, small_test_csv
):
    blocker = tmp_path / "blocker.csv"
    blocker.write_text("x")
    code, _, err = run_cli(
        capsys, "predict", small_test_csv, "--model", checkpoint, "--out", blocker / "out.csv"
    )
    assert_failed(code, err, "out.csv")


def test_tutorial_keeps_flags_typed_even_at_digitnet_defaults(tmp_path, capsys, small_train_csv):
    code, stdout, err = run_cli(
        capsys,
        "train",
        "--data",
        small_train_csv,
        "--tutorial",
        "--epochs",
        "1",
        "--optimizer",
        "adamw",
        "--augment",
        "--limit",
        "200",
        "--out",
        tmp_path / "t",
        "--quiet",
    )
    assert code == 0, err
    config = json.loads(stdout.splitlines()[0].removeprefix("config "))
    assert config["optimizer"] == "adamw"  # typed, although it is digitnet's default
    assert config["augment"] is True  # the tutorial turns it off; typed, it is back on
    assert config["epochs"] == 1
    assert config["lr"] == 0.01 and config["shuffle"] is False  # the tutorial's, untyped


def test_a_text_file_named_pt_is_one_line(tmp_path, capsys, small_test_csv):
    fake = tmp_path / "model.pt"
    fake.write_text("hello\n")
    code, _, err = run_cli(
        capsys, "predict", small_test_csv, "--model", fake, "--out", tmp_path / "o.csv"
    )
    assert_failed(code, err, "model.pt")


def test_limit_must_be_positive(capsys, small_train_csv):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(small_train_csv), "--limit", "0"])
    assert exit_info.value.code != 0
    assert "at least 1" in capsys.readouterr().err


def test_evaluate_validation_only_and_drawings(tmp_path, capsys, small_train_csv):
    out = tmp_path / "m"
    code, _, err = run_cli(
        capsys, "train", "--data", small_train_csv, "--epochs", "1", "--out", out, "--quiet"
    )
    assert code == 0, err
    saved = json.loads(out.with_suffix(".json").read_text())
    code, stdout, err = run_cli(
        capsys,
        "evaluate",
        "--model",
        out,
        "--data",
        small_train_csv,
        "--validation-only",
        "--drawings",
        "5",
        "--json",
        tmp_path / "report.json",
    )
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    # Exactly the digits training held out, with the same accuracy it recorded.
    assert report["count"] == saved["data"]["val_count"]
    assert report["accuracy"] == pytest.approx(saved["metrics"]["validation"]["accuracy"])
    assert report["drawings"]["count"] == 5
    assert "canvas-like drawings (seed 0)" in stdout


def test_evaluate_validation_only_refuses_a_split_that_drifted(tmp_path, capsys, small_train_csv):
    """A newer scikit-learn could draw another split from the same seed: the recorded rows say."""
    out = tmp_path / "m"
    code, _, err = run_cli(
        capsys, "train", "--data", small_train_csv, "--epochs", "1", "--out", out, "--quiet"
    )
    assert code == 0, err
    meta_path = out.with_suffix(".json")
    saved = json.loads(meta_path.read_text())
    assert saved["versions"]["scikit-learn"] and len(saved["data"]["val_rows"]) == 16
    saved["data"]["val_rows"] = "0" * 16  # as if another split had held out other rows
    saved["versions"]["scikit-learn"] = "0.1"
    meta_path.write_text(json.dumps(saved))
    args = ["evaluate", "--model", out, "--data", small_train_csv, "--validation-only"]
    code, _, err = run_cli(capsys, *args)
    assert_failed(code, err, "different validation split", "scikit-learn 0.1")


def test_evaluate_validation_only_on_other_data_is_refused(
    tmp_path, capsys, checkpoint, small_train_csv
):
    other = head_lines(small_train_csv, tmp_path / "other.csv", 100)
    code, _, err = run_cli(
        capsys, "evaluate", "--model", checkpoint, "--data", other, "--validation-only"
    )
    assert_failed(code, err, "other.csv", "--validation-only")


def test_every_train_config_field_is_a_train_flag():
    from dataclasses import fields

    from digitnet.cli import build_parser
    from digitnet.model import ModelConfig
    from digitnet.train import TrainConfig

    parser = build_parser()
    train = next(
        action.choices["train"]
        for action in parser._actions
        if hasattr(action, "choices") and action.choices and "train" in action.choices
    )
    flags = {action.dest: action for action in train._actions}
    assert [f.name for f in fields(TrainConfig) if f.name not in flags] == ["model"]
    assert [f.name for f in fields(ModelConfig) if f.name not in flags] == []
    # Help text and range come from the field's metadata, written once.
    assert flags["lr"].help.startswith("peak learning rate (default: 0.003; (0, 10]")
    assert flags["architecture"].option_strings == ["--arch"]
    assert flags["cnn_channels"].nargs == 2


# ---------------------------------------------------------------------------
# A bare clone: data from assets/, several sources, Ctrl-C, only user errors one line


def test_train_without_data_uses_mnist_in_assets(tmp_path, capsys, monkeypatch):
    from digitnet.data import MNIST_DIR

    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        capsys, "train", "--epochs", "1", "--limit", "300", "--hidden", "16", "--out", out
    )
    assert code == 0, err
    data = json.loads(out.with_suffix(".json").read_text())["data"]
    assert data["sources"][0]["source"] == str(MNIST_DIR / "train-images-idx3-ubyte.gz")
    assert data["sources"][0]["count"] == 60_000 and data["count"] == 300
    assert "none given" in err and "DIGITNET_DATA" in err


def test_digitnet_data_points_train_elsewhere(tmp_path, capsys, monkeypatch, small_train_csv):
    monkeypatch.setenv("DIGITNET_DATA", str(small_train_csv))
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--epochs", "1", "--hidden", "16", "--out", out)
    assert code == 0, err
    assert json.loads(out.with_suffix(".json").read_text())["data"]["count"] == 600


def test_data_given_twice_trains_on_both_and_records_each(tmp_path, capsys, mnist, small_train_csv):
    from conftest import write_kaggle_csv

    from digitnet.data import fingerprint

    second = write_kaggle_csv(tmp_path / "mine.csv", mnist.images[-100:], mnist.labels[-100:])
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        capsys,
        "train",
        "--data",
        small_train_csv,
        "--data",
        second,
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--out",
        out,
        "--quiet",
    )
    assert code == 0, err
    document = json.loads(out.with_suffix(".json").read_text())
    data = document["data"]
    assert [s["source"] for s in data["sources"]] == [str(small_train_csv), str(second)]
    assert [s["count"] for s in data["sources"]] == [600, 100]
    assert data["count"] == 700 and data["train_count"] + data["val_count"] == 700
    assert data["sources"][1]["fingerprint"] == fingerprint(mnist.subset(np.arange(7900, 8000)))
    assert f"data {second}: 100 digits" in stdout
    # Evaluating on the same two sources finds the model's own validation split.
    code, stdout, err = run_cli(
        capsys,
        "evaluate",
        "--model",
        out,
        "--data",
        small_train_csv,
        "--data",
        second,
        "--validation-only",
    )
    assert code == 0, err
    assert f"{data['val_count']} digits" in err


def test_evaluate_accuracy_is_what_the_submission_scores(tmp_path, capsys, checkpoint, mnist):
    """The per-digit report's accuracy equals the share of a predict submission that is right."""
    from conftest import write_kaggle_csv

    labelled = write_kaggle_csv(tmp_path / "labelled.csv", mnist.images[:400], mnist.labels[:400])
    report = tmp_path / "metrics.json"
    code, stdout, err = run_cli(
        capsys, "evaluate", "--model", checkpoint, "--data", labelled, "--json", report
    )
    assert code == 0, err
    metrics = json.loads(report.read_text())
    for row in metrics["per_class"]:
        assert {"precision", "recall", "f1", "accuracy"} <= set(row)
        assert row["accuracy"] == row["recall"]
    submission = tmp_path / "submission.csv"
    code, _, err = run_cli(capsys, "predict", labelled, "--model", checkpoint, "--out", submission)
    assert code == 0, err
    predicted = np.array([int(row[1]) for row in read_rows(submission)[1:]])
    assert metrics["accuracy"] == pytest.approx(float((predicted == mnist.labels[:400]).mean()))
    assert f"accuracy {100 * metrics['accuracy']:.2f}%" in stdout


def interrupt_training(args: list[str], when: str, env: dict | None = None):
    """``python -m digitnet train ARGS`` in a subprocess, sent SIGINT once a stdout line
    starts with ``when``; returns (exit code, stderr)."""
    import signal
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "digitnet", "train", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        for line in process.stdout:
            if line.startswith(when):
                break
            assert time.monotonic() < deadline
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, stderr


def test_ctrl_c_saves_the_best_weights_so_far(tmp_path):
    """SIGINT to a real training process: it stops after its step, saves, says so, exits 130."""
    out = tmp_path / "interrupted"
    args = ["--epochs", "500", "--hidden", "16", "--limit", "1000", "--batch-size", "16"]
    code, stderr = interrupt_training([*args, "--out", str(out), "--quiet"], "epoch   1/500")
    assert code == 130, stderr
    saved = [line for line in stderr.splitlines() if line.startswith("stopped at epoch")]
    assert len(saved) == 1 and "saved the best weights so far" in saved[0], stderr
    assert "Traceback" not in stderr
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["stopped"] is True and 1 <= len(document["history"]) < 500
    model, _ = load_checkpoint(out)
    assert model.fc1.weight.shape == (16, 784)


def test_ctrl_c_while_measuring_drawings_saves_without_that_measurement(tmp_path):
    """Training is over and the slow measurement on drawings runs: Ctrl-C saves the run now."""
    out = tmp_path / "measured"
    args = ["--epochs", "1", "--hidden", "16", "--limit", "1000", "--drawings", "50"]
    # The CLI's test hook holds the measurement until the signal arrives, however fast the
    # machine: the signal is sent once the measurement says it is held, never after a delay.
    code, stderr = interrupt_training(
        [*args, "--out", str(out), "--quiet"], HOLDING_LINE, env={HOLD_MEASURING_ENV: "1"}
    )
    assert code == 130, stderr
    assert "skipping the drawings measurement" in stderr, stderr
    assert "interrupted after training; saved the weights" in stderr and "Traceback" not in stderr
    document = json.loads(out.with_suffix(".json").read_text())
    assert "drawings" not in document["metrics"] and document["metrics"]["validation"]
    model, _ = load_checkpoint(out)
    assert model.fc1.weight.shape == (16, 784)


def test_a_bug_is_not_dressed_up_as_a_user_error(capsys, checkpoint, monkeypatch):
    """Only DigitnetError (input, config) becomes one line; a real bug keeps its traceback."""

    def broken(metadata):
        raise ValueError("a bug in the card")

    monkeypatch.setattr("digitnet.checkpoint.model_card", broken)
    with pytest.raises(ValueError, match="a bug in the card"):
        main(["info", "--model", str(checkpoint)])


# ---------------------------------------------------------------------------
# drawings export | import | stats


def test_drawings_import_stats_export_round_trip(tmp_path, capsys, mnist):
    from conftest import write_kaggle_csv

    source = write_kaggle_csv(tmp_path / "some.csv", mnist.images[:30], mnist.labels[:30])
    db = tmp_path / "drawings.sqlite"
    code, stdout, err = run_cli(capsys, "drawings", "import", source, "--db", db)
    assert code == 0, err
    assert "added 30 drawings" in stdout
    code, stdout, err = run_cli(capsys, "drawings", "stats", "--db", db)
    assert code == 0, err
    assert "30 drawings" in stdout
    assert stdout.splitlines()[1].split()[1:] == [*map(str, range(10)), "not", "a", "digit"]
    counts = [int(n) for n in stdout.splitlines()[2].split()[1:]]
    assert counts == np.bincount(mnist.labels[:30], minlength=11).tolist()
    out = tmp_path / "mine.csv"
    code, stdout, err = run_cli(capsys, "drawings", "export", "--db", db, "--out", out)
    assert code == 0, err
    back = load_kaggle_csv(out, require_labels=True)
    np.testing.assert_array_equal(back.images, mnist.images[:30])
    np.testing.assert_array_equal(back.labels, mnist.labels[:30])
    # The export trains with the usual command, beside other data.
    code, _, err = run_cli(
        capsys,
        "train",
        "--data",
        source,
        "--data",
        out,
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--out",
        tmp_path / "run",
        "--quiet",
    )
    assert code == 0, err


def test_drawings_stats_measures_models_on_non_digits_too_and_export_leaves_them_out(
    tmp_path, capsys, mnist
):
    from digitnet.store import open_store

    db = tmp_path / "drawings.sqlite"
    with open_store(db) as store:
        store.save_many(mnist.images[:6], mnist.labels[:6], session="s", source="import")
        scribble = np.zeros((28, 28), dtype=np.uint8)
        scribble[4:24:3, 2:26] = 255  # stripes: nothing like a digit
        store.save(scribble, "not a digit", session="s")
    code, stdout, err = run_cli(capsys, "drawings", "stats", "--db", db, "--model", "mlp")
    assert code == 0, err
    assert stdout.splitlines()[2].split()[-1] == "1"  # one not a digit
    assert "a non-digit: refused" in stdout and "mlp: " in stdout and "of 7" in stdout
    assert "not a digit:" in stdout
    code, stdout, err = run_cli(
        capsys, "drawings", "export", "--db", db, "--out", tmp_path / "o.csv"
    )
    assert code == 0, err
    assert "6 labelled drawings" in stdout and "left out 1 drawings kept as not a digit" in stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["drawings", "import"], ["--sklearn-digits"]),
        (["drawings", "export", "--out", "x.csv"], ["no labelled digits"]),
    ],
)
def test_drawings_mistakes_are_one_line(tmp_path, capsys, args, needles):
    code, _, err = run_cli(capsys, *args, "--db", tmp_path / "empty.sqlite")
    assert_failed(code, err, *needles)


def test_drawings_on_a_file_that_is_not_a_database(tmp_path, capsys):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("shopping list\n")
    code, _, err = run_cli(capsys, "drawings", "stats", "--db", bad)
    assert_failed(code, err, "notes.sqlite")
    assert bad.read_text() == "shopping list\n"


def test_export_web_writes_what_the_browser_loads(tmp_path, capsys, checkpoint):
    from digitnet.export import load_web

    code, stdout, err = run_cli(capsys, "export", "--model", checkpoint, "--out", tmp_path / "web")
    assert code == 0, err
    written = tmp_path / "web.safetensors"
    assert f"wrote {written}" in stdout
    web = load_web(written)
    assert web.ops and web.tensors


def test_export_never_replaces_the_model(capsys, checkpoint):
    code, _, err = run_cli(capsys, "export", "--model", checkpoint, "--out", checkpoint)
    assert_failed(code, err, "would replace")


def test_evaluate_test_reports_on_mnists_test_digits(capsys, checkpoint):
    code, stdout, err = run_cli(capsys, "evaluate", "--model", checkpoint, "--test")
    assert code == 0, err
    assert "t10k" in err and "10,000" in err
    assert "/10000)" in stdout and "95% interval" in stdout and "refused as not a digit" in stdout
    code, _, err = run_cli(capsys, "evaluate", "--model", checkpoint, "--test", "--validation-only")
    assert_failed(code, err, "--test")

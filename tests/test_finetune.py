"""Fine-tuning on drawings: the refusals, what is never trained on, the checkpoint, stop, gain.

The base is a small MLP trained briefly on 600 of the shipped MNIST digits; the drawings
are other MNIST digits mirrored left to right, a distinctive style it mostly gets wrong.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io

import numpy as np
import pytest
import torch
from conftest import REPO, assert_one_line

from digitnet.calibration import calibration_of
from digitnet.checkpoint import ASSETS_DIR, load_checkpoint, model_card, save_checkpoint
from digitnet.config import ConfigError
from digitnet.data import Digits
from digitnet.finetune import (
    MIN_DRAWINGS,
    MIN_PER_SIDE,
    FinetuneConfig,
    FinetuneError,
    FinetuneReport,
    FinetuneRun,
    drawings_from_store,
    finetune,
    finetune_train_config,
    mix_drawings,
    split_drawings,
)
from digitnet.preprocess import digits_to_inputs
from digitnet.runs import prepare_data, run_metadata
from digitnet.store import NOT_A_DIGIT, SOURCE_IMPORT, SOURCE_SKLEARN, open_store
from digitnet.train import StepReport, TrainConfig, train_model

MNIST_DIGITS = 600  # the base model's data: the first 600 shipped digits
# Quick, and still a clear gain: few epochs, a high rate, no augmentation.
SETTINGS = FinetuneConfig(
    epochs=2, lr=3e-3, drawing_share=0.5, augment=False, held_out_fraction=0.5
)


@pytest.fixture(scope="module")
def base_mnist(mnist) -> Digits:
    return mnist.subset(np.arange(MNIST_DIGITS))


@pytest.fixture(scope="module")
def base(tmp_path_factory, base_mnist):
    """A small MLP saved and loaded as a checkpoint: (model, metadata, path)."""
    config = TrainConfig.from_knobs(
        hidden_sizes=(32,), epochs=3, batch_size=32, augment=False, val_fraction=0.2, device="cpu"
    )
    data = prepare_data(config, digits=base_mnist)
    result = train_model(config, *data.train, *data.val)
    path = tmp_path_factory.mktemp("base") / "small"
    save_checkpoint(path, result.model, config, run_metadata(result, config, data))
    model, metadata = load_checkpoint(path)
    return model, metadata, path


def mirrored(mnist: Digits, start: int, count: int) -> Digits:
    """MNIST digits (not the base's) flipped left to right: a style the base never saw."""
    picked = mnist.subset(np.arange(start, start + count))
    return Digits(np.ascontiguousarray(picked.images[:, :, ::-1]), picked.labels, "mirrored")


@pytest.fixture(scope="module")
def drawings(mnist) -> Digits:
    return mirrored(mnist, 6000, 200)


@pytest.fixture(scope="module")
def finished(base, base_mnist, drawings):
    """One fine-tune, run to the end, with every report it yielded."""
    model, metadata, _ = base
    split = split_drawings(drawings, np.arange(1000, 1200), SETTINGS)
    run = FinetuneRun(model, metadata, split, SETTINGS, mnist=base_mnist, base_name="small")
    reports = list(run)
    return run, reports


def rows(inputs: np.ndarray | torch.Tensor) -> set[bytes]:
    array = np.asarray(inputs, dtype=np.float32).reshape(len(inputs), -1)
    return {row.tobytes() for row in array}


# ---------------------------------------------------------------------------
# Refusals


def test_fewer_than_the_minimum_is_refused_in_one_line(drawings):
    few = drawings.subset(np.arange(MIN_DRAWINGS - 1))
    with pytest.raises(FinetuneError) as error:
        split_drawings(few, None, SETTINGS)
    assert_one_line(str(error.value), f"only {MIN_DRAWINGS - 1} labelled drawings", "at least 20")
    split = split_drawings(drawings.subset(np.arange(MIN_DRAWINGS)), None, SETTINGS)
    assert split.count == MIN_DRAWINGS


def test_a_store_with_too_few_drawings_is_refused_naming_it(tmp_path, drawings):
    with open_store(tmp_path / "few.sqlite") as store:
        with pytest.raises(FinetuneError) as error:
            drawings_from_store(store, SETTINGS)
        assert_one_line(str(error.value), "only 0 labelled drawings", "few.sqlite", "20")
        store.save_many(drawings.images[:30], drawings.labels[:30], session="s", source="app")
        with pytest.raises(FinetuneError) as error:
            drawings_from_store(store, SETTINGS, source=SOURCE_SKLEARN)
        assert_one_line(str(error.value), f"from source '{SOURCE_SKLEARN}'")
        split = drawings_from_store(store, SETTINGS, source="app")
        assert (len(split.train), len(split.held_out)) == (15, 15)


def test_a_held_out_share_leaving_too_few_on_a_side_is_refused(drawings):
    settings = FinetuneConfig(held_out_fraction=0.05)
    with pytest.raises(FinetuneError) as error:
        split_drawings(drawings.subset(np.arange(40)), None, settings)
    assert_one_line(str(error.value), "leaves 38 to train on and 2 to measure", str(MIN_PER_SIDE))


@pytest.mark.parametrize(
    ("knobs", "needle"),
    [
        ({"held_out_fraction": 1.0}, "held_out_fraction"),
        ({"held_out_fraction": 0}, "held_out_fraction"),
        ({"drawing_share": 1.0}, "drawing_share"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_settings_are_one_line(knobs, needle):
    with pytest.raises(ConfigError) as error:
        FinetuneConfig(**knobs)
    assert_one_line(str(error.value), needle)


def test_unlabelled_drawings_or_mismatched_ids_are_refused(drawings):
    with pytest.raises(FinetuneError, match="no labels"):
        split_drawings(Digits(drawings.images, None, "x"), None, SETTINGS)
    with pytest.raises(FinetuneError, match="one distinct id per drawing"):
        split_drawings(drawings, np.zeros(len(drawings)), SETTINGS)


# ---------------------------------------------------------------------------
# What trains and what is measured


def test_the_held_out_drawings_are_never_trained_on(finished, drawings):
    run, _ = finished
    split = run.drawings
    assert not set(split.train_ids) & set(split.held_out_ids)
    assert set(split.train_ids) | set(split.held_out_ids) == set(range(1000, 1200))
    trained = rows(run.training.inputs)
    held_out = rows(digits_to_inputs(split.held_out.images))
    assert len(held_out) == len(split.held_out) and not held_out & trained
    assert rows(digits_to_inputs(split.train.images)) <= trained


def test_mnist_validation_is_the_bases_own_split_and_never_trained_on(finished, base, base_mnist):
    run, _ = finished
    _, metadata, _ = base
    base_config = TrainConfig.from_dict(metadata["config"])
    train_index, val_index = base_config.split(base_mnist.labels)
    np.testing.assert_array_equal(run.mnist.val_index, val_index)
    assert len(run.training.labels) == len(train_index) + run.repeats * len(run.drawings.train)
    validation = rows(digits_to_inputs(base_mnist.images[val_index]))
    assert not validation & rows(run.training.inputs)
    assert run.mnist_validation_unseen


def test_a_base_with_another_mnist_split_is_flagged(base, base_mnist, drawings):
    model, metadata, _ = base
    split = split_drawings(drawings, None, SETTINGS)
    other_split = {**metadata, "config": {**metadata["config"], "seed": 5}}
    run = FinetuneRun(model, other_split, split, SETTINGS, mnist=base_mnist)
    assert not run.mnist_validation_unseen  # its recorded mistakes lie outside this split
    other_data = {**metadata, "data": {"fingerprint": "0" * 16, "sources": []}}
    run = FinetuneRun(model, other_data, split, SETTINGS, mnist=base_mnist)
    assert not run.mnist_validation_unseen


def test_the_drawings_are_repeated_to_their_share_of_each_epoch():
    assert mix_drawings(7200, 900, 0.25) == (3, 2700 / 9900)
    assert mix_drawings(500, 100, 0.5) == (5, 0.5)
    repeats, share = mix_drawings(100, 5000, 0.25)  # many drawings: each once, MNIST kept
    assert repeats == 1 and share == pytest.approx(5000 / 5100)


def test_the_split_is_seeded_and_stable(drawings):
    ids = np.arange(500, 700)
    first = split_drawings(drawings, ids, SETTINGS)
    again = split_drawings(drawings, ids, SETTINGS)
    np.testing.assert_array_equal(first.held_out_ids, again.held_out_ids)
    other = split_drawings(drawings, ids, FinetuneConfig(held_out_fraction=0.5, seed=1))
    assert not np.array_equal(first.held_out_ids, other.held_out_ids)
    # The images follow their ids, in whatever order they came.
    shuffled = np.random.default_rng(0).permutation(len(ids))
    mixed = split_drawings(drawings.subset(shuffled), ids[shuffled], SETTINGS)
    np.testing.assert_array_equal(mixed.held_out_ids, first.held_out_ids)
    np.testing.assert_array_equal(mixed.held_out.images, first.held_out.images)
    np.testing.assert_array_equal(mixed.train.labels, first.train.labels)
    position = np.flatnonzero(ids == first.held_out_ids[0])[0]
    np.testing.assert_array_equal(first.held_out.images[0], drawings.images[position])


# ---------------------------------------------------------------------------
# The run, its reports and its result


def test_reports_start_with_the_base_then_stream_steps_and_epochs(finished):
    run, reports = finished
    assert isinstance(reports[0], FinetuneReport) and reports[0].epoch == 0
    assert reports[0].training is None and reports[0].measurement == run.result.before
    epochs = [r for r in reports if isinstance(r, FinetuneReport) and r.epoch > 0]
    assert [r.epoch for r in epochs] == [1, 2]
    assert any(isinstance(r, StepReport) for r in reports)
    # The last weights are the ones kept; "after" refuses under the fine-tune's own new
    # calibration, the epochs under the base's, so only MNIST's figures must agree exactly.
    last, after = epochs[-1].measurement, run.result.after
    assert (last.mnist_validation, last.mnist_validation_loss) == (
        after.mnist_validation,
        after.mnist_validation_loss,
    )
    for report in epochs:  # the dashboard's validation curve is MNIST validation
        assert report.training.val_accuracy == report.measurement.mnist_validation.value
        assert "held-out drawings" in report.log_line()


def test_fine_tuning_raises_held_out_accuracy_on_a_new_style(finished):
    run, _ = finished
    before, after = run.result.before, run.result.after
    assert before.held_out.value < 0.6  # the base reads few mirrored digits
    assert after.held_out.value >= before.held_out.value + 0.15, (before, after)
    # It still reads MNIST: within a few of its 120 validation digits.
    assert after.mnist_validation.value >= before.mnist_validation.value - 0.05


def test_the_base_model_is_left_unchanged(base, finished):
    model, _, path = base
    reloaded, _ = load_checkpoint(path)
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_the_result_is_a_checkpoint_with_its_before_and_after(tmp_path, finished, base):
    run, _ = finished
    result = run.result
    _, base_metadata, _ = base
    save_checkpoint(tmp_path / "tuned", result.model, result.config, result.metadata)
    model, metadata = load_checkpoint(tmp_path / "tuned")
    inputs = digits_to_inputs(run.drawings.held_out.images)
    with torch.no_grad():
        assert torch.equal(model(torch.tensor(inputs)), result.model(torch.tensor(inputs)))
    section = metadata["finetune"]
    assert section["base_model"] == "small"
    assert section["before"]["held_out"]["accuracy"] == result.before.held_out.value
    assert section["after"]["mnist_validation"]["accuracy"] == result.after.mnist_validation.value
    assert section["after"]["held_out"]["low"] < result.after.held_out.value
    assert section["drawings"]["held_out_count"] == len(run.drawings.held_out) == 100
    assert section["drawings"]["held_out_ids"] == run.drawings.held_out_ids.tolist()
    assert section["change_points"]["held_out"] == pytest.approx(
        100 * (result.after.held_out.value - result.before.held_out.value), abs=0.01
    )
    # A normal run's metadata: MNIST validation as its validation, the drawings as a source.
    assert metadata["metrics"]["validation"]["accuracy"] == pytest.approx(
        result.after.mnist_validation.value
    )
    assert len(metadata["data"]["sources"]) == 2
    assert metadata["data"]["train_count"] == len(run.mnist.train_index) + 100
    assert metadata["config"]["epochs"] == SETTINGS.epochs
    for knob in ("seed", "val_fraction", "batch_size"):
        assert metadata["config"][knob] == base_metadata["config"][knob]
    assert "val accuracy" in model_card(metadata)


def test_a_fine_tune_of_a_fine_tune_keeps_the_same_mnist_split(tmp_path, finished, base_mnist):
    run, _ = finished
    result = run.result
    save_checkpoint(tmp_path / "tuned", result.model, result.config, result.metadata)
    model, metadata = load_checkpoint(tmp_path / "tuned")
    settings = FinetuneConfig(epochs=1, held_out_fraction=0.5)
    again = FinetuneRun(model, metadata, run.drawings, settings, mnist=base_mnist)
    np.testing.assert_array_equal(again.mnist.val_index, run.mnist.val_index)
    assert again.mnist_validation_unseen
    assert finetune_train_config(metadata, settings).seed == result.config.seed


def test_stop_ends_within_a_step_and_keeps_what_it_has(base, base_mnist, drawings):
    model, metadata, _ = base
    split = split_drawings(drawings, None, SETTINGS)
    run = FinetuneRun(model, metadata, split, SETTINGS, mnist=base_mnist, report_every=1)
    reports = []
    for report in run:
        reports.append(report)
        if isinstance(report, StepReport):
            run.stop()
    steps = [r for r in reports if isinstance(r, StepReport)]
    assert len(steps) == 1 and steps[0].total_steps > 2
    last = reports[-1]
    assert isinstance(last, FinetuneReport) and not last.training.complete
    result = run.result
    assert result.stopped and len(result.training.history) == 1
    assert result.metadata["stopped"] is True
    assert result.after == last.measurement


def test_the_function_form_reports_and_honours_stop(base, base_mnist, drawings):
    model, metadata, _ = base
    split = split_drawings(drawings, None, SETTINGS)
    seen = []
    result = finetune(
        model,
        metadata,
        split,
        SETTINGS,
        mnist=base_mnist,
        on_report=seen.append,
        stop=lambda: len(seen) >= 3,
        report_every=1,
    )
    assert result.stopped
    assert sum(isinstance(r, StepReport) for r in seen) == 2  # stop is polled before each step


def test_drawings_from_the_store_train_and_are_recorded(tmp_path, base, base_mnist, drawings):
    model, metadata, _ = base
    with open_store(tmp_path / "d.sqlite") as store:
        store.save_many(drawings.images[:60], drawings.labels[:60], session="s", source="app")
        store.save_many(
            drawings.images[60:], drawings.labels[60:], session="s", source=SOURCE_IMPORT
        )
        split = drawings_from_store(store, SETTINGS, source="app")
        assert split.count == 60 and set(split.train_ids) | set(split.held_out_ids) <= set(
            store.drawing_ids(source="app")
        )
    settings = FinetuneConfig(epochs=1, held_out_fraction=0.5)
    result = finetune(
        model, metadata, split, settings, mnist=base_mnist, drawings_source="app", command="cmd"
    )
    recorded = result.metadata["finetune"]["drawings"]
    assert recorded["source_filter"] == "app" and recorded["source"].endswith("d.sqlite")
    assert recorded["count"] == 60 and result.metadata["command"] == "cmd"


def stripes(count: int, seed: int = 0) -> np.ndarray:
    """Non-digits of a kind nothing trained on: bars across the frame, (N, 28, 28) uint8."""
    rng = np.random.default_rng(seed)
    made: dict[bytes, np.ndarray] = {}  # distinct, so the split's sides share none
    while len(made) < count:
        image = np.zeros((28, 28), dtype=np.uint8)
        step, width = int(rng.integers(4, 7)), int(rng.integers(1, 3))
        left, right = int(rng.integers(1, 8)), int(rng.integers(20, 28))
        for row in range(int(rng.integers(1, 5)), 26, step):
            image[row : row + width, left:right] = 255
        made[image.tobytes()] = image
    return np.stack(list(made.values()))


def test_non_digit_drawings_join_the_outliers_and_the_held_out_ones_measure_refusal(
    base, base_mnist, drawings
):
    model, metadata, _ = base
    both = Digits(
        np.concatenate([drawings.images[:60], stripes(40)]),
        np.concatenate([drawings.labels[:60], np.full(40, NOT_A_DIGIT)]),
        "mixed",
    )
    split = split_drawings(both, np.arange(100), SETTINGS)
    assert split.train_digits.labels.max() < 10 and len(split.train_nondigits) > 0
    run = FinetuneRun(model, metadata, split, SETTINGS, mnist=base_mnist, base_name="small")
    # Trained as outliers (with the synthetic ones), never as a class; held-out ones never.
    outliers = rows(run.training.nondigits)
    assert rows(digits_to_inputs(split.train_nondigits.images)) <= outliers
    held_out = split.held_out.subset(np.flatnonzero(split.held_out.labels == NOT_A_DIGIT))
    assert not rows(digits_to_inputs(held_out.images)) & (outliers | rows(run.training.inputs))
    assert not rows(digits_to_inputs(split.train_nondigits.images)) & rows(run.training.inputs)
    assert run.training.labels.max() < 10 and run.nondigit_repeats >= 1
    # They join TrainingRun's own batches: a step's extra rows are drawn from that bank.
    reports = list(run)
    result = run.result
    before, after = result.before.held_out_not_a_digit, result.after.held_out_not_a_digit
    assert before.total == after.total == len(held_out) > 0
    assert after.correct > before.correct  # it learnt to refuse them
    assert "non-digits refused" in reports[0].log_line()
    section = result.metadata["finetune"]
    assert section["drawings"]["not_a_digit_held_out_count"] == len(held_out)
    assert section["mix"]["not_a_digit_repeats"] == run.nondigit_repeats
    assert section["after"]["held_out_not_a_digit"]["total"] == len(held_out)
    assert section["change_points"]["held_out_not_a_digit"] > 0
    # "after" refuses as the saved model does: under its own new calibration.
    assert (
        calibration_of(result.model).reject_below == result.metadata["calibration"]["reject_below"]
    )


# ---------------------------------------------------------------------------
# The benchmark script runs end to end


def test_finetune_benchmark_quick_prints_both_figures(capsys):
    if not (ASSETS_DIR / "mlp.safetensors").is_file():
        pytest.skip("assets/mlp is not there")
    spec = importlib.util.spec_from_file_location(
        "finetune_benchmark", REPO / "scripts" / "finetune_benchmark.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "machine:" in out and "command: python scripts/finetune_benchmark.py --quick" in out
    assert "before held-out drawings" in out and "after  held-out drawings" in out
    assert "| seed | held-out before |" in out


# ---------------------------------------------------------------------------
# The CLI subcommand (skipped until `drawings finetune` is wired into digitnet.cli)


def cli_has_finetune() -> bool:
    from digitnet.cli import build_parser

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the help text, when it is there
            build_parser().parse_args(["drawings", "finetune", "--help"])
    except SystemExit as exit_:
        return exit_.code == 0
    return False


@pytest.mark.skipif(not cli_has_finetune(), reason="digitnet.cli has no 'drawings finetune' yet")
def test_the_cli_fine_tunes_saves_and_refuses_in_one_line(tmp_path, capsys, base, drawings):
    from digitnet.cli import main

    _, _, base_path = base
    db = tmp_path / "d.sqlite"
    with open_store(db) as store:
        store.save_many(drawings.images[:10], drawings.labels[:10], session="s", source="app")
    out = tmp_path / "tuned"
    args = ["drawings", "finetune", "--db", db, "--model", base_path, "--out", out, "--quiet"]
    assert main([str(a) for a in args]) == 2
    assert_one_line(capsys.readouterr().err.removeprefix("error: "), "only 10", "at least 20")

    with open_store(db) as store:
        store.save_many(drawings.images[10:], drawings.labels[10:], session="s", source="app")
    assert main([str(a) for a in [*args, "--epochs", "1", "--held-out", "0.5", "--seed", "3"]]) == 0
    printed = capsys.readouterr().out
    assert "training on 100, holding out 100 (share 0.5, seed 3)" in printed
    assert "held-out drawings:" in printed and "MNIST validation:" in printed
    _, metadata = load_checkpoint(out)
    assert metadata["finetune"]["drawings"]["seed"] == 3
    assert metadata["command"].startswith("python -m digitnet drawings finetune")

    assert main(["drawings", "finetune", "--db", str(db), "--out", str(ASSETS_DIR / "x")]) == 2
    assert_one_line(capsys.readouterr().err, "assets/ holds the shipped weights")
    assert not (ASSETS_DIR / "x.json").exists()


def test_a_fine_tuned_bases_training_drawings_are_never_held_out(drawings):
    """A fine-tune of a fine-tune: the first one's training drawings train again, so the
    second is measured (and measures its base) only on drawings neither trained on."""
    first = split_drawings(drawings.subset(np.arange(120)), np.arange(500, 620), SETTINGS)
    grown = np.arange(500, 700)  # the store grew: the permutation, and so the split, change
    plain = split_drawings(drawings, grown, SETTINGS)
    assert np.isin(plain.held_out_ids, first.train_ids).any()  # what would flatter it
    second = split_drawings(drawings, grown, SETTINGS, trained_before=first.train_ids)
    assert not np.isin(second.held_out_ids, first.train_ids).any()
    assert set(first.train_ids) <= set(second.train_ids)
    assert len(second.train_ids) + len(second.held_out_ids) == len(grown)
    held_out_labels = drawings.labels[second.held_out_ids - 500]
    np.testing.assert_array_equal(second.held_out.labels, held_out_labels)

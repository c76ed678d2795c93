"""The training service behind the Train tab (digitnet.jobs): knobs, caps, the queue, Stop,
the time cap, sessions ending, privacy and eviction, with real (tiny) trainings.

Runs train a 16-unit MLP on 540 of the shipped digits, so each takes about a second.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from conftest import assert_one_line

from digitnet.admission import Caps, TrainingRefused, model_cost, parameter_count
from digitnet.checkpoint import load_checkpoint
from digitnet.config import ConfigError
from digitnet.data import Digits
from digitnet.evaluate import evaluate_drawings
from digitnet.export import load_web, run_web
from digitnet.finetune import FinetuneConfig, split_drawings
from digitnet.jobs import (
    CANCELLED,
    DONE,
    QUEUED,
    TIME_CAP,
    TRAINING,
    FinetuneRequest,
    Job,
    Training,
)
from digitnet.knobs import PRESETS, parse_knobs
from digitnet.model import ModelConfig, build_model, count_parameters
from digitnet.runs import prepare_data
from digitnet.service_settings import service_from_environ
from digitnet.train import EpochReport, StepReport, TrainConfig
from digitnet.training_service import TrainingService

TINY = {"hidden_sizes": "16", "epochs": 2, "augment": False, "batch_size": 32}
# Long enough that it is still training when a test acts on it: augmentation costs ~10 ms a
# step, and 100 epochs are ~1,700 steps.
LONG = {"hidden_sizes": "16", "epochs": 100, "augment": True, "batch_size": 32}
WAIT_S = 120  # a generous bound for a busy shared machine; tests end far sooner


@pytest.fixture
def service(tmp_path, small_train_csv):
    """A service on 600 digits (540 train, 60 validation), measured on 20 drawings."""
    service = TrainingService(tmp_path / "runs", data_paths=[small_train_csv], drawings=20)
    yield service
    service.close()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def finish(job):
    wait_for(lambda: job.finished, f"{job.name} to finish")
    return job.snapshot()


def training(job) -> bool:
    """The job is in its training loop and has reported at least one step."""
    snapshot = job.snapshot()
    return snapshot.state == TRAINING and snapshot.last_step is not None


# ---------------------------------------------------------------------------
# Knobs as the UI and the API send them


def test_raw_values_become_a_typed_config():
    config, train_size = parse_knobs(
        {
            "architecture": " mlp ",
            "hidden_sizes": "[64, 32]",
            "cnn_channels": [8, 16],
            "epochs": 3.0,  # a slider's whole number
            "lr": "0.01",
            "shuffle": "false",
            "augment": True,
            "train_size": 500.0,
        }
    )
    assert config.model.hidden_sizes == (64, 32)
    assert config.model.cnn_channels == (8, 16)
    assert config.epochs == 3 and isinstance(config.epochs, int)
    assert config.lr == 0.01 and config.shuffle is False and config.augment is True
    assert train_size == 500
    assert parse_knobs({})[1] is None  # no train_size: every training digit


BAD_KNOBS = [
    ({"epochs": 0}, "epochs must be in [1, 10000]"),
    ({"epochs": 2.5}, "epochs must be a whole number"),
    ({"lr": "fast"}, "lr must be a number"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": 0}, "lr must be in (0, 10]"),
    ({"dropout": 1.0}, "dropout must be in [0, 1)"),
    ({"architecture": "transformer"}, "architecture must be one of mlp, cnn"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, adam, adamw"),
    ({"hidden_sizes": "512, x"}, "hidden_sizes must be a number"),
    ({"hidden_sizes": ""}, "hidden_sizes needs at least one size"),
    ({"hidden_sizes": "0"}, "hidden_sizes must be in [1, 4096]"),
    ({"cnn_channels": "32"}, "cnn_channels needs 2 sizes"),
    ({"shuffle": "maybe"}, "shuffle must be true or false"),
    ({"batch_size": True}, "batch_size must be a number"),
    ({"train_size": 5}, "train_size must be at least 10"),
    ({"device": "cuda"}, "device is chosen by the server"),
    ({"colour": "red"}, "unknown setting colour"),
    ({"lr": "nan"}, "lr must be a finite number"),
    ({"dropout": float("nan")}, "dropout must be a finite number"),
]


@pytest.mark.parametrize("values, needle", BAD_KNOBS, ids=[str(v) for v, _ in BAD_KNOBS])
def test_bad_knobs_are_one_line(values, needle):
    with pytest.raises(ConfigError) as caught:
        parse_knobs(values)
    assert_one_line(str(caught.value), needle)


def test_every_preset_is_a_valid_config_within_the_default_caps():
    for name, values in PRESETS.items():
        config, _ = parse_knobs(values)
        Caps().check(config, 8000)
        assert config.epochs <= 20, name  # each fits a workshop's attention span
    assert PRESETS["the original tutorial"]["optimizer"] == "sgd"
    assert PRESETS["the original tutorial"]["shuffle"] is False


def test_parameters_are_counted_without_allocating():
    config = ModelConfig(hidden_sizes=(4096, 4096, 4096))
    assert parameter_count(config) == 784 * 4096 + 2 * 4096 * 4096 + 4096 * 10 + 3 * 4096 + 10
    small = ModelConfig(architecture="cnn")
    assert parameter_count(small) == count_parameters(build_model(small))


# ---------------------------------------------------------------------------
# Caps and the queue


CAPPED = [
    ({"epochs": 101}, "epochs: at most 100 on this server"),
    ({"batch_size": 1024}, "batch_size: at most 512 on this server"),
    ({"train_size": 20_000}, "train_size: at most 10,000 digits on this server"),
    ({"hidden_sizes": "4096, 4096"}, "parameters, over this server's 2,000,000"),
]


@pytest.mark.parametrize("values, needle", CAPPED, ids=[str(v) for v, _ in CAPPED])
def test_caps_refuse_in_one_line(service, values, needle):
    with pytest.raises(TrainingRefused) as caught:
        service.submit("a", {**TINY, **values})
    assert_one_line(str(caught.value), needle)
    assert service.active_job("a") is None  # nothing was queued


def test_caps_are_stated():
    text = Caps().describe()
    for figure in ("100 epochs", "10,000 training digits", "120 s", "2,000,000 parameters"):
        assert figure in text


def test_one_run_at_a_time_in_order_with_queue_positions(tmp_path, small_train_csv):
    service = TrainingService(
        tmp_path / "runs", caps=Caps(max_queue=2), data_paths=[small_train_csv], drawings=20
    )
    try:
        first = service.submit("a", LONG)
        wait_for(lambda: training(first), "the first run to train")
        second = service.submit("b", {**TINY, "seed": 1})  # distinct: identical runs share
        third = service.submit("c", {**TINY, "seed": 2})
        assert (second.snapshot().state, second.snapshot().position) == (QUEUED, 1)
        assert (third.snapshot().state, third.snapshot().position) == (QUEUED, 2)
        with pytest.raises(TrainingRefused) as caught:  # the queue holds two
            service.submit("d", {**TINY, "seed": 3})
        assert_one_line(str(caught.value), "2 runs are already waiting")
        with pytest.raises(TrainingRefused) as caught:  # one run per visitor at a time
            service.submit("b", TINY)
        assert_one_line(str(caught.value), "you already have a run queued or training")

        assert service.stop("a") == first.name
        assert finish(first).state == DONE
        assert finish(second).state == DONE
        assert third.snapshot().position == 0
        assert finish(third).state == DONE
        # Each visitor numbers their own runs.
        assert [first.name, second.name, third.name] == ["run-1", "run-1", "run-1"]
    finally:
        service.close()


# ---------------------------------------------------------------------------
# Stop, the time cap, and sessions that end


def test_stop_ends_the_run_and_keeps_the_best_weights(service):
    job = service.submit("a", LONG)
    wait_for(lambda: training(job), "the run to train")
    stopped_at = job.snapshot().last_step.step
    assert service.stop("a") == "run-1"
    snapshot = finish(job)
    assert snapshot.state == DONE
    summary = snapshot.summary()
    assert summary["stopped"] is True and summary["stop_reason"] == "stopped by you"
    assert summary["epochs"] < 100
    steps = [r for r in snapshot.reports if isinstance(r, StepReport)]
    assert steps[-1].step < steps[-1].total_steps
    assert steps[-1].step >= stopped_at
    last = snapshot.reports[-1]
    assert isinstance(last, EpochReport) and last.epoch == summary["epochs"]
    # The kept weights are the best epoch's, saved, and load strictly as a checkpoint.
    record = snapshot.record
    history = record.metadata["history"]
    best = max(history, key=lambda e: (e["val_accuracy"], -e["val_loss"]))
    assert record.metadata["best_epoch"] == best["epoch"]
    assert summary["val_accuracy"] == pytest.approx(best["val_accuracy"])
    model, metadata = load_checkpoint(record.checkpoint)
    assert metadata["stopped"] is True and metadata["run"] == "run-1"
    assert record.download.is_file()
    # The browser's copy beside it answers as the saved weights do.
    assert record.web_model.parent == record.checkpoint.parent
    probe = np.random.default_rng(1).random((3, 28, 28), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(probe)).numpy()
    np.testing.assert_allclose(run_web(load_web(record.web_model), probe), expected, atol=1e-3)
    assert service.stop("a") is None  # nothing left to stop


def test_stop_takes_a_queued_run_off_the_queue(service):
    first = service.submit("a", LONG)
    wait_for(lambda: training(first), "the first run to train")
    queued = service.submit("b", TINY)
    assert service.stop("b") == "run-1"
    assert queued.snapshot().state == CANCELLED
    assert first.snapshot().state == TRAINING  # someone else's run goes on
    service.stop("a")
    finish(first)
    assert service.runs("b") == []


def test_the_time_cap_stops_a_run_and_keeps_it(tmp_path, small_train_csv):
    service = TrainingService(
        tmp_path / "runs", caps=Caps(max_seconds=0.5), data_paths=[small_train_csv], drawings=20
    )
    try:
        snapshot = finish(service.submit("a", LONG))
        assert snapshot.state == DONE
        summary = snapshot.summary()
        assert summary["stopped"] is True
        assert summary["stop_reason"] == "the server's time cap"
        assert summary["epochs"] < 100
        assert snapshot.record.model is not None
    finally:
        service.close()


def test_an_ended_session_cancels_its_runs_and_forgets_them(service):
    done = finish(service.submit("a", TINY))
    assert [r.name for r in service.runs("a")] == ["run-1"]
    running = service.submit("a", LONG)
    wait_for(lambda: training(running), "the run to train")
    queued = service.submit("b", {**TINY, "seed": 1})
    service.end_session("b")
    assert queued.snapshot().state == CANCELLED
    service.end_session("a")
    snapshot = finish(running)
    assert snapshot.state == CANCELLED and snapshot.record is None
    assert snapshot.stop_reason == "the session ended"
    assert service.runs("a") == [] and service.find_run("a", "run-1") is None
    # A cancelled run leaves nothing on disk; the finished one stays until evicted.
    folders = [path for path in service.runs_dir.iterdir() if path.is_dir()]
    assert folders == [done.record.checkpoint.parent]


# ---------------------------------------------------------------------------
# Privacy and the disk


def test_runs_are_private_to_their_session(service):
    mine = finish(service.submit("a", TINY))
    assert service.runs("b") == []
    assert service.find_run("b", mine.name) is None
    theirs = finish(service.submit("b", {**TINY, "hidden_sizes": "8"}))
    assert mine.name == theirs.name == "run-1"
    assert service.find_run("a", "run-1").model.fc1.out_features == 16
    assert service.find_run("b", "run-1").model.fc1.out_features == 8


def test_the_oldest_runs_are_evicted_from_disk_and_memory(tmp_path, small_train_csv):
    runs_dir = tmp_path / "runs"
    (runs_dir / "notes").mkdir(parents=True)  # not a run folder: never touched
    service = TrainingService(runs_dir, keep_runs=2, data_paths=[small_train_csv], drawings=20)
    try:
        records = [finish(service.submit("a", {**TINY, "seed": s})).record for s in range(3)]
        oldest, *kept = records
        assert not oldest.checkpoint.parent.exists()
        assert oldest.evicted and oldest.model is None
        for record in kept:
            assert record.checkpoint.with_suffix(".safetensors").is_file()
            assert not record.evicted
        assert (runs_dir / "notes").is_dir()
        table = [record.table_row() for record in service.runs("a")]
        assert [row["run"] for row in table] == ["run-1", "run-2", "run-3"]
        assert table[0]["note"] == "removed (oldest)"
        assert [row["note"] for row in table[1:]] == ["", ""]
    finally:
        service.close()


def test_a_run_records_what_the_runs_table_needs(service):
    snapshot = finish(service.submit("a", {**TINY, "train_size": 200}))
    summary = snapshot.summary()
    assert summary["run"] == "run-1" and summary["state"] == DONE
    assert summary["train_size"] == 200 and summary["val_size"] == 60
    assert 0 <= summary["val_accuracy"] <= 1 and summary["drawings"] == 20
    assert summary["seconds"] > 0 and summary["knobs"]["hidden_sizes"] == "16"
    assert "device" not in summary["knobs"]
    row = snapshot.record.table_row()
    assert row["model"] == "MLP 784-16-10" and row["epochs"] == "2/2"
    assert row["train digits"] == 200 and row["augment"] == "no"
    # The config saved beside the weights rebuilds the run's model.
    assert TrainConfig.from_dict(snapshot.record.metadata["config"]).model.hidden_sizes == (16,)


def test_drawing_accuracy_is_evaluate_drawings_figure(service, small_train_csv):
    """Rendered once per split and kept, the drawings give run_metadata(drawings=N)'s figure."""
    records = [finish(service.submit("a", {**TINY, "seed": 1})).record for _ in range(2)]
    config = records[0].config
    data = prepare_data(config, [small_train_csv])
    chosen = data.val_index[:20]
    for record in records:
        expected = evaluate_drawings(
            record.model, data.digits.images[chosen], data.digits.labels[chosen], seed=1
        )
        assert record.metadata["metrics"]["drawings"] == expected


def test_all_means_every_training_digit(service):
    snapshot = finish(service.submit("a", {**TINY, "train_size": 9000}))
    assert snapshot.summary()["train_size"] == 540


def test_settings_come_from_the_environment(tmp_path):
    service = service_from_environ(
        {
            "DIGITNET_RUNS_DIR": str(tmp_path / "r"),
            "DIGITNET_KEEP_RUNS": "3",
            "DIGITNET_MAX_EPOCHS": "10",
            "DIGITNET_MAX_TRAIN_SECONDS": "30",
        }
    )
    assert service.runs_dir == tmp_path / "r" and service.keep_runs == 3
    assert service.caps.max_epochs == 10 and service.caps.max_seconds == 30.0
    assert service.caps.max_train_size == Caps().max_train_size
    with pytest.raises(ConfigError) as caught:
        service_from_environ({"DIGITNET_KEEP_RUNS": "lots"})
    assert_one_line(str(caught.value), "DIGITNET_KEEP_RUNS", "positive number")


# ---------------------------------------------------------------------------
# Fine-tunes: the same queue, caps and private runs as training


def finetune_request(service, mnist, epochs: int = 2) -> FinetuneRequest:
    """A tiny run of this service as the base, and 40 mirrored digits as the drawings."""
    base = finish(service.submit("a", TINY)).record
    picked = mnist.subset(np.arange(6000, 6040))
    drawings = Digits(np.ascontiguousarray(picked.images[:, :, ::-1]), picked.labels, "mirrored")
    settings = FinetuneConfig(epochs=epochs, augment=False, held_out_fraction=0.5)
    split = split_drawings(drawings, np.arange(40), settings)
    return FinetuneRequest(base.name, base.model, base.metadata, split, settings)


def test_a_finetune_is_a_private_run_with_before_and_after(service, mnist):
    request = finetune_request(service, mnist)
    snapshot = finish(service.submit_finetune("a", request))
    assert snapshot.state == DONE, snapshot.error
    record = snapshot.record
    assert record.name == "tuned-1"  # fine-tunes count apart from runs
    assert [line.split(":")[0] for line in snapshot.notes] == [
        "before",
        "epoch   1/2",
        "epoch   2/2",
    ]
    assert [e.epoch for e in snapshot.epochs] == [1, 2]  # curves, as a run's
    tuned = record.summary()["finetune"]
    assert tuned["base_model"] == "run-1" and tuned["held_out_drawings"] == 20
    section = record.metadata["finetune"]
    assert tuned["held_out_after"] == pytest.approx(
        100 * section["after"]["held_out"]["accuracy"], abs=0.01
    )
    assert "fine-tuned run-1" in record.table_row()["note"]
    assert record.web_model.is_file() and load_checkpoint(record.checkpoint)[1]["run"] == "tuned-1"
    assert [r.name for r in service.runs("a")] == ["run-1", "tuned-1"]
    assert service.runs("b") == [] and service.find_run("b", "tuned-1") is None


def test_a_finetune_waits_its_turn_and_stops_like_a_run(service, mnist):
    request = finetune_request(service, mnist, epochs=50)  # still training when Stop comes
    first = service.submit("b", LONG)
    wait_for(lambda: training(first), "the first run to train")
    tune = service.submit_finetune("a", request)
    assert tune.snapshot().position == 1
    with pytest.raises(TrainingRefused, match="already have a run"):
        service.submit("a", TINY)
    service.stop("b")
    finish(first)
    wait_for(lambda: training(tune), "the fine-tune to train")
    assert service.stop("a") == "tuned-1"
    snapshot = finish(tune)
    assert snapshot.state == DONE and snapshot.record.summary()["stopped"] is True


# ---------------------------------------------------------------------------
# Admission: hostile and careless requests cost nothing


HOSTILE = [
    ({"hidden_sizes": ", ".join(["1"] * 100_000)}, "hidden_sizes: at most 8 layers"),
    (
        {
            "architecture": "cnn",
            "cnn_channels": "460, 1",
            "val_fraction": 0.99,
            "train_size": 10,
            "batch_size": 10,
            "epochs": 1,
        },
        "cnn_channels: at most 128 channels",
    ),
    ({"architecture": "cnn", "cnn_channels": "128, 128"}, "multiply-adds, over this server's"),
    ({"architecture": "cnn", "epochs": 30}, "this run needs about"),
    ({"val_fraction": 0.9}, "val_fraction: from 0.05 to 0.5 on this server, got 0.9"),
    ({"batch_size": 1}, "batch_size: at least 8 on this server"),
    ({"hidden_sizes": "8192"}, "hidden_sizes must be in [1, 4096]"),
    (
        {"architecture": "cnn", "cnn_channels": "128, 96", "batch_size": 512, "epochs": 1}
        | {"train_size": 500},
        "one step or validation pass of this run needs about",
    ),
]


@pytest.mark.parametrize("values, needle", HOSTILE, ids=[str(v)[:40] for v, _ in HOSTILE])
def test_hostile_requests_are_refused_at_once_without_building_anything(
    service, monkeypatch, values, needle
):
    def no_building(*args, **kwargs):
        raise AssertionError("admission built a model")

    # What a refusal costs is measured by scripts/room_sim.py (a timed test would be flaky
    # on a busy machine); here: nothing is built and nothing starts.
    monkeypatch.setattr("digitnet.model.build_model", no_building)
    with pytest.raises((TrainingRefused, ConfigError)) as caught:
        service.submit("a", values)
    assert_one_line(str(caught.value), needle)
    assert service.active_job("a") is None and service._worker is None  # nothing started


def test_the_cost_is_counted_from_the_config():
    """Parameters and multiply-adds by arithmetic, checked against the built models."""
    for config in [
        ModelConfig(),
        ModelConfig(hidden_sizes=(3, 9, 2)),
        ModelConfig(architecture="cnn"),
        ModelConfig(architecture="cnn", cnn_channels=(5, 7), cnn_hidden=13),
    ]:
        model = build_model(config)
        macs = []

        def count(module, inputs, output, macs=macs):
            if isinstance(module, torch.nn.Linear):
                macs.append(module.in_features * module.out_features)
            elif isinstance(module, torch.nn.Conv2d):
                kernel = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                macs.append(output[0].numel() * kernel)

        for module in model.modules():
            module.register_forward_hook(count)
        model.eval()(torch.zeros(1, 1, 28, 28))
        assert model_cost(config).forward_macs == sum(macs), config
        assert model_cost(config).parameters == count_parameters(model), config


def test_train_size_left_out_is_the_servers_most(tmp_path, small_train_csv):
    service = TrainingService(
        tmp_path / "runs", caps=Caps(max_train_size=100), data_paths=[small_train_csv]
    )
    try:
        snapshot = finish(service.submit("a", {**TINY, "train_size": None}))
        assert snapshot.summary()["train_size"] == 100
    finally:
        service.close()


class FakeClock:
    """The service's clock, moved on by the test."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_time_cap_covers_the_whole_run(tmp_path, small_train_csv):
    """Past the cap the run stops, skips the drawings and the web export, and is saved with
    its best epoch."""
    clock = FakeClock()
    service = TrainingService(
        tmp_path / "runs",
        caps=Caps(max_seconds=60),
        data_paths=[small_train_csv],
        drawings=20,
        clock=clock,
    )
    try:
        job = service.submit("a", LONG)
        wait_for(lambda: training(job), "the run to train")
        clock.now = 61.0
        snapshot = finish(job)
        assert snapshot.state == DONE
        summary = snapshot.summary()
        assert summary["stopped"] is True and summary["stop_reason"] == "the server's time cap"
        metadata = snapshot.record.metadata
        assert "drawings" not in metadata["metrics"]
        assert snapshot.record.web_model is None  # answers from the server
        history = metadata["history"]
        best = max(history, key=lambda e: (e["val_accuracy"], -e["val_loss"]))
        assert metadata["best_epoch"] == best["epoch"]
        assert load_checkpoint(snapshot.record.checkpoint)[1]["stop_reason"] == TIME_CAP
    finally:
        service.close()


# ---------------------------------------------------------------------------
# Identical runs train once


def folders(service) -> list:
    return sorted(path.name for path in service.runs_dir.iterdir() if path.is_dir())


def test_an_identical_request_joins_the_run_in_progress(service):
    first = service.submit("a", LONG)
    wait_for(lambda: training(first), "the run to train")
    joined = service.submit("b", LONG)
    assert joined.training is first.training
    assert joined.snapshot().state == TRAINING and joined.snapshot().reports  # live curves
    assert first.snapshot().sessions == 2
    service.stop("a")  # shared: a leaves it, and it goes on for b
    assert first.snapshot().state == CANCELLED and joined.snapshot().state == TRAINING
    service.stop("b")  # now b's alone: it stops and keeps its best
    mine = finish(joined)
    assert mine.state == DONE and mine.summary()["stop_reason"] == "stopped by you"
    assert mine.record.name == "run-1" and mine.summary()["run"] == "run-1"
    assert service.runs("a") == []  # a left before it ended


def test_an_identical_request_gets_the_finished_run_at_once(service):
    done = finish(service.submit("a", TINY))
    copy = service.submit("b", TINY)
    assert copy.finished  # handed over by submit itself: no queue, no training
    snapshot = copy.snapshot()
    assert snapshot.state == DONE and snapshot.record.name == "run-1"
    assert snapshot.record.checkpoint == done.record.checkpoint  # the same files
    assert snapshot.reports == done.reports  # the curves too
    assert snapshot.summary()["val_accuracy"] == done.summary()["val_accuracy"]
    assert len(folders(service)) == 1
    # Another seed is another run.
    assert finish(service.submit("b", {**TINY, "seed": 5})).record.checkpoint.parent != (
        done.record.checkpoint.parent
    )


def test_shared_files_go_with_their_last_record(tmp_path, small_train_csv):
    service = TrainingService(
        tmp_path / "runs", keep_runs=1, data_paths=[small_train_csv], drawings=20
    )
    try:
        shared = finish(service.submit("a", TINY)).record
        finish(service.submit("b", TINY))
        finish(service.submit("a", {**TINY, "seed": 1}))  # a's quota of 1: its run-1 goes
        assert service.runs("a")[0].evicted and service.runs("a")[0].removed == "oldest"
        assert shared.checkpoint.parent.is_dir()  # b still holds it
        assert service.find_run("b", "run-1").model is not None
        finish(service.submit("b", {**TINY, "seed": 2}))  # and now b lets go of it too
        assert not shared.checkpoint.parent.exists()
        assert len(folders(service)) == 2
    finally:
        service.close()


# ---------------------------------------------------------------------------
# Fair sharing, quotas and the disk


def test_queued_runs_see_their_place_and_an_estimated_wait(service):
    first = service.submit("a", LONG)
    wait_for(lambda: training(first), "the run to train")
    second = service.submit("b", {**TINY, "seed": 1})
    third = service.submit("c", {**TINY, "seed": 2})
    two, three = second.snapshot(), third.snapshot()
    assert (two.position, three.position) == (1, 2)
    assert 0 <= two.wait_seconds < three.wait_seconds
    assert three.summary()["wait_seconds"] >= 0 and three.summary()["position"] == 2
    service.stop("a")
    assert finish(third).state == DONE


def test_the_queue_holds_a_workshop():
    assert Caps().max_queue >= 30


def test_the_disk_cap_takes_ended_sessions_runs_first_and_keeps_each_live_newest(
    tmp_path, small_train_csv
):
    service = TrainingService(
        tmp_path / "runs", max_stored_runs=3, data_paths=[small_train_csv], drawings=20
    )
    try:
        first = finish(service.submit("first", {**TINY, "seed": 0})).record
        gone = finish(service.submit("gone", {**TINY, "seed": 1})).record
        service.end_session("gone")
        older = finish(service.submit("other", {**TINY, "seed": 2})).record
        # A 4th run: the ended session's run goes first, though it is not the oldest.
        finish(service.submit("other", {**TINY, "seed": 3}))
        assert not gone.checkpoint.parent.exists()
        assert first.checkpoint.parent.is_dir() and older.checkpoint.parent.is_dir()
        # A 5th: nothing of an ended session is left; the least recently used live run
        # goes, never a live session's newest (first's only run is its newest).
        service.find_run("first", "run-1")  # used: it would be the newest anyway
        finish(service.submit("other", {**TINY, "seed": 4}))
        assert not older.checkpoint.parent.exists()
        assert service.runs("other")[0].table_row()["note"] == "removed (to free disk space)"
        assert first.checkpoint.parent.is_dir() and service.find_run("first", "run-1").model
        assert len(folders(service)) == 3
    finally:
        service.close()


def test_one_sessions_run_survives_many_others(tmp_path, small_train_csv):
    """Runs kept: one learner trains, 24 others each train one (half of them then leave);
    the first is still there, and only the leavers' runs made room."""
    service = TrainingService(
        tmp_path / "runs", max_stored_runs=10, data_paths=[small_train_csv], drawings=0
    )
    quick = {**TINY, "epochs": 1, "train_size": 50}
    try:
        finish(service.submit("first", quick))
        for seed in range(1, 25):
            finish(service.submit(f"learner-{seed}", {**quick, "seed": seed}))
            if seed % 2 == 0:
                service.end_session(f"learner-{seed}")
        assert service.find_run("first", "run-1").model is not None
        # Over the cap of 10, every live session still has its newest run: 1 + 12 of them.
        assert len(folders(service)) == 13
        assert all(service.find_run(f"learner-{s}", "run-1").model for s in range(1, 25, 2))
    finally:
        service.close()


def test_a_run_stopped_early_is_not_handed_to_an_identical_request(service):
    job = service.submit("a", LONG)
    wait_for(lambda: training(job), "the run to train")
    service.stop("a")
    assert finish(job).record.summary()["stopped"] is True
    again = service.submit("b", LONG)  # they asked for all 100 epochs: it trains anew
    wait_for(lambda: training(again), "the new run to train")
    assert again.training is not job.training
    service.stop("b")
    finish(again)


def test_many_followers_redraw_a_training_less_often(monkeypatch):
    """Step reports move the version (a page's cue to redraw) at most 16 times a second
    across all the jobs following one training; an epoch's end always does."""
    clock = FakeClock()
    monkeypatch.setattr("digitnet.jobs.time.monotonic", clock)
    config, _ = parse_knobs(TINY)
    alone, crowded = Training("a", config, None), Training("b", config, None)
    crowded.jobs = [Job(f"s{i}", "run-1", crowded) for i in range(20)]
    alone.jobs = [Job("s", "run-1", alone)]
    for step in range(1, 4):  # a report every 0.1 s
        clock.now += 0.1
        for training in (alone, crowded):
            training.add(StepReport(1, 2, step, 8, 1.0, 0.5, 1e-3, float(step)))
    assert alone._version == 3  # one page: every report shows
    assert crowded._version == 1  # twenty: the first, then nothing for 20/16 s
    crowded.add(EpochReport(1, 2, 0.5, 0.8, 0.4, 0.9, 1e-3, 2.0, 4, True))
    assert crowded._version == 2 and len(crowded.snapshot("run-1").reports) == 4

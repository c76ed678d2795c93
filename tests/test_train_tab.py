"""The Train tab (digitnet.ui.train_tab): its helpers called directly, then the whole app served
in-process and driven with gradio_client as a program would: the streaming ``train`` endpoint,
``stop``, ``runs``, and ``classify``/``predict`` reading drawings with a session's own run.

Offline: Gradio's analytics and the Hugging Face telemetry are off before gradio is imported.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import time  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import assert_one_line, close_when_idle  # noqa: E402

import app  # noqa: E402
from digitnet.dashboard import DIGITS, progress_frame  # noqa: E402
from digitnet.drawings import render_drawings  # noqa: E402
from digitnet.jobs import (  # noqa: E402
    CANCELLED,
    DONE,
    MEASURING,
    QUEUED,
    TRAINING,
    JobSnapshot,
)
from digitnet.knobs import PRESETS, knob_fields  # noqa: E402
from digitnet.predict import predict_probs, preprocess_image_file  # noqa: E402
from digitnet.strokes import PenStyle, digit_strokes  # noqa: E402
from digitnet.train import EpochReport, StepReport, TrainConfig  # noqa: E402
from digitnet.training_service import TrainingService  # noqa: E402
from digitnet.ui import train_tab  # noqa: E402
from digitnet.ui.dashboard_tab import make_dashboard_handler  # noqa: E402
from digitnet.ui.draw_tab import make_draw_handlers  # noqa: E402
from digitnet.ui.live_job import status_markdown  # noqa: E402
from digitnet.ui.session import ModelLookup  # noqa: E402

WAIT_S = 180  # generous for a busy shared machine
# A run that is still training when a test acts on it (~2.5 s an epoch here).
LONG = {"epochs": 30}


# ---------------------------------------------------------------------------
# Helpers, called directly


def step(epoch: int, step: int, loss: float, accuracy: float) -> StepReport:
    return StepReport(epoch, 2, step, 8, loss, accuracy, 1e-3, float(step))


def epoch_end(epoch: int, val: float, steps: int = 4, complete: bool = True) -> EpochReport:
    return EpochReport(epoch, 2, 0.5, 0.8, 0.4, val, 1e-3, 2.0, steps, complete)


def snapshot(state: str, reports=(), **changes) -> JobSnapshot:
    values = dict(
        name="run-1",
        state=state,
        version=1,
        position=0,
        reports=tuple(reports),
        stop_reason=None,
        error=None,
        record=None,
        train_size=None,
        started=None,
    )
    return JobSnapshot(**{**values, **changes})


def test_progress_frame_puts_steps_and_epochs_on_one_axis():
    # Reports carry means over the epoch so far; the curve shows each interval's own mean.
    reports = [
        step(1, 2, 2.0, 0.3),  # steps 1-2 averaged 2.0
        step(1, 4, 1.5, 0.45),  # steps 1-4 averaged 1.5, so steps 3-4 averaged 1.0
        epoch_end(1, 0.9),
        step(2, 6, 0.5, 0.8),  # a new epoch: its first two steps
        epoch_end(2, 0.95, steps=2, complete=False),  # stopped half way through epoch 2
    ]
    frame = progress_frame(reports)
    train = frame[(frame.split == "train") & (frame.metric == "loss")]
    assert train.epoch.tolist() == [0.5, 1.0, 1.5] and train.value.tolist() == [2.0, 1.0, 0.5]
    accuracy = frame[(frame.split == "train") & (frame.metric == "accuracy")]
    assert accuracy.value.tolist() == pytest.approx([30, 60, 80])
    val = frame[(frame.split == "validation") & (frame.metric == "accuracy")]
    assert val.epoch.tolist() == [1.0, 1.5] and val.value.tolist() == pytest.approx([90, 95])
    assert progress_frame([]).empty


def test_each_curve_names_both_splits_from_its_first_update():
    # Before the first epoch ends there is no validation point; the frame still names the split
    # (with a NaN row, which draws nothing), as Gradio fixes a plot's colours at its first draw.
    loss, accuracy = train_tab.curve_frames(snapshot(TRAINING, [step(1, 2, 2.0, 0.3)]))
    for frame in (loss, accuracy):
        assert frame.split.tolist() == ["train", "validation"]
        assert frame.value.isna().tolist() == [False, True]
    empty, _ = train_tab.curve_frames(snapshot(QUEUED))
    assert empty.split.tolist() == ["train", "validation"] and empty.value.isna().all()
    full, _ = train_tab.curve_frames(snapshot(TRAINING, [step(1, 4, 1.0, 0.6), epoch_end(1, 0.9)]))
    assert full.value.notna().all() and set(full.split) == {"train", "validation"}


def test_the_status_line_says_where_the_run_is():
    assert "2 runs are ahead of yours" in status_markdown(snapshot(QUEUED, position=2))
    assert "1 run is ahead" in status_markdown(snapshot(QUEUED, position=1))
    line = status_markdown(
        snapshot(TRAINING, [step(1, 4, 1.0, 0.6), epoch_end(1, 0.9), step(2, 6, 0.5, 0.8)])
    )
    for part in ("epoch 2/2", "step 6/8", "last epoch 2.0 s", "validation 90.0%", "ETA 2 s"):
        assert part in line, line
    stopping = snapshot(TRAINING, [step(1, 4, 1.0, 0.6)], stop_reason="stopped by you")
    assert "stopping (by you)" in status_markdown(stopping)
    assert "measuring" in status_markdown(snapshot(MEASURING, [step(1, 4, 1, 0.6)]))
    assert "cancelled" in status_markdown(snapshot(CANCELLED, stop_reason="gone"))


def test_every_knob_is_generated_once_with_its_help():
    groups = train_tab.grouped_fields()
    names = [field.name for fields in groups.values() for field in fields]
    assert sorted(names) == sorted(field.name for field in knob_fields())
    assert "device" not in names  # the server's choice
    assert [f.name for f in groups["Augmentation"]][0] == "augment"
    with gr.Blocks():
        for field in knob_fields():
            value = PRESETS["digitnet's recipe"][field.name]
            component = train_tab.knob_component(field, value, max_epochs=50)
            # A learner's words first, the config name (as the API spells it) beside them.
            assert component.label.endswith(field.name)
            assert component.info and component.info != field.metadata["help"]
            if field.name == "epochs":
                assert isinstance(component, gr.Slider) and component.maximum == 50
    with gr.Blocks():
        lr = next(f for f in knob_fields() if f.name == "lr")
        assert isinstance(train_tab.knob_component(lr, 0.003, 50), gr.Number)
        dropout = next(f for f in knob_fields() if f.name == "dropout")
        slider = train_tab.knob_component(dropout, 0.2, 50)
        assert isinstance(slider, gr.Slider) and slider.maximum < 1  # [0, 1): 1 is excluded


class Request:
    """What the handlers read of a gr.Request."""

    def __init__(self, session_hash: str):
        self.session_hash = session_hash


def test_the_model_lookup_finds_only_the_sessions_own_runs(tmp_path, small_train_csv):
    service = TrainingService(tmp_path, keep_runs=1, data_paths=[small_train_csv], drawings=10)
    try:
        tiny = {"hidden_sizes": "8", "epochs": 1, "augment": False}
        for _ in range(2):
            job = service.submit("a", tiny)
            wait_until(lambda job=job: job.finished, "a tiny run")
        models, _ = app.load_models()
        lookup = ModelLookup(models, service)
        assert lookup.own_run("run-2", Request("a")).name == "run-2"
        assert lookup.find("run-2", Request("a")).name == "run-2"
        assert lookup.own_run("run-2", Request("b")) is None
        assert lookup.find("run-2", Request("b")).name == "MLP"  # not theirs: the default
        assert lookup.own_run("MLP", Request("a")) is None
        assert lookup.find("CNN", Request("a")).name == "CNN"
        assert lookup.own_run(None, None) is None
        assert ModelLookup(models).own_run("run-2", Request("a")) is None
        assert list(lookup.session_models(Request("a"))) == ["MLP", "CNN", "run-2"]
        with pytest.raises(gr.Error) as caught:  # evicted: never silently another model
            lookup.own_run("run-1", Request("a"))
        assert_one_line(caught.value.message, "run-1 was removed", "keeps its last 1 runs")
    finally:
        service.close()


def test_the_drawing_handlers_use_the_sessions_own_run(tmp_path, small_train_csv, mnist):
    """predict, classify and the dashboard take a run's name, in its own session only."""
    service = TrainingService(tmp_path, data_paths=[small_train_csv], drawings=10)
    try:
        job = service.submit("a", {"hidden_sizes": "8", "epochs": 1, "augment": False})
        wait_until(lambda: job.finished, "a tiny run")
    finally:
        service.close()
    models, _ = app.load_models()

    lookup = ModelLookup(models, service)
    draw = make_draw_handlers(lookup, {})
    dashboard = make_dashboard_handler(lookup)
    mine, stranger = Request("a"), Request("b")

    card = dashboard("run-1", mine)[0]
    assert "MLP 784-8-10" in card
    # The shipped models' dashboards are cached; a run's never is, so nobody else gets it.
    assert "MLP 784-512-512-10" in dashboard("run-1", stranger)[0]
    assert dashboard("run-1", mine)[0] == card

    drawing = render_drawings(mnist.images[-1:], seed=0)[0]
    path = tmp_path / "digit.png"
    drawing.save(path)
    value = {"strokes": digit_strokes(7, PenStyle(200, (140, 140), 0.1))}
    *_, comparison, _tally = draw.predict(value, "run-1", None, request=mine)
    assert "Every model's answer, checked on the server: run-1: **" in comparison
    assert "run-1" not in draw.predict(value, "run-1", None, request=stranger)[-2]
    run_model = service.find_run("a", "run-1").model
    probs = predict_probs(run_model, preprocess_image_file(str(path)).image[None])[0]
    answer = draw.classify(str(path), "run-1", mine)
    confidences = {c["label"]: c["confidence"] for c in answer["confidences"]}
    assert [confidences[d] for d in DIGITS] == pytest.approx(probs.tolist(), abs=1e-6)


# ---------------------------------------------------------------------------
# The app served in-process, driven with gradio_client


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The Train tab's service on the shipped 8,000 digits, saving into a temp folder."""
    service = TrainingService(tmp_path_factory.mktemp("runs"), keep_runs=5)
    yield service
    service.close()


@pytest.fixture(scope="module")
def server(service):
    os.environ["GRADIO_HEARTBEAT_INTERVAL"] = "0.5"  # a closed client is noticed at once
    demo, url = app.serve_in_background(*app.load_models(), training=service)
    yield url
    close_when_idle(demo)
    os.environ.pop("GRADIO_HEARTBEAT_INTERVAL", None)


def new_client(url: str, folder: Path):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=str(folder))


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return new_client(server, tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def trained(client):
    """A 5-epoch MLP (digitnet's recipe otherwise) trained through the API: every update
    streamed, the final outputs and the wall time."""
    began = time.perf_counter()
    job = client.submit(architecture="mlp", epochs=5, api_name="/train")
    updates = [outputs[0] for outputs in job]
    final = job.result()
    return updates, final, time.perf_counter() - began


@pytest.fixture(scope="module")
def drawings(mnist, tmp_path_factory) -> list[tuple[Path, int]]:
    """100 canvas-like drawings (10 of each digit) of validation digits, as PNG files."""
    _, val_index = TrainConfig().split(mnist.labels)
    rows = np.concatenate([val_index[mnist.labels[val_index] == d][:10] for d in range(10)])
    folder = tmp_path_factory.mktemp("drawings")
    files = []
    for index, (image, row) in enumerate(zip(render_drawings(mnist.images[rows], seed=7), rows)):
        path = folder / f"{index:03d}-{mnist.labels[row]}.png"
        image.save(path)
        files.append((path, int(mnist.labels[row])))
    return files


def test_the_train_endpoint_takes_the_config_fields_all_with_defaults(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/train", "/stop", "/runs", "/classify", "/predict"} <= set(api)
    parameters = api["/train"]["parameters"]
    names = [p["parameter_name"] for p in parameters]
    assert sorted(names) == sorted([f.name for f in knob_fields()] + ["train_size"])
    assert all(p["parameter_has_default"] for p in parameters)
    defaults = {p["parameter_name"]: p["parameter_default"] for p in parameters}
    assert defaults["architecture"] == "mlp" and defaults["hidden_sizes"] == "512, 512"


def test_a_5_epoch_mlp_streams_and_then_reads_drawings(client, trained, drawings):
    from gradio_client import handle_file

    updates, final, seconds = trained
    summary = final[0]
    print(f"\n5-epoch MLP through the API: {len(updates)} updates, {seconds:.1f} s in all, "
          f"{summary['seconds']:.1f} s training, val {summary['val_accuracy']:.4f}")  # fmt: skip
    assert len(updates) >= 5
    training = [u for u in updates if u["state"] == TRAINING]
    assert len({u["step"] for u in training}) >= 5, "fewer than 5 distinct training updates"
    assert summary["run"] == "run-1" and summary["state"] == DONE
    assert summary["epochs"] == 5 and summary["stopped"] is False
    assert summary["val_accuracy"] >= 0.94
    assert isinstance(summary["seconds"], float) and summary["train_size"] == 7200

    right = 0
    for path, digit in drawings:
        result = client.predict(handle_file(str(path)), "run-1", api_name="/classify")
        right += result["label"] == str(digit)
    print(f"run-1 read {right} of {len(drawings)} canvas-like drawings through classify")
    assert right >= 90

    strokes = {"strokes": digit_strokes(7, PenStyle(200, (140, 140), 0.1))}
    answer, label, *_, comparison = client.predict(strokes, "run-1", api_name="/predict")
    assert label["label"] == "7" and "run-1: **" in comparison


def test_the_run_is_in_the_runs_table_and_downloadable(client, trained):
    _, final, _ = trained
    table = client.predict(api_name="/runs")
    assert table["headers"][:3] == ["run", "model", "optimizer"]
    (row,) = table["data"]
    assert row[0] == "run-1" and row[1] == "MLP 784-512-512-10" and row[3] == "5/5"
    assert row[7] == pytest.approx(100 * final[0]["val_accuracy"], abs=0.01)
    download = final[train_tab_outputs().index("download")]  # the button's update
    assert download["visible"] is True and "run-1" in download["label"]
    with zipfile.ZipFile(download["value"]) as archive:
        assert sorted(archive.namelist()) == ["run-1.json", "run-1.safetensors"]


def train_tab_outputs() -> list[str]:
    """The train endpoint's outputs, by name, in order."""
    return [
        "summary", "status", "loss", "accuracy", "per_class", "per_digit", "confusion",
        "mistakes", "runs", "download", "model_choice",
    ]  # fmt: skip


def test_another_session_sees_none_of_it(server, trained, drawings, tmp_path):
    from gradio_client import handle_file

    stranger = new_client(server, tmp_path)
    try:
        assert stranger.predict(api_name="/runs")["data"] == []
        path, _ = drawings[0]
        with pytest.raises(Exception) as caught:  # gradio_client's AppError
            stranger.predict(handle_file(str(path)), "run-1", api_name="/classify")
        assert_one_line(str(caught.value), "run-1")
    finally:
        stranger.close()


BAD_API_KNOBS = [
    ({"epochs": 0}, "epochs must be in [1, 10000]"),
    ({"epochs": 500}, "epochs: at most 100 on this server"),
    ({"lr": "fast"}, "lr must be a number"),
    ({"hidden_sizes": "512, many"}, "hidden_sizes must be a number"),
    ({"architecture": "transformer"}, "architecture must be one of mlp, cnn"),
    ({"train_size": 20000}, "train_size: at most 10,000"),
]


@pytest.mark.parametrize("knobs, needle", BAD_API_KNOBS, ids=[str(k) for k, _ in BAD_API_KNOBS])
def test_bad_knobs_get_one_line_from_the_api(client, trained, knobs, needle):
    with pytest.raises(Exception) as caught:  # gradio_client's AppError
        client.predict(**knobs, api_name="/train")
    assert_one_line(str(caught.value), needle)
    assert client.predict(api_name="/runs")["data"][0][0] == "run-1"  # still serving


def test_stop_queue_position_and_a_closed_client(server, service, trained, tmp_path):
    """A long run trains; a second visitor waits in line, then closes their client (their
    job is cancelled); Stop ends the first run, which keeps its best weights."""
    runner = new_client(server, tmp_path / "runner")
    waiter = new_client(server, tmp_path / "waiter")
    try:
        running = runner.submit(**LONG, api_name="/train")
        wait_until(lambda: latest(running).get("state") == TRAINING, "the run to train")
        waiting = waiter.submit(epochs=1, api_name="/train")
        wait_until(lambda: latest(waiting).get("state") == QUEUED, "the second run to queue")
        assert latest(waiting)["position"] == 1
        queued_job = service.active_job(waiter.session_hash)
        assert queued_job is not None and queued_job.state == QUEUED

        waiter.close()  # the tab is closed: its queued job goes
        wait_until(lambda: queued_job.state == CANCELLED, "the closed client's job to go")
        assert latest(running)["state"] == TRAINING  # the other visitor's run goes on

        assert "Stopping" in runner.predict(api_name="/stop")
        summary = running.result()[0]
        assert summary["state"] == DONE and summary["stopped"] is True
        assert summary["stop_reason"] == "stopped by you" and summary["epochs"] < 30
        assert runner.predict(api_name="/stop") == "Nothing is training for you."
    finally:
        runner.close()


def latest(job) -> dict:
    outputs = job.outputs()
    return outputs[-1][0] if outputs else {}


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_benchmark_script_runs(capsys):
    """scripts/train_benchmark.py in miniature: the smoke test is the program itself."""
    from test_scripts import load_script

    benchmark = load_script("train_benchmark")
    assert benchmark.main(["--quick", "--only", "presets", "stop"]) == 0
    out = capsys.readouterr().out
    assert "machine:" in out and "| tiny and fast | 0 | 1 |" in out
    assert "Stop -> training loop ended" in out


def test_the_train_handlers_are_plain_functions(tmp_path, small_train_csv):
    """stop, runs and the presets, called directly: no server, no browser."""
    from digitnet.training_service import TrainingService
    from digitnet.ui.session import ModelChoiceOutputs

    service = TrainingService(tmp_path, data_paths=[small_train_csv], drawings=10)
    try:
        knobs = ["hidden_sizes", "epochs"]
        handlers = train_tab.make_train_handlers(service, knobs, ModelChoiceOutputs())
        assert handlers.stop(Request("a")) == "Nothing is training for you."
        assert handlers.list_runs(Request("a")).empty
        note, hidden, epochs = handlers.apply_preset("tiny and fast")
        assert hidden == "256" and "95%" in note.info
        assert epochs == PRESETS["tiny and fast"]["epochs"]
    finally:
        service.close()


def test_the_room_simulation_targets_only_this_machine(capsys, monkeypatch):
    import importlib.util
    import sys

    path = Path(app.__file__).parent / "scripts" / "room_sim.py"
    spec = importlib.util.spec_from_file_location("room_sim", path)
    room = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "room_sim", room)  # its dataclasses look themselves up
    spec.loader.exec_module(room)
    with pytest.raises(SystemExit):
        room.parse_args(["--url", "http://example.com:7860"])
    assert "only a server on this machine" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        room.parse_args(["--start", "--learners", "500"])
    args = room.parse_args(["--url", "http://127.0.0.1:7860", "--phase", "same"])
    assert args.phase == ["same"] and args.learners == 20

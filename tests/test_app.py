"""The drawing app (app.py and digitnet.ui): its handlers called directly, then the app served
in-process on a free port and driven with gradio_client, as the README's API examples are.

Offline: Gradio's analytics and the Hugging Face telemetry are off before gradio is imported.
"""

from __future__ import annotations

import json
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import assert_one_line, close_when_idle  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

import app  # noqa: E402
from digitnet.dashboard import DIGITS  # noqa: E402
from digitnet.data import load_training_data  # noqa: E402
from digitnet.drawings import DrawingStyle, render_drawing  # noqa: E402
from digitnet.numbers import strokes_to_input  # noqa: E402
from digitnet.pad_value import PadDrawing, parse_pad_value  # noqa: E402
from digitnet.predict import Prediction  # noqa: E402
from digitnet.strokes import (  # noqa: E402
    MAX_POINTS,
    MAX_STROKES,
    PenStyle,
    digit_strokes,
)
from digitnet.train import TrainConfig  # noqa: E402
from digitnet.ui.draw_tab import (  # noqa: E402
    STEP_SCALE,
    ParityTally,
    disagreements,
    make_draw_handlers,
)
from digitnet.ui.models import LoadedModel, export_for_browser  # noqa: E402
from digitnet.ui.pad import PROMPT  # noqa: E402

DIGITS_CSV = app.HERE / "assets" / "mnist-train-8k.csv.gz"
EXAMPLES = sorted(app.EXAMPLES_DIR.glob("*.png"))
SKIPPED = {"__type__": "update"}  # gr.skip(): the browser's answer stays on screen
CANVAS = (280, 280)

# Canvas-like drawings of validation digits (never trained on): (digit, which validation
# digit of that class, style). Sizes, places, brushes and backgrounds a person would use.
DRAWINGS = [
    (3, 0, DrawingStyle(CANVAS, 200, 13, "white", (0.5, 0.5))),
    (7, 1, DrawingStyle(CANVAS, 70, 5, "white", (0.05, 0.05))),
    (2, 0, DrawingStyle((400, 300), 150, 9, "dark", (0.8, 0.3))),
    (5, 0, DrawingStyle(CANVAS, 180, 11, "transparent", (0.4, 0.6))),
    (0, 0, DrawingStyle((500, 500), 420, 31, "white", (0.5, 0.5))),
]
# Digits drawn on the pad: (digit, how), strokes from digitnet.strokes' templates.
PAD_DRAWINGS = [
    (7, PenStyle(200, (140, 140), 0.1)),
    # Lower left, leaning left. (A smaller 3, 110 units at slant -0.2, the MLP retrained on
    # the new split still reads right but only 46% sure, against 70% before: issue notes.)
    (3, PenStyle(150, (90, 180), -0.1)),
    (4, PenStyle(240, (150, 140), 0.0)),
    (0, PenStyle(150, (200, 90), 0.2)),
    (8, PenStyle(230, (140, 140), 0.05, 0.7)),
]


def pad_value(digit: int, style: PenStyle, **extra) -> dict:
    return {"strokes": digit_strokes(digit, style), **extra}


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def loaded():
    """The shipped models (the MLP at least), loaded once."""
    models, warnings = app.load_models()
    assert "MLP" in models, warnings
    return models, warnings


@pytest.fixture(scope="module")
def handlers(loaded):
    models, _ = loaded
    return make_draw_handlers(models, app.example_files())


@pytest.fixture(scope="module")
def digits():
    """The labelled digits that ship with the repository, and the validation rows."""
    data = load_training_data(DIGITS_CSV)
    _, validation = TrainConfig().split(data.labels)
    return data, validation


def drawing(digits, digit: int, nth: int, style: DrawingStyle) -> Image.Image:
    data, validation = digits
    rows = validation[data.labels[validation] == digit]
    return render_drawing(data.images[rows[nth]], style)


@pytest.fixture(scope="module")
def drawing_files(digits, tmp_path_factory) -> list[tuple[Path, int]]:
    """The DRAWINGS as PNG files, with their true digit."""
    folder = tmp_path_factory.mktemp("drawings")
    files = []
    for index, (digit, nth, style) in enumerate(DRAWINGS):
        path = folder / f"{index}-{style.background}-{digit}.png"
        drawing(digits, digit, nth, style).save(path)
        files.append((path, digit))
    return files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """Files that are not usable images, each of which the app must refuse in one line."""
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.png"
    text.write_text("this is not an image\n")
    truncated = folder / "truncated.png"
    truncated.write_bytes(EXAMPLES[0].read_bytes()[:400] if EXAMPLES else b"\x89PNG\r\n\x1a\n")
    bomb = folder / "bomb.png"  # 400 megapixels of 1-bit zeros: ~50 KB on disk
    Image.new("1", (20000, 20000)).save(bomb)
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    blank = folder / "blank.png"
    Image.new("L", CANVAS, 255).save(blank)
    return {"text": text, "truncated": truncated, "bomb": bomb, "empty": empty, "blank": blank}


class FlatModel(nn.Module):
    """A model with no opinion: equal logits for every digit."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(inputs), 10)


# ---------------------------------------------------------------------------
# predict: the server's answer to a pad value


def check_answer(outputs, digit: int) -> None:
    answer, label, bars, view, ink, cropped, boxed, centred, comparison, tally = outputs
    assert f"**{digit}**" in answer and "Not sure" not in answer, answer
    article = "an" if digit == 8 else "a"  # "It's an 8", as the page says it (pad.js)
    assert answer.startswith(f"It's {article} **{digit}**"), answer
    assert list(label) == DIGITS
    assert max(label, key=label.get) == str(digit)
    assert sum(label.values()) == pytest.approx(1.0, abs=1e-4)
    assert list(bars) == ["MLP", "CNN"]  # every model, the chosen one first
    assert bars["MLP"] == pytest.approx([label[d] for d in DIGITS], abs=1e-4)
    assert int(np.argmax(bars["CNN"])) == digit
    assert np.array(view).shape == (28, 28) and max(map(max, view)) == 1.0
    for step in (ink, cropped, boxed, centred):
        assert isinstance(step, np.ndarray) and step.dtype == np.uint8 and step.ndim == 2
    assert max(boxed.shape) == 20 * STEP_SCALE
    assert centred.shape == (28 * STEP_SCALE, 28 * STEP_SCALE)
    assert centred.max() == 255 and centred[0, 0] == 0  # white ink on black, like MNIST
    assert "Every model's answer" in comparison and f"**{digit}**" in comparison
    assert isinstance(tally, ParityTally)


def check_blank(outputs) -> None:
    answer, label, bars, view, *steps, comparison, _ = outputs
    assert answer == PROMPT
    assert label is None and bars is None and view is None
    assert steps == [None, None, None, None]
    assert comparison == ""


@pytest.mark.parametrize(("digit", "style"), PAD_DRAWINGS, ids=[str(d) for d, _ in PAD_DRAWINGS])
def test_strokes_drawn_on_the_pad_are_recognised(handlers, digit, style):
    outputs = handlers.predict(pad_value(digit, style), "MLP", None)
    check_answer(outputs, digit)
    assert outputs[4].shape == (280, 280)  # step 1 is the whole pad's ink


def test_the_chosen_model_answers_first_and_no_choice_is_the_default(handlers):
    value = pad_value(*PAD_DRAWINGS[0])
    by_cnn = handlers.predict(value, "CNN", None)
    assert list(by_cnn[2]) == ["CNN", "MLP"]
    assert by_cnn[1] == pytest.approx(dict(zip(DIGITS, by_cnn[2]["CNN"])), abs=1e-4)
    for choice in (None, "no such model"):
        check_answer(handlers.predict(value, choice, None), 7)


@pytest.mark.skipif(not EXAMPLES, reason="no example drawings in assets/examples")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_is_recognised(handlers, path):
    """Examples are named NAME-DIGIT.png; picking one sets the pad to {"example": NAME}."""
    digit = int(re.search(r"(\d)\.png$", path.name).group(1))
    check_answer(handlers.predict({"example": path.name, "strokes": []}, "MLP", None), digit)


def test_picking_an_example_sets_the_pad_to_it(handlers):
    names = list(app.example_files())
    event = gr.SelectData(None, {"index": 1, "value": None})
    assert handlers.pick_example(event) == {"example": names[1], "strokes": []}


@pytest.mark.parametrize(
    "value",
    [None, "", {}, {"strokes": []}, '{"strokes": []}', {"strokes": [], "browser": {"answers": {}}}],
    ids=["none", "empty-string", "empty", "no-strokes", "json-string", "with-browser"],
)
def test_a_blank_pad_asks_for_a_drawing(handlers, value):
    check_blank(handlers.predict(value, "MLP", None))


def test_strokes_that_miss_the_pad_are_blank(handlers):
    check_blank(handlers.predict({"strokes": [[[-50, 10], [-50, 200]]]}, "MLP", None))


def test_an_unsure_answer_says_so():
    flat = LoadedModel("Flat", FlatModel(), {})
    handlers = make_draw_handlers({"Flat": flat}, {})
    answer, label, bars, *_ = handlers.predict(pad_value(*PAD_DRAWINGS[0]), None, None)
    assert answer.startswith("Not sure"), answer
    assert answer.count("%") == 2  # the two likeliest digits, with their probabilities
    assert sum(label.values()) == pytest.approx(1.0)
    assert bars["Flat"] == pytest.approx([0.1] * 10)


# Pad values a program might send by mistake, and a word their one-line error must contain.
BAD_VALUES = [
    ("not json", "not JSON"),
    ([1, 2, 3], "must be an object"),
    (42, "must be an object"),
    ({"strokes": "a 7"}, "list of strokes"),
    ({"strokes": [[[1, "x"]]]}, "two numbers"),
    ({"strokes": [[]]}, "non-empty"),
    ({"strokes": [[[1e12, 5]]]}, "far outside"),
    ({"background": None, "layers": [], "composite": None}, "classify endpoint"),
    ({"example": "../../etc/passwd"}, "no example named"),
    ({"example": "big-9.png", "strokes": [[[1, 2]]]}, "either strokes or an example"),
    ({"strokes": [], "browser": "yes"}, '"browser"'),
    ({"strokes": [], "browser": {"answers": {"MLP": [0.5]}}}, "10 probabilities"),
    # Numbers JSON allows and a float does not hold: a huge int, NaN, Infinity.
    ({"strokes": [[[10**400, 5]]]}, "far outside"),
    ({"strokes": [], "browser": {"answers": {"MLP": [10**400] + [0] * 9}}}, "10 probabilities"),
    ({"strokes": [[[float("nan"), 5]]]}, "two numbers"),
    ({"strokes": [[[5, float("inf")]]]}, "two numbers"),
    ({"strokes": [], "browser": {"answers": {"MLP": [float("nan")] * 10}}}, "10 probabilities"),
    ('{"strokes": [[[NaN, 5]]]}', "two numbers"),
    ('{"strokes": [[[' + "9" * 5000 + ", 5]]]}", "number too long"),
    ("[" * 100_000, "nested too deeply"),
    ({"strokes": [[[True, 5]]]}, "two numbers"),
    ({"strokes": [[["140", "140"]]]}, "two numbers"),
    ({"strokes": [[[1, 2]]] * (MAX_STROKES + 1)}, "too many"),
    ({"strokes": [[[140, 140]] * (MAX_POINTS + 1)]}, "points in all"),
    ({"strokes": [[[0, 0], [280, 280]] * 20]}, "pad units long"),
    ({"example": [[[[1]]]]}, "no example named list"),
]
BAD_IDS = [f"{index}-{needle}" for index, (_, needle) in enumerate(BAD_VALUES)]


@pytest.mark.parametrize(("value", "needle"), BAD_VALUES, ids=BAD_IDS)
def test_a_bad_pad_value_is_a_one_line_error(handlers, value, needle):
    with pytest.raises(gr.Error) as caught:
        handlers.predict(value, "MLP", None)
    assert_one_line(caught.value.message, needle)


# ---------------------------------------------------------------------------
# The server's check of the browser's answers


def browser_value(handlers, digit: int, style: PenStyle, lie: str | None = None) -> dict:
    """A pad value carrying the browser's answers (here: the server's own, or a wrong one)."""
    value = pad_value(digit, style)
    answers = {name: list(probs) for name, probs in handlers.predict(value, "MLP", None)[2].items()}
    if lie:
        answers[lie] = list(np.roll(answers[lie], 1))
    return {**value, "browser": {"answers": answers}}


def test_an_agreeing_browser_keeps_its_answer_on_screen(handlers):
    before = handlers.parity.checked, handlers.parity.disagreements
    value = browser_value(handlers, *PAD_DRAWINGS[1])
    outputs = handlers.predict(value, "MLP", ParityTally(4, 0))
    assert outputs[:4] == (SKIPPED,) * 4  # the browser already shows the answer
    assert outputs[4] is not None  # the pipeline strip is the server's
    assert outputs[-1] == ParityTally(5, 0)
    assert "agreed with the server's on 5 of 5 drawings" in outputs[-2]
    assert "<details>" in outputs[-2]  # agreement, folded: a developer's check
    assert (handlers.parity.checked, handlers.parity.disagreements) == (before[0] + 1, before[1])


def test_a_disagreeing_browser_is_counted_and_corrected(handlers, caplog):
    value = browser_value(handlers, *PAD_DRAWINGS[2], lie="CNN")
    disagreements = handlers.parity.disagreements
    outputs = handlers.predict(value, "MLP", ParityTally())
    check_answer(outputs, 4)  # the server's answer replaces the browser's
    assert outputs[-1] == ParityTally(1, 1)
    assert "agreed with the server's on 0 of 1" in outputs[-2]
    assert "<details open>" in outputs[-2]  # a disagreement is not folded away
    assert handlers.parity.disagreements == disagreements + 1
    assert "browser and server disagree on CNN" in caplog.text


def test_a_tie_broken_the_other_way_is_no_disagreement():
    """A number read whole is a drawing the models refuse, nearly uniform over the ten: where
    the server's top two are within PARITY_TOLERANCE, the browser may pick either."""
    seen = strokes_to_input(digit_strokes(7, PenStyle(150, (140, 140), 0.0)))
    browser = PadDrawing(browser_answers={"MLP": np.array([0.1] * 6 + [0.1004] + [0.1] * 3)})
    for server_2, disagreeing in ((0.1005, []), (0.1015, ["MLP: browser 6, server 2"])):
        probs = np.array([0.1, 0.1, server_2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
        probs[6] = 0.1004
        server = Prediction(probs, seen, reject_below=0.5)
        assert disagreements(browser, {"MLP": server}) == disagreeing


def test_choosing_another_model_rechecks_without_counting_again(handlers):
    value = browser_value(handlers, *PAD_DRAWINGS[1])
    checked = handlers.parity.checked
    outputs = handlers.recheck(value, "CNN", ParityTally(2, 0))
    assert outputs[:4] == (SKIPPED,) * 4  # the browser shows the CNN's answer by itself
    assert outputs[-1] == ParityTally(2, 0) and handlers.parity.checked == checked


def test_choosing_a_model_on_a_blank_pad_leaves_the_answer_alone(handlers):
    # The reply may land after a new drawing's live answer: it must not blank it.
    outputs = handlers.recheck({"strokes": []}, "CNN", ParityTally(2, 0))
    assert all(output == SKIPPED for output in outputs)


def test_a_page_whose_models_had_not_answered_yet_counts_no_check(handlers):
    value = {**pad_value(*PAD_DRAWINGS[0]), "browser": {"answers": {}}}
    checked = handlers.parity.checked
    outputs = handlers.predict(value, "MLP", ParityTally(3, 0))
    check_answer(outputs, 7)  # the server's answer shows
    assert outputs[-1] == ParityTally(3, 0) and handlers.parity.checked == checked


def test_a_browser_that_did_not_answer_the_chosen_model_gets_the_servers_answer(handlers):
    value = browser_value(handlers, *PAD_DRAWINGS[0])
    del value["browser"]["answers"]["MLP"]
    check_answer(handlers.predict(value, "MLP", None), 7)


# ---------------------------------------------------------------------------
# classify: the classify endpoint (image files), unchanged


def test_classify_recognises_drawings(handlers, drawing_files):
    for path, digit in drawing_files:
        answer = handlers.classify(str(path), "MLP")
        confidences = {c["label"]: c["confidence"] for c in answer["confidences"]}
        assert sorted(confidences) == DIGITS
        assert answer["label"] == max(confidences, key=confidences.get) == str(digit), path.name
        assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-4)


def test_classify_says_not_a_digit_and_still_lists_the_ten(loaded):
    from digitnet.calibration import Calibration, calibration_of, set_calibration
    from digitnet.predict import classify_preprocessed
    from digitnet.preprocess import canvas_to_mnist
    from digitnet.ui.draw_tab import answer_text, label_value

    model = loaded[0]["MLP"].model
    shipped = calibration_of(model)
    scribble = np.zeros((200, 200), np.float32)
    scribble[30:170:9, 20:180] = 1.0
    preprocessed = canvas_to_mnist(scribble)
    try:
        set_calibration(model, Calibration(reject_below=1.0))  # refuses everything
        refused = classify_preprocessed(model, preprocessed)
    finally:
        set_calibration(model, shipped)
    answer = label_value(refused)
    assert answer["label"] == "not a digit" and len(answer["confidences"]) == 10
    assert "doesn't look like a digit" in answer_text(refused)


# Each bad upload and a word its one-line message must contain.
BAD_FILES = [
    ("blank", "blank"),
    ("text", "not an image"),
    ("truncated", "truncated"),
    ("bomb", "too many pixels"),
    ("empty", "empty"),
]


@pytest.mark.parametrize("kind, needle", BAD_FILES)
def test_classify_refuses_bad_files_in_one_line(handlers, bad_files, kind, needle):
    with pytest.raises(gr.Error) as caught:
        handlers.classify(str(bad_files[kind]), "MLP")
    assert_one_line(caught.value.message, needle)


def test_classify_refuses_a_large_image_without_decoding_it(handlers, tmp_path):
    """Under Pillow's own bomb limit but over the app's: refused from the header alone."""
    path = tmp_path / "large.png"
    Image.new("1", (8000, 8000)).save(path)
    with pytest.raises(gr.Error) as caught:
        handlers.classify(str(path), "MLP")
    assert_one_line(caught.value.message, "too large")


@pytest.mark.parametrize("path", [None, ""])
def test_classify_without_a_file(handlers, path):
    with pytest.raises(gr.Error) as caught:
        handlers.classify(path, "MLP")
    assert_one_line(caught.value.message, "No image")


# ---------------------------------------------------------------------------
# Pad values parsed


def test_a_pad_value_parses_strokes_example_and_browser_answers():
    drawing = parse_pad_value(
        {"strokes": [[[1, 2], [3, 4]]], "browser": {"answers": {"MLP": [0.1] * 10, "CNN": None}}}
    )
    assert len(drawing.strokes) == 1 and drawing.example is None
    assert drawing.browser_answered and drawing.browser_answers["CNN"] is None
    assert drawing.browser_answers["MLP"].shape == (10,)
    picked = parse_pad_value({"example": "big-9.png"}, {"big-9.png"})
    assert picked.example == "big-9.png" and not picked.browser_answered


# ---------------------------------------------------------------------------
# The models for the browser


def test_models_are_exported_for_the_browser_named_by_content(loaded, tmp_path):
    models, _ = loaded
    files, warnings = export_for_browser(models, tmp_path)
    assert not warnings
    assert set(files) == set(models)
    for name, path in files.items():
        assert path.parent == tmp_path and path.name.startswith(name.lower() + "-")
        assert path.suffix == ".safetensors"
    modified = {name: path.stat().st_mtime_ns for name, path in files.items()}
    again, _ = export_for_browser(models, tmp_path)
    assert again == files  # the same content, the same names: browsers keep their copy
    assert {name: path.stat().st_mtime_ns for name, path in again.items()} == modified


def test_an_unwritable_folder_falls_back_to_a_temporary_one(loaded, tmp_path):
    models, _ = loaded
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    files, warnings = export_for_browser({"MLP": models["MLP"]}, blocker / "web")
    assert not warnings and files["MLP"].is_file()
    assert blocker not in files["MLP"].parents


def test_a_model_that_cannot_be_exported_stays_on_the_server(tmp_path):
    flat = LoadedModel("Flat", FlatModel(), {})
    files, warnings = export_for_browser({"Flat": flat}, tmp_path)
    assert files == {}
    assert_one_line(warnings[0], "Flat answers from the server only")


# ---------------------------------------------------------------------------
# Dashboard, model loading and start-up


def test_dashboard_of_the_mlp(loaded):
    from digitnet.ui.dashboard_tab import make_dashboard_handler

    dashboard = make_dashboard_handler(loaded[0])
    card, curves, per_class, confusion, mistakes, reliability = dashboard("MLP")
    # The figures come drawn, once per model: every visitor's page gets the same images.
    for figure in (curves, confusion, reliability):
        assert figure.type == "matplotlib" and figure.plot.startswith("data:image/webp;base64,")
    assert dashboard("MLP")[1] is curves
    assert card.startswith("### Model card") and "parameters" in card and "MLP" in card
    bars = pd.DataFrame(per_class.value["data"], columns=per_class.value["columns"])
    assert bars["digit"].tolist() == DIGITS
    low, high = per_class.y_lim  # from under the weakest digit, not from 0
    assert high == 100 and low % 10 == 0 and 0 < low < bars["accuracy"].min()
    assert mistakes, "no misclassified examples in the gallery"
    for image, caption in mistakes:
        assert image.ndim == 2 and image.dtype == np.uint8
        assert re.fullmatch(r"said (\d), was (?!\1)\d \(\d{1,3}%\)", caption), caption
    assert dashboard(None)[0] == card  # no choice: the default model, the MLP


def test_the_mlp_is_the_default_and_loads_first(loaded):
    models, warnings = loaded
    assert next(iter(models)) == "MLP"
    assert set(models) <= {"MLP", "CNN"}
    for warning in warnings:  # cnn may not be trained yet: a warning, not a failure
        assert_one_line(warning, "could not load")


def test_an_extra_model_comes_first(loaded):
    models, _ = app.load_models(str(app.HERE / "assets" / "mlp"))
    assert list(models)[0] == "Custom: mlp"
    assert "MLP" in models


def corrupt_checkpoints(folder: Path) -> dict[str, Path]:
    """A missing checkpoint and broken ones of each kind."""
    folder.mkdir(parents=True, exist_ok=True)
    bad_json = folder / "bad-json"
    bad_json.with_suffix(".json").write_text('{"format": "digitnet-checkpoint", "con')
    bad_json.with_suffix(".safetensors").write_bytes(b"\0" * 64)
    bad_weights = folder / "bad-weights"
    bad_weights.with_suffix(".json").write_text((app.HERE / "assets" / "mlp.json").read_text())
    bad_weights.with_suffix(".safetensors").write_bytes(b"not safetensors at all")
    bad_pt = folder / "model.pt"
    bad_pt.write_bytes(b"PK\x03\x04 truncated zip")
    return {
        "missing": folder / "missing",
        "bad-json": bad_json,
        "bad-weights": bad_weights,
        "bad-pt": bad_pt,
    }


@pytest.mark.parametrize("kind", ["missing", "bad-json", "bad-weights", "bad-pt"])
def test_a_broken_model_is_a_warning_and_the_shipped_ones_still_load(tmp_path, kind):
    path = corrupt_checkpoints(tmp_path)[kind]
    models, warnings = app.load_models(str(path))
    assert "MLP" in models
    assert not any(name.startswith("Custom") for name in models)
    assert warnings, "no warning for a broken --model"
    assert_one_line(warnings[0], "could not load", str(path))


def test_main_without_any_loadable_model_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DIGITNET_MODEL", raising=False)
    monkeypatch.setattr(app, "SHIPPED", {"MLP": str(tmp_path / "gone-mlp")})

    def no_launch(*args, **kwargs):
        raise AssertionError("the app must not start without a model")

    monkeypatch.setattr(app, "launch", no_launch)
    assert app.main(["--model", str(tmp_path / "gone-custom")]) == 2
    err = capsys.readouterr().err
    assert "no model could be loaded" in err
    assert err.count("warning: could not load") == 2


# ---------------------------------------------------------------------------
# The app served in-process, driven with gradio_client


@pytest.fixture(scope="module")
def server(loaded):
    """The whole app (with its css and theme) on 127.0.0.1 and a free port, for this module."""
    demo, url = app.serve_in_background(*loaded)
    yield url
    close_when_idle(demo)


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    from gradio_client import Client

    return Client(
        server,
        verbose=False,
        analytics_enabled=False,
        download_files=str(tmp_path_factory.mktemp("client-downloads")),
    )


def top_label(result: dict) -> str:
    return result["label"]


def test_the_api_has_both_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert {"/predict", "/classify"} <= set(api["named_endpoints"])
    parameters = api["named_endpoints"]["/predict"]["parameters"]
    assert [p["parameter_name"] for p in parameters][:1] == ["value"]


def test_classify_endpoint_recognises_drawings(client, drawing_files):
    from gradio_client import handle_file

    for path, digit in drawing_files:
        result = client.predict(handle_file(str(path)), "MLP", api_name="/classify")
        assert top_label(result) == str(digit), path.name
        assert len(result["confidences"]) == 10  # all ten label confidences


def test_predict_endpoint_recognises_strokes(client):
    for digit, style in PAD_DRAWINGS:
        answer, label, bars, view, *steps, comparison = client.predict(
            pad_value(digit, style), "MLP", api_name="/predict"
        )
        assert f"**{digit}**" in answer, answer
        assert top_label(label) == str(digit)
        assert len(label["confidences"]) == 10
        assert int(np.argmax(bars["MLP"])) == digit and len(bars["CNN"]) == 10
        assert np.array(view).shape == (28, 28)
        assert all(step for step in steps), "a pipeline image is missing"
        assert f"**{digit}**" in comparison


@pytest.mark.skipif(not EXAMPLES, reason="no example drawings in assets/examples")
def test_predict_endpoint_recognises_the_examples(client):
    for path in EXAMPLES:
        digit = re.search(r"(\d)\.png$", path.name).group(1)
        answer, label, *_ = client.predict({"example": path.name}, "MLP", api_name="/predict")
        assert top_label(label) == digit, (path.name, answer)


def test_predict_endpoint_with_a_blank_pad(client):
    for value in ({"strokes": []}, None):
        answer, label, bars, view, *steps, comparison = client.predict(
            value, "MLP", api_name="/predict"
        )
        assert answer == PROMPT
        assert not label or not label.get("confidences")
        assert bars is None and view is None and steps == [None] * 4 and comparison == ""


def predict_error(client, server: str, value) -> str:
    """The error message the predict endpoint answers ``value`` with, sent as a program would."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:  # NaN or Infinity: gradio_client will not send them, json.dumps does
        return http_predict_error(server, value)
    with pytest.raises(Exception) as caught:  # gradio_client's AppError
        client.predict(value, "MLP", api_name="/predict")
    return str(caught.value)


def http_predict_error(server: str, value) -> str:
    """Gradio's HTTP API by hand: post the call, then read its event stream to the error."""
    import httpx

    body = json.dumps({"data": [value, "MLP"]})  # NaN and Infinity written as Python does
    posted = httpx.post(
        f"{server}gradio_api/call/predict",
        content=body,
        headers={"content-type": "application/json"},
    )
    posted.raise_for_status()
    events = httpx.get(f"{server}gradio_api/call/predict/{posted.json()['event_id']}", timeout=60)
    kind, data = re.search(r"event: (\w+)\ndata: (.*)", events.text).groups()
    assert kind == "error", events.text[:200]
    return json.loads(data)["error"]


@pytest.mark.parametrize(("value", "needle"), BAD_VALUES, ids=BAD_IDS)
def test_predict_endpoint_refuses_garbage_in_one_line_and_keeps_serving(
    client, server, value, needle
):
    assert_one_line(predict_error(client, server, value), needle)
    answer, label, *_ = client.predict(pad_value(*PAD_DRAWINGS[0]), "MLP", api_name="/predict")
    assert top_label(label) == "7", answer


@pytest.mark.parametrize("kind, needle", [*BAD_FILES, (None, "No image")])
def test_classify_endpoint_refuses_bad_input_and_keeps_serving(
    client, bad_files, drawing_files, kind, needle
):
    from gradio_client import handle_file

    bad = None if kind is None else handle_file(str(bad_files[kind]))
    with pytest.raises(Exception) as caught:  # gradio_client's AppError
        client.predict(bad, "MLP", api_name="/classify")
    assert_one_line(str(caught.value), needle)
    path, digit = drawing_files[0]
    result = client.predict(handle_file(str(path)), "MLP", api_name="/classify")
    assert top_label(result) == str(digit)


def test_classify_endpoint_refuses_a_file_that_is_not_an_image_type(
    client, drawing_files, tmp_path
):
    from gradio_client import handle_file

    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(path)), "MLP", api_name="/classify")
    assert_one_line(str(caught.value), "image")
    good, digit = drawing_files[1]
    assert top_label(client.predict(handle_file(str(good)), api_name="/classify")) == str(digit)


def test_the_page_serves_the_pad_files_and_nothing_else_of_the_repository(server, loaded):
    """The pad's JS and the exported models are served; other files of the repo are not."""
    import urllib.error
    import urllib.request

    from digitnet.ui.static_files import STATIC_DIR, file_url

    def status(url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                return reply.status
        except urllib.error.HTTPError as error:
            return error.code

    assert status(server + file_url(STATIC_DIR / "pipeline.js")) == 200
    # The files this app exported (their names hash the weights; older ones may lie beside).
    exported, _ = export_for_browser(loaded[0], app.WEB_DIR)
    for path in exported.values():
        assert status(server + file_url(path)) == 200
    assert status(server + file_url(app.HERE / "app.py")) == 403
    assert status(server + file_url(app.HERE / "assets" / "mlp.json")) == 403
    assert status(server + file_url(STATIC_DIR / "pad.js")) == 403  # inlined, not served
    stray = app.WEB_DIR / "not-exported.txt"  # beside the exported models: not served
    stray.write_text("private\n")
    try:
        assert status(server + file_url(stray)) == 403
    finally:
        stray.unlink()


def test_every_font_the_page_css_names_is_served_by_the_app(server):
    """app.css's own faces (the full bold Source Sans) come from the app, not a CDN, and are
    the real fonts, not the theme's tiny 600 subset."""
    import urllib.request

    from digitnet.ui.static_files import read_static

    urls = re.findall(r"url\(\"?([^\")]+)\"?\)", read_static("app.css"))
    assert urls, "app.css names no font"
    for url in urls:
        assert not url.startswith(("http:", "https:", "//")), url
        with urllib.request.urlopen(server + url, timeout=10) as reply:
            assert reply.status == 200
            assert len(reply.read()) > 50_000, url  # a whole font (the subset is 5 KB)


# ---------------------------------------------------------------------------
# Where the app listens: Gradio's GRADIO_SERVER_* convention, with flags and PORT first


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([], {}, {}),  # Gradio's default, or its GRADIO_SERVER_* variables
        ([], {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "9000"}, {}),
        ([], {"SPACE_ID": "me/digitnet"}, {"server_name": "0.0.0.0"}),
        ([], {"SPACE_ID": "me/digitnet", "GRADIO_SERVER_NAME": "::"}, {}),
        ([], {"PORT": "8080", "GRADIO_SERVER_PORT": "9000"}, {"server_port": 8080}),
        (
            ["--host", "0.0.0.0", "--port", "7000"],
            {"PORT": "8080", "GRADIO_SERVER_NAME": "127.0.0.1"},
            {"server_name": "0.0.0.0", "server_port": 7000},
        ),
    ],
)
def test_server_settings_follow_gradio_then_flags(argv, environ, expected):
    assert app.server_settings(app.parse_args(argv), environ) == expected


def test_a_bad_port_variable_is_one_line():
    with pytest.raises(app.DigitnetError) as caught:
        app.server_settings(app.parse_args([]), {"PORT": "http"})
    assert_one_line(str(caught.value), "PORT", "port number")


def test_app_listens_on_gradio_server_port(tmp_path):
    """The real program, started as a user would, honours GRADIO_SERVER_PORT."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = {k: v for k, v in os.environ.items() if k not in ("PORT", "SPACE_ID")}
    environ.update(GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen(
        [sys.executable, str(Path(app.__file__))],
        env=environ,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert server.poll() is None, "the app exited"
                assert time.monotonic() < deadline, "the app did not answer on its port"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_files_url_changes_with_its_content_and_reads_it_once(tmp_path, monkeypatch):
    from digitnet.ui import static_files

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights one")
    first = static_files.file_url(path)
    reads = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or real_read(self))
    assert static_files.file_url(path) == first and reads == []  # unchanged: not read again
    path.write_bytes(b"weights two, longer")
    second = static_files.file_url(path)
    assert second != first and second.split("?v=")[0] == first.split("?v=")[0]


def test_every_api_input_and_output_has_a_name(server):
    """A program reads the API by its names: none is Gradio's fallback value_N/parameter_N."""
    import httpx

    info = httpx.get(server + "gradio_api/info", timeout=60).json()
    assert {"/predict", "/classify", "/train", "/finetune", "/save_drawing"} <= set(
        info["named_endpoints"]
    )
    unnamed = [
        f"{endpoint}: {item['label']}"
        for endpoint, described in info["named_endpoints"].items()
        for item in [*described["parameters"], *described["returns"]]
        if re.fullmatch(r"(value|parameter)_\d+", str(item["label"]))
    ]
    assert unnamed == []


def test_no_absolute_server_path_reaches_the_page(server):
    """File URLs (the examples, the pipeline, the web models) and help texts name files
    relative to the app's folder: the page never shows where the server keeps them."""
    import httpx

    for page in ("", "config"):
        text = httpx.get(server + page, timeout=60).text
        assert str(app.HERE) not in text and str(app.HERE).replace("/", "\\/") not in text
        assert "gradio_api/file=/" not in text and "gradio_api/file=%2F" not in text
    config = httpx.get(server + "config", timeout=60).text
    example = re.search(r"gradio_api/file=(assets/examples/[^\"?\\]+)", config)
    assert example is not None
    assert httpx.get(server + "gradio_api/file=" + example.group(1)).status_code == 200


def test_an_error_a_visitor_sees_names_no_server_path():
    from digitnet.ui.session import hide_paths, visitor_error

    line = "/data/app/drawings.sqlite: the drawings database is full (1.0 MiB of its cap)"
    assert hide_paths(line).startswith("drawings.sqlite: the drawings database is full")
    assert "/data" not in visitor_error(app.DigitnetError(line)).message
    assert hide_paths("shape (28, 28) of 0/1 values") == "shape (28, 28) of 0/1 values"


def test_a_space_without_persistent_storage_says_so_in_the_log_and_on_the_page(
    loaded, tmp_path, capsys
):
    from digitnet.storage import storage_of
    from digitnet.ui.drawing_policy import open_app_store

    space = {"SPACE_ID": "someone/digitnet", "DIGITNET_PERSISTENT_DIR": str(tmp_path / "none")}
    storage = storage_of(tmp_path / "d.sqlite", space)
    app.log_storage(storage)
    err = capsys.readouterr().err
    assert "d.sqlite (LOST at every restart)" in err and "no persistent storage" in err
    models, warnings = loaded
    demo = app.build_demo(
        models, warnings, app_store=open_app_store(tmp_path / "d.sqlite"), environ=space
    )
    shown = [
        block.value
        for block in demo.blocks.values()
        if isinstance(block, app.gr.Markdown) and "persistent storage" in str(block.value)
    ]
    assert len(shown) == 1 and str(tmp_path) not in shown[0]

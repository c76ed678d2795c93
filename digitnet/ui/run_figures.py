"""A model's validation figures as components, shown alike on the "How it was trained" tab
and the Train tab: per-digit accuracy bars, the confusion matrix and the worst mistakes.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from pathlib import Path

import gradio as gr
from gradio.components.plot import PlotData
from gradio.processing_utils import encode_plot_to_base64
from matplotlib.figure import Figure
from PIL import Image

from digitnet.dashboard import (
    DIGITS,
    accuracy_axis_range,
    confusion_figure,
    mistake_gallery,
    per_class_frame,
)

# A chart or table narrower than this is unreadable: a row of them wraps on a phone instead.
MIN_CHART_WIDTH = 320
MISTAKES_HEIGHT = "auto"  # every mistake whole: the gallery grows to its rows, no scrolling


def per_class_plot(elem_id: str) -> gr.BarPlot:
    """Validation accuracy per digit, filled by ``per_class_bars`` (here and the Train tab)."""
    return gr.BarPlot(
        x="digit",
        y="accuracy",
        sort=DIGITS,
        y_lim=[0, 100],
        x_title="digit",
        y_title="accuracy (%)",
        label="Validation accuracy per digit",
        height=220,
        min_width=MIN_CHART_WIDTH,
        elem_id=elem_id,
    )


def per_class_bars(metadata: dict) -> gr.BarPlot:
    """``per_class_plot``'s value for a model, on a y range that shows the differences."""
    frame = per_class_frame(metadata)
    return gr.BarPlot(value=frame, y_lim=accuracy_axis_range(frame["accuracy"]))


def encoded_plot(figure: Figure | None) -> PlotData | None:
    """A matplotlib figure as ``gr.Plot`` sends it (an image, in Plot's own default format),
    drawn now. Given a ``PlotData``, ``gr.Plot`` sends it as it is: a figure encoded once can
    go to every session that shows it."""
    if figure is None:
        return None
    return PlotData(type="matplotlib", plot=encode_plot_to_base64(figure, PLOT_FORMAT))


PLOT_FORMAT = "webp"  # gr.Plot's default


def confusion_plot(metadata: dict) -> PlotData | None:
    """The validation confusion matrix, drawn and encoded once per matrix. A room of 20
    following one run gets one picture: drawing it 20 times (~0.3 s each on a 2-core server)
    held up the drawing answers of everyone else."""
    confusion = metadata.get("metrics", {}).get("validation", {}).get("confusion")
    if not confusion:
        return None
    with _drawing_once:  # the room's 20 arrive together: one draws, the others wait for it
        return _confusion_plot(json.dumps(confusion))


_drawing_once = threading.Lock()


@functools.lru_cache(maxsize=64)
def _confusion_plot(confusion_json: str) -> PlotData | None:
    matrix = json.loads(confusion_json)
    return encoded_plot(confusion_figure({"metrics": {"validation": {"confusion": matrix}}}))


def mistake_files(metadata: dict, folder: Path) -> list[tuple[str, str]]:
    """The most confident mistakes as (PNG file, caption), written into ``folder`` (the
    run's ``served_folder``) once. Handed images, Gradio encodes them again for every session
    that shows them; handed files, it serves the same ones."""
    items = mistake_gallery(metadata)
    gallery = []
    with _drawing_once:
        for index, (image, caption) in enumerate(items):
            path = folder / f"mistake-{index:02d}.png"
            if not path.exists():
                partial = path.with_name(f".{path.name}.partial")
                Image.fromarray(image).save(partial, format="PNG")
                os.replace(partial, path)
            gallery.append((str(path), caption))
    return gallery


def confusion_and_mistakes(confusion_id: str, mistakes_id: str) -> tuple[gr.Plot, gr.Gallery]:
    """A row: the confusion matrix (``confusion_figure``) beside the most confident mistakes
    (``mistake_gallery``), here and on the Train tab."""
    with gr.Row(equal_height=False):
        confusion = gr.Plot(
            label="Confusion matrix",
            min_width=MIN_CHART_WIDTH,
            elem_id=confusion_id,
            elem_classes=["label-above"],  # app.css: not over the figure's title
        )
        # Thumbnails at the images' own size (app.css), however few: two mistakes stretched
        # to fill the row were huge and blurry. PNG keeps the pixels crisp; webp blurs them.
        mistakes = gr.Gallery(
            label="Most confident mistakes",
            columns=5,
            fit_columns=False,
            height=MISTAKES_HEIGHT,
            object_fit="contain",
            format="png",
            allow_preview=False,
            buttons=[],
            min_width=MIN_CHART_WIDTH,
            elem_id=mistakes_id,
            elem_classes=["mistakes"],
        )
    return confusion, mistakes

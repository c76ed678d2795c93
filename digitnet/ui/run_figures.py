"""A model's validation figures as components, shown alike on the "How it was trained" tab
and the Train tab: per-digit accuracy bars, the confusion matrix and the worst mistakes.
"""

from __future__ import annotations

import gradio as gr

from digitnet.dashboard import DIGITS, accuracy_axis_range, per_class_frame

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

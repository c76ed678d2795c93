"""The digit pad: a canvas on Gradio's ``gr.HTML`` that answers in the browser as you draw.

Its JS (``static/pad.js``), CSS and template are files beside this module; the pipeline it
runs (``static/pipeline.js``) mirrors digitnet's Python preprocessing and the exported models.
Its value, what the server and the ``predict`` API receive, is read by
:mod:`digitnet.pad_value`.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from digitnet.predict import NOT_A_DIGIT, UNSURE_BELOW
from digitnet.strokes import (
    BRUSH_RADIUS,
    MAX_LENGTH,
    MAX_POINTS,
    MAX_STROKES,
    PAD_SIZE,
)
from digitnet.ui.static_files import STATIC_DIR, file_url, read_static

PROMPT = "Draw a digit on the pad ✏️"


def pad_models(models: dict[str, Path]) -> list[dict[str, str]]:
    """The pad's ``models`` prop: each model's name and its web file's URL.

    Updating the prop (``gr.HTML(models=[...])``) adds the new ones to that page's pad.
    """
    return [{"name": name, "url": file_url(path)} for name, path in models.items()]


def digit_pad(
    *,
    models: dict[str, Path],
    examples: dict[str, Path],
    default_choice: str | None,
    elem_id: str = "pad",
    clear_id: str = "clear",
    undo_id: str = "undo",
    **kwargs,
) -> gr.HTML:
    """The pad. ``models`` maps model names to their web files, ``examples`` names to images.

    Events: ``input`` every frame the browser has a new answer (read it with the JS
    ``digitnetPads[elem_id].liveOutputs(choice)``), ``change`` when a drawing is done. Its
    value is the JSON above (``gr.HTML`` passes it through; ``parse_pad_value`` checks it).
    """
    # A plain gr.HTML, not a subclass: Gradio writes a .pyi stub beside every component
    # subclass's module when it is imported, which fails in a read-only install.
    return gr.HTML(
        value=None,
        html_template=read_static("pad.html"),
        css_template=read_static("pad.css"),
        js_on_load=read_static("pad.js"),
        apply_default_css=False,
        elem_id=elem_id,
        pad_id=elem_id,
        clear_id=clear_id,
        undo_id=undo_id,
        pad_size=PAD_SIZE,
        brush_radius=BRUSH_RADIUS,
        # What parse_strokes accepts: the pad stops there, so the server never refuses it.
        max_strokes=MAX_STROKES,
        max_points=MAX_POINTS,
        max_length=MAX_LENGTH,
        pipeline_url=file_url(STATIC_DIR / "pipeline.js"),
        models=pad_models(models),
        examples={name: file_url(path) for name, path in examples.items()},
        default_choice=default_choice,
        prompt=PROMPT,
        unsure_below=UNSURE_BELOW,
        not_a_digit=NOT_A_DIGIT,
        **kwargs,
    )

"""An output image that travels inside the answer, as a ``data:`` URL, and never touches disk.

``gr.Image`` writes every array it shows to Gradio's cache (a folder per distinct image), and
the page then fetches it with a second request. The pipeline strip and the Why panel change
with every stroke: four to six small PNGs per answer, a few KB each, which pile up on a
server that strangers share. Sent inline, the page shows the same picture, the cache does not
grow, and no second request is needed. Gradio's own SVG images travel the same way.
"""

from __future__ import annotations

import base64
import io

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from gradio.processing_utils import _convert
from PIL import Image

INLINE_FORMATS = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}


def data_url(array: np.ndarray, image_format: str = "png") -> str:
    """A uint8 image (H, W) or (H, W, 3|4) as a ``data:image/...;base64,`` URL."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:{INLINE_FORMATS[image_format]};base64,{encoded}"


def inline_image(**kwargs) -> gr.Image:
    """A ``gr.Image`` (same arguments) whose arrays and PIL images are sent as ``data:`` URLs,
    not cached files. For small images: the answer carries the bytes, ~1.4x as base64. A path
    or URL value is shown as ``gr.Image`` shows it.

    Its ``postprocess`` is replaced on the instance rather than in a subclass: Gradio writes a
    .pyi stub beside every component subclass's module when it is defined, which fails in a
    read-only install.
    """
    image = gr.Image(**kwargs)
    as_file = image.postprocess
    image_format = image.format if image.format in INLINE_FORMATS else "png"

    def postprocess(value):
        if isinstance(value, Image.Image):
            value = np.asarray(value)
        if isinstance(value, np.ndarray):
            array = _convert(value, np.uint8, force_copy=False)  # as gr.Image converts
            return ImageData(url=data_url(array, image_format), orig_name=f"image.{image_format}")
        return as_file(value)

    image.postprocess = postprocess
    return image

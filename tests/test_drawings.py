"""Canvas-like renders: the fast stroke widening is Pillow's MaxFilter, pixel for pixel."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageFilter

from digitnet.drawings import render_drawings, widen_strokes


@given(
    arrays(
        np.uint8,
        st.tuples(st.integers(1, 60), st.integers(1, 60)),
        elements=st.sampled_from([0, 255, 120]),
    ),
    st.integers(1, 12),
)
def test_widen_strokes_is_pillows_max_filter(ink, half):
    size = 2 * half + 1
    expected = np.asarray(Image.fromarray(ink).filter(ImageFilter.MaxFilter(size)))
    np.testing.assert_array_equal(widen_strokes(ink, size), expected)


def test_renders_are_seeded(mnist):
    first = render_drawings(mnist.images[:5], seed=3)
    again = render_drawings(mnist.images[:5], seed=3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

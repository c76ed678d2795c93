"""Non-digit drawings: every kind, through the app's preprocessing, seeded and split."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.nondigits import KINDS, draw_nondigit, make_nondigits


def test_every_kind_is_drawn_as_ink_and_preprocessed_like_a_digit():
    made = make_nondigits(200, seed=3)
    assert made.inputs.shape == (200, 28, 28) and made.inputs.dtype == np.float32
    assert set(made.kinds) == set(KINDS)
    assert made.inputs.min() >= 0 and made.inputs.max() <= 1
    assert (made.inputs.reshape(200, -1).max(axis=1) > 0.5).all()  # none blank


def test_same_seed_same_set_and_the_splits_differ():
    first = make_nondigits(40, seed=1)
    np.testing.assert_array_equal(first.inputs, make_nondigits(40, seed=1).inputs)
    heldout = make_nondigits(40, seed=1, split="heldout")
    assert not np.array_equal(first.inputs, heldout.inputs)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_each_kind_draws_an_ink_map(kind, split):
    ink = draw_nondigit(kind, np.random.default_rng(0), split)
    assert ink.ndim == 2 and ink.dtype == np.float32 and ink.max() == pytest.approx(1.0)

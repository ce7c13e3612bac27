"""Claims about the attention masks (ops/masks.py, reached as ops.attention.*)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.ops import attention as A


@given(st.integers(1, 9))
def test_causal_mask_lets_position_i_see_positions_up_to_i(length):
    mask = np.asarray(A.causal_mask(length))
    assert mask.shape == (1, 1, length, length) and mask.dtype == bool
    for i in range(length):
        for j in range(length):
            assert mask[0, 0, i, j] == (j <= i)


@given(st.integers(1, 9), st.integers(0, 10), st.booleans())
def test_local_mask_is_the_window_of_width_w_around_each_query(length, window, causal):
    mask = np.asarray(A.local_mask(length, window, causal=causal))
    assert mask.shape == (1, 1, length, length) and mask.dtype == bool
    for i in range(length):
        for j in range(length):
            assert mask[0, 0, i, j] == (abs(i - j) <= window and (not causal or j <= i))


@given(st.integers(0, 2**16), st.integers(0, 4))
def test_padding_mask_is_true_exactly_at_non_pad_tokens(seed, pad_id):
    tokens = np.random.default_rng(seed).integers(0, 5, size=(3, 6))
    mask = np.asarray(A.padding_mask(tokens, pad_id=pad_id))
    assert mask.shape == (3, 1, 1, 6) and mask.dtype == bool
    for b in range(3):
        for j in range(6):
            assert mask[b, 0, 0, j] == (tokens[b, j] != pad_id)


def test_bad_mask_arguments_are_value_errors():
    with pytest.raises(ValueError, match="window must be >= 0"):
        A.local_mask(4, -1)
    with pytest.raises(ValueError, match="length must be >= 1"):
        A.causal_mask(0)
    with pytest.raises(ValueError, match=r"tokens \[batch, length\]"):
        A.padding_mask(np.zeros(3, int))

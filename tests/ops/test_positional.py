"""Claims about positional information: sinusoids, rotary embeddings, ALiBi (ops/positional.py)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.ops import positional as P


@given(st.integers(0, 12), st.integers(1, 9))
def test_sinusoidal_is_the_papers_formula_with_interleaved_sin_and_cos(length, dim):
    pe = np.asarray(P.sinusoidal(length, dim))
    assert pe.shape == (length, dim) and pe.dtype == np.float32
    ref = np.zeros((length, dim))
    for pos in range(length):
        for i in range((dim + 1) // 2):
            angle = pos / 10000 ** (2 * i / dim)
            ref[pos, 2 * i] = math.sin(angle)
            if 2 * i + 1 < dim:
                ref[pos, 2 * i + 1] = math.cos(angle)
    np.testing.assert_allclose(pe, ref, atol=1e-6)


def _rotate(x: np.ndarray, m: int, base: float = 10000.0) -> np.ndarray:
    """RoFormer: multiply by the block-diagonal rotation matrix R_m (one 2x2 block per pair)."""
    d = x.shape[-1]
    r = np.zeros((d, d))
    for i in range(d // 2):
        theta = m * base ** (-2 * i / d)
        c, s = math.cos(theta), math.sin(theta)
        r[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[c, -s], [s, c]]
    return r @ x


def _rope(x: np.ndarray, m: int) -> np.ndarray:
    """apply_rotary on one vector at position m."""
    out = P.apply_rotary(jnp.asarray(x, jnp.float32)[None, None, None], jnp.asarray([m]))
    return np.asarray(out[0, 0, 0], np.float64)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50), st.integers(0, 999))
def test_rotary_dot_product_depends_only_on_the_position_difference(m, n, shift, seed):
    """<R_m q, R_n k> = <R_{m+s} q, R_{n+s} k>, and rotation preserves norms."""
    q, k = np.random.default_rng(seed).normal(size=(2, 8))
    np.testing.assert_allclose(
        _rope(q, m) @ _rope(k, n), _rope(q, m + shift) @ _rope(k, n + shift), atol=1e-4
    )
    np.testing.assert_allclose(np.linalg.norm(_rope(q, m)), np.linalg.norm(q), rtol=1e-5)
    np.testing.assert_allclose(_rope(q, m), _rotate(q, m), atol=1e-5)


def test_rotary_takes_shared_or_per_example_positions():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 3, 4)), jnp.float32)
    shared = P.apply_rotary(x, jnp.arange(5))
    per_example = P.apply_rotary(x, jnp.stack([jnp.arange(5), jnp.arange(5) + 7]))
    np.testing.assert_allclose(per_example[0], shared[0], atol=1e-6)
    np.testing.assert_allclose(P.apply_rotary(x[1:], jnp.arange(5) + 7), per_example[1:], atol=1e-6)
    np.testing.assert_allclose(P.apply_rotary(x, jnp.zeros(5, int)), x)  # position 0: identity
    with pytest.raises(ValueError, match="even head_dim"):
        P.apply_rotary(x[..., :3], jnp.arange(5))


def test_alibi_slopes_for_8_heads_are_one_half_to_one_256th():
    np.testing.assert_allclose(P.alibi_slopes(8), [2.0**-k for k in range(1, 9)])


def test_alibi_slopes_for_non_powers_of_two_follow_the_papers_rule():
    """n = 6: the 4-head slopes, then every other 8-head slope; n = 12: 8-head, then 16-head."""
    np.testing.assert_allclose(P.alibi_slopes(6), [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3])
    expected_12 = [2.0**-k for k in range(1, 9)] + [2.0 ** -(k + 0.5) for k in range(4)]
    np.testing.assert_allclose(P.alibi_slopes(12), expected_12, rtol=1e-6)
    np.testing.assert_allclose(P.alibi_slopes(1), [2**-8])


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 3))
def test_alibi_bias_is_minus_slope_times_distance_with_queries_at_the_last_positions(
    heads, q_len, extra
):
    kv_len = q_len + extra
    bias = np.asarray(P.alibi_bias(heads, q_len, kv_len))
    slopes = np.asarray(P.alibi_slopes(heads))
    assert bias.shape == (1, heads, q_len, kv_len)
    for h in range(heads):
        for i in range(q_len):
            for j in range(kv_len):
                expected = -slopes[h] * abs(kv_len - q_len + i - j)
                assert bias[0, h, i, j] == pytest.approx(expected)


def test_alibi_decode_step_gets_the_last_row_of_the_full_bias():
    full = P.alibi_bias(4, 7, 7)
    np.testing.assert_array_equal(P.alibi_bias(4, 1, 7)[:, :, 0], full[:, :, -1])

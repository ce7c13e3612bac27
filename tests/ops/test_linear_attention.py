"""Claims about linear (kernelized) attention, Katharopoulos et al. 2020 (ops/linear.py)."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testing import key_padding, qkv

from attnlab.ops import attention as A

EPS = 1e-6


def _quadratic_form(q, k, v, key_mask, causal):
    """The same attention written the O(T^2) way: A = phi(Q) phi(K)^T, masked, row-normalized."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    phi = lambda x: np.where(x > 0, x + 1.0, np.exp(x))  # elu(x) + 1
    sim = np.einsum("bqhd,bkhd->bhqk", phi(q), phi(k))
    tq, tk = q.shape[1], k.shape[1]
    allowed = np.ones((1, 1, tq, tk), bool)
    if key_mask is not None:
        allowed = allowed & key_mask
    if causal:
        allowed = allowed & (np.arange(tk)[None, :] <= np.arange(tq)[:, None] + tk - tq)
    sim = np.where(allowed, sim, 0.0)
    return np.einsum("bhqk,bkhd->bqhd", sim, v) / (sim.sum(-1).transpose(0, 2, 1)[..., None] + EPS)


@functools.partial(jax.jit, static_argnames="causal")
def _linear(q, k, v, mask, causal):
    return A.linear_attention(q, k, v, mask=mask, causal=causal, eps=EPS)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@settings(max_examples=2, deadline=None)
@given(
    sizes=st.tuples(st.integers(1, 2), st.integers(1, 6), st.integers(0, 3), st.integers(1, 2)),
    seed=st.integers(0, 2**16),
)
def test_linear_attention_equals_its_quadratic_form(sizes, causal, padded, seed):
    """Causal (with Tq <= Tk, queries at the last positions) and not, with a padding mask."""
    b, tq, extra_keys, h = sizes
    tk = tq + extra_keys
    q, k, v = qkv(seed, b, tq, tk, h, 4)
    mask = key_padding(seed, b, tk) if padded else None
    out = _linear(q, k, v, mask, causal)
    np.testing.assert_allclose(out, _quadratic_form(q, k, v, mask, causal), atol=1e-5, rtol=1e-5)


def test_one_causal_step_equals_one_query_over_the_keys_so_far():
    """Row t of causal linear attention = one query attending (non-causally) to keys 0..t."""
    q, k, v = qkv(7, 2, 6, 6, 2, 4)
    full = A.linear_attention(q, k, v, causal=True)
    for t in range(6):
        keys_so_far = (np.arange(6) <= t)[None, None, None, :]
        step = A.linear_attention(q[:, t : t + 1], k, v, mask=keys_so_far)
        np.testing.assert_allclose(step[:, 0], full[:, t], atol=1e-5)


def test_a_query_with_no_allowed_key_gets_zero():
    q, k, v = qkv(8, 1, 2, 3, 1, 2)
    out = A.linear_attention(q, k, v, mask=np.zeros((1, 1, 1, 3), bool))
    np.testing.assert_array_equal(out, np.zeros_like(out))


def test_a_mask_that_varies_over_queries_is_a_value_error():
    q, k, v = qkv(0, 1, 3, 3, 1, 2)
    with pytest.raises(ValueError, match="varies over queries"):
        A.linear_attention(q, k, v, mask=A.causal_mask(3))
    with pytest.raises(ValueError, match="q_len <= kv_len"):
        A.linear_attention(q, k[:, :2], v[:, :2], causal=True)

"""Claims about chunked (online-softmax) attention (ops/chunked.py)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testing import key_padding, qkv, random_mask

from attnlab.ops import attention as A


def _offset_causal(q_len: int, kv_len: int) -> np.ndarray:
    """Query i sits at key position kv_len - q_len + i and sees keys up to there."""
    i = np.arange(q_len)[:, None] + kv_len - q_len
    return (np.arange(kv_len)[None, :] <= i)[None, None]


@functools.partial(jax.jit, static_argnames=("causal", "chunks"))
def _value_and_grads(q, k, v, cotangent, mask, bias, causal, chunks):
    """Output and d<out, cotangent>/d(q, k, v) of chunked and of dense softmax attention."""
    dense_mask = mask
    if causal:
        causal_rows = jnp.asarray(_offset_causal(q.shape[1], k.shape[1]))
        dense_mask = causal_rows if mask is None else mask & causal_rows

    def chunked(q, k, v):
        return A.chunked_attention(
            q, k, v, mask=mask, bias=bias, causal=causal, query_chunk=chunks[0], key_chunk=chunks[1]
        )

    def dense(q, k, v):
        return A.dot_product_attention(q, k, v, mask=dense_mask, bias=bias)

    results = []
    for fn in (chunked, dense):
        out, vjp = jax.vjp(fn, q, k, v)
        results.append((out, vjp(cotangent)))
    return results


@pytest.mark.parametrize(
    ("mask_kind", "with_bias", "causal"),
    [
        ("padding", True, False),
        ("padding", False, True),
        ("per_head", False, False),  # includes rows that may attend to nothing
        ("none", True, True),
    ],
)
@settings(max_examples=2, deadline=None)
@given(
    sizes=st.tuples(st.integers(1, 2), st.integers(3, 9), st.integers(3, 9), st.integers(1, 2)),
    chunks=st.sampled_from([(2, 3), (4, 4), (3, 2), (128, 128)]),
    seed=st.integers(0, 2**16),
)
def test_chunked_equals_dense_softmax_in_value_and_gradient(
    sizes, chunks, mask_kind, with_bias, causal, seed
):
    """Lengths that are not multiples of the chunks, padding masks, bias, causal: all equal."""
    b, tq, tk, h = sizes
    q, k, v = qkv(seed, b, tq, tk, h, 4)
    cotangent = jnp.asarray(np.random.default_rng(seed + 9).normal(size=(b, tq, h, 4)), jnp.float32)
    mask = None
    if mask_kind == "padding":
        mask = jnp.asarray(key_padding(seed, b, tk))
    elif mask_kind == "per_head":
        mask = jnp.asarray(random_mask(seed, (b, h, tq, tk), every_row_allowed=False))
    bias = None
    if with_bias:
        bias = jnp.asarray(np.random.default_rng(seed).normal(size=(1, h, tq, tk)), jnp.float32)
    (out, grads), (ref_out, ref_grads) = _value_and_grads(
        q, k, v, cotangent, mask, bias, causal, chunks
    )
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    for name, g, ref in zip("qkv", grads, ref_grads):
        np.testing.assert_allclose(g, ref, atol=2e-5, err_msg=f"gradient w.r.t. {name}")


def test_chunked_with_causal_flag_equals_dense_under_causal_mask():
    q, k, v = qkv(3, 2, 11, 11, 2, 4)
    mask = key_padding(3, 2, 11)

    @jax.jit
    def both(q, k, v):
        chunked = A.chunked_attention(q, k, v, mask=mask, causal=True, query_chunk=4, key_chunk=3)
        dense = A.dot_product_attention(q, k, v, mask=mask & A.causal_mask(11))
        return chunked, dense

    chunked, dense = both(q, k, v)
    np.testing.assert_allclose(chunked, dense, atol=1e-5)


def _largest_intermediate(jaxpr) -> int:
    """The most elements held by any value a jaxpr (or a jaxpr nested in it) computes."""
    largest = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            largest = max(largest, int(np.prod(getattr(var.aval, "shape", ()))))
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    largest = max(largest, _largest_intermediate(inner))
    return largest


def test_memory_is_o_chunk_not_o_length_squared_forward_and_backward():
    """No value in the forward or backward computation is as big as the [B, H, T, T] scores.

    The probe does find the score matrix in dense attention, so it can fail.
    """
    b, t, h, d, chunk = 1, 64, 2, 4, 8
    q, k, v = qkv(4, b, t, t, h, d)
    mask = jnp.asarray(key_padding(4, b, t))  # [B, 1, 1, T]: must not be broadcast to [B,H,T,T]
    scores_size = b * h * t * t

    def chunked(q, k, v):
        return A.chunked_attention(q, k, v, mask=mask, query_chunk=chunk, key_chunk=chunk)

    def loss(q, k, v):
        return jnp.sum(chunked(q, k, v) ** 2)

    for what in (chunked, jax.grad(loss, argnums=(0, 1, 2))):
        size = _largest_intermediate(jax.make_jaxpr(what)(q, k, v).jaxpr)
        assert size < scores_size // 4, size
    dense_size = _largest_intermediate(
        jax.make_jaxpr(lambda q, k, v: A.dot_product_attention(q, k, v, mask=mask))(q, k, v).jaxpr
    )
    assert dense_size >= scores_size


def test_bad_chunk_sizes_are_value_errors():
    q, k, v = qkv(0, 1, 4, 4, 1, 2)
    with pytest.raises(ValueError, match="chunk sizes must be >= 1"):
        A.chunked_attention(q, k, v, query_chunk=0)

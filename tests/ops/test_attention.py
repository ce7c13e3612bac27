"""Claims about dense dot-product attention and its score functions (ops/attention.py)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testing import as_4d, key_padding, qkv, random_mask, shapes

from attnlab.ops import attention as A

MASK_KINDS = ["none", "padding", "per_head", "2d", "with_fully_masked_rows"]
BIAS_KINDS = ["none", "per_head", "per_batch_key"]


def _mask(kind, seed, b, tq, tk, h):
    if kind == "none":
        return None
    if kind == "padding":
        return key_padding(seed, b, tk)
    if kind == "per_head":
        return random_mask(seed, (b, h, tq, tk), every_row_allowed=True)
    if kind == "2d":
        return random_mask(seed, (tq, tk), every_row_allowed=True)
    mask = random_mask(seed, (b, h, tq, tk), every_row_allowed=True)
    mask[0, 0, 0, :] = False  # at least one row that may attend to nothing
    return mask


def _bias(kind, seed, b, tq, tk, h):
    rng = np.random.default_rng(seed + 3)
    if kind == "none":
        return None
    if kind == "per_head":
        return rng.normal(size=(1, h, tq, tk)).astype(np.float32)
    return rng.normal(size=(b, 1, 1, tk)).astype(np.float32)


@jax.jit
def _ours_and_jax(q, k, v, mask, bias):
    ours = A.dot_product_attention(q, k, v, mask=mask, bias=bias)
    ref_mask = None if mask is None else mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
    return ours, jax.nn.dot_product_attention(q, k, v, bias=bias, mask=ref_mask)


@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@settings(max_examples=3, deadline=None)
@given(shape=shapes, bias_kind=st.sampled_from(BIAS_KINDS))
def test_softmax_attention_equals_jax_dot_product_attention(shape, mask_kind, bias_kind):
    b, tq, tk, h, d, seed = shape
    q, k, v = qkv(seed, b, tq, tk, h, d)
    mask = _mask(mask_kind, seed, b, tq, tk, h)
    bias = _bias(bias_kind, seed, b, tq, tk, h)
    ours, ref = _ours_and_jax(q, k, v, mask, bias)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_softmax_attention_equals_jax_with_explicit_scale():
    q, k, v = qkv(0, 2, 3, 5, 2, 4)
    ours, ref = jax.jit(
        lambda q, k, v: (
            A.dot_product_attention(q, k, v, scale=0.3),
            jax.nn.dot_product_attention(q, k, v, scale=0.3),
        )
    )(q, k, v)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_a_fully_masked_softmax_row_is_the_uniform_average_of_the_values():
    """jax's behaviour, matched: finite, weight 1/Tk on every key."""
    q, k, v = qkv(1, 1, 2, 4, 1, 2)
    mask = np.ones((1, 1, 2, 4), bool)
    mask[0, 0, 1] = False
    out = A.dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(out[0, 1], jnp.mean(v[0], axis=0), atol=1e-6)


def _brute_force(q, k, v, mask, bias, scores):
    """numpy loops: weights w[b, h, i, j] and outputs, straight from the definitions."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    b_, tq, h_, d = q.shape
    tk = k.shape[1]
    mask = np.broadcast_to(as_4d(mask), (b_, h_, tq, tk))
    bias = np.broadcast_to(as_4d(bias), (b_, h_, tq, tk))
    w = np.zeros((b_, h_, tq, tk))
    for b in range(b_):
        for h in range(h_):
            for i in range(tq):
                allowed = [j for j in range(tk) if mask[b, h, i, j]]
                for j in allowed:
                    s = q[b, i, h] @ k[b, j, h] / np.sqrt(d) + bias[b, h, i, j]
                    if scores == "sigmoid":
                        w[b, h, i, j] = 1.0 / (1.0 + np.exp(-s))
                    elif scores == "sigmoid_minus_log_length":
                        w[b, h, i, j] = 1.0 / (1.0 + len(allowed) * np.exp(-s))
                    else:
                        w[b, h, i, j] = max(s, 0.0)
                        if scores == "relu_over_length":
                            w[b, h, i, j] /= len(allowed)
    return w, np.einsum("bhqk,bkhd->bqhd", w, v)


@functools.partial(jax.jit, static_argnames="scores")
def _weights_and_output(q, k, v, mask, bias, scores):
    w = A.attention_weights(q, k, mask=mask, bias=bias, scores=scores)
    return w, A.dot_product_attention(q, k, v, mask=mask, bias=bias, scores=scores)


@pytest.mark.parametrize(
    "scores", ["relu", "relu_over_length", "sigmoid", "sigmoid_minus_log_length"]
)
@settings(max_examples=3, deadline=None)
@given(shape=shapes)
def test_relu_and_sigmoid_scores_equal_their_definitions(shape, scores):
    """relu: w = relu(s); relu_over_length: relu(s) / L; sigmoid(s); sigmoid(s - log L).

    L is the number of keys the query may attend; sigmoid(s - log L) = 1 / (1 + L exp(-s)).

    So a row of relu_over_length weights sums to (sum of relu scores) / L.
    """
    b, tq, tk, h, d, seed = shape
    q, k, v = qkv(seed, b, tq, tk, h, d)
    mask = random_mask(seed, (b, 1, tq, tk), every_row_allowed=False)
    bias = _bias("per_head", seed, b, tq, tk, h)
    w_ref, out_ref = _brute_force(q, k, v, mask, bias, scores)
    w, out = _weights_and_output(q, k, v, mask, bias, scores)
    np.testing.assert_allclose(w, w_ref, atol=1e-5)
    np.testing.assert_allclose(jnp.sum(w, -1), w_ref.sum(-1), atol=1e-5)
    np.testing.assert_allclose(out, out_ref, atol=1e-5)


def test_relu_over_length_without_mask_divides_by_the_number_of_keys():
    q, k, v = qkv(5, 1, 3, 6, 2, 4)
    relu = A.attention_weights(q, k, scores="relu")
    np.testing.assert_allclose(A.attention_weights(q, k, scores="relu_over_length"), relu / 6)


def test_sigmoid_minus_log_length_at_zero_scores_gives_one_over_length_plus_one():
    """With q = 0 every score is 0: sigmoid(-log L) = 1 / (L + 1), where sigmoid gives 1/2."""
    _, k, _ = qkv(6, 1, 3, 6, 2, 4)
    q = jnp.zeros((1, 3, 2, 4))
    mask = jnp.array([True, True, True, False, False, False])[None, None, None, :]
    w = A.attention_weights(q, k, mask=mask, scores="sigmoid_minus_log_length")
    np.testing.assert_allclose(w[..., :3], 1 / 4, rtol=1e-6)
    np.testing.assert_array_equal(w[..., 3:], 0.0)
    unmasked = A.attention_weights(q, k, scores="sigmoid_minus_log_length")
    np.testing.assert_allclose(unmasked, 1 / 7, rtol=1e-6)
    np.testing.assert_allclose(A.attention_weights(q, k, scores="sigmoid"), 0.5)


ALL_ATTENTIONS = {
    "softmax": lambda q, k, v, m: A.dot_product_attention(q, k, v, mask=m),
    "relu": lambda q, k, v, m: A.dot_product_attention(q, k, v, mask=m, scores="relu"),
    "relu_over_length": lambda q, k, v, m: A.dot_product_attention(
        q, k, v, mask=m, scores="relu_over_length"
    ),
    "sigmoid": lambda q, k, v, m: A.dot_product_attention(q, k, v, mask=m, scores="sigmoid"),
    "sigmoid_minus_log_length": lambda q, k, v, m: A.dot_product_attention(
        q, k, v, mask=m, scores="sigmoid_minus_log_length"
    ),
    "linear": lambda q, k, v, m: A.linear_attention(q, k, v, mask=m),
    "chunked": lambda q, k, v, m: A.chunked_attention(q, k, v, mask=m, query_chunk=2, key_chunk=3),
}


@pytest.mark.parametrize("name", sorted(ALL_ATTENTIONS))
def test_masked_keys_never_change_the_output(name):
    """Replacing the keys and values at masked (padding) positions leaves the output unchanged."""
    fn = jax.jit(ALL_ATTENTIONS[name])
    b, tq, tk, h, d = 2, 4, 7, 2, 4
    q, k, v = qkv(11, b, tq, tk, h, d)
    mask = key_padding(11, b, tk)
    noise = np.random.default_rng(12).normal(size=(2, b, tk, h, d)) * 5
    masked = ~mask[:, 0, 0, :, None, None]  # [B, Tk, 1, 1]
    k2 = jnp.where(masked, noise[0], k)
    v2 = jnp.where(masked, noise[1], v)
    np.testing.assert_array_equal(fn(q, k, v, mask), fn(q, k2, v2, mask))


CAUSAL_ATTENTIONS = {
    "softmax": lambda q, k, v: A.dot_product_attention(q, k, v, mask=A.causal_mask(q.shape[1])),
    "sigmoid": lambda q, k, v: A.dot_product_attention(
        q, k, v, mask=A.causal_mask(q.shape[1]), scores="sigmoid"
    ),
    "linear": lambda q, k, v: A.linear_attention(q, k, v, causal=True),
    "chunked": lambda q, k, v: A.chunked_attention(
        q, k, v, causal=True, query_chunk=2, key_chunk=2
    ),
}


@pytest.mark.parametrize("name", sorted(CAUSAL_ATTENTIONS))
def test_causal_output_at_t_does_not_change_when_later_tokens_change(name):
    fn = jax.jit(CAUSAL_ATTENTIONS[name])
    q, k, v = qkv(21, 1, 6, 6, 2, 4)
    q2, k2, v2 = qkv(22, 1, 6, 6, 2, 4)
    t = 3
    later = (jnp.arange(6) > t)[None, :, None, None]
    out = fn(q, k, v)
    out2 = fn(jnp.where(later, q2, q), jnp.where(later, k2, k), jnp.where(later, v2, v))
    np.testing.assert_allclose(out[:, : t + 1], out2[:, : t + 1], atol=1e-6)
    assert not np.allclose(out[:, t + 1 :], out2[:, t + 1 :])


def test_bf16_inputs_get_float32_scores():
    """The scores of bf16 inputs are the float32 scores of the same (bf16-exact) numbers."""
    q, k, _ = qkv(31, 1, 5, 5, 2, 64)
    q, k = q * 3, k * 3
    qb, kb = q.astype(jnp.bfloat16), k.astype(jnp.bfloat16)
    w_bf16 = A.attention_weights(qb, kb)
    w_f32 = A.attention_weights(qb.astype(jnp.float32), kb.astype(jnp.float32))
    assert w_bf16.dtype == jnp.float32
    np.testing.assert_allclose(w_bf16, w_f32, atol=1e-6)


def test_unknown_score_function_is_a_value_error_listing_the_valid_ones():
    q, k, v = qkv(0, 1, 2, 2, 1, 2)
    with pytest.raises(ValueError, match="softmax, relu, relu_over_length, sigmoid"):
        A.dot_product_attention(q, k, v, scores="tanh")


def test_bad_masks_are_value_errors():
    q, k, v = qkv(0, 1, 2, 3, 1, 2)
    with pytest.raises(ValueError, match="boolean"):
        A.dot_product_attention(q, k, v, mask=jnp.ones((1, 1, 2, 3)))
    with pytest.raises(ValueError, match="not broadcastable"):
        A.dot_product_attention(q, k, v, mask=jnp.ones((1, 1, 3, 2), bool))


def test_split_heads_puts_consecutive_features_in_each_head_and_merge_inverts_it():
    x = jnp.arange(2 * 3 * 12, dtype=jnp.float32).reshape(2, 3, 12)
    heads = A.split_heads(x, 4)
    assert heads.shape == (2, 3, 4, 3)
    for h in range(4):
        np.testing.assert_array_equal(heads[:, :, h], x[:, :, 3 * h : 3 * h + 3])
    np.testing.assert_array_equal(A.merge_heads(heads), x)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        A.split_heads(x, 5)

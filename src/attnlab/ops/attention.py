"""Scaled dot-product attention and its variants, as pure jax functions.

Layout is ``[batch, length, heads, head_dim]`` (as ``jax.nn.dot_product_attention``). A mask is
boolean, broadcastable to ``[batch, heads, q_len, kv_len]``, True meaning "may attend".

This module holds the dense attention with its four score functions and the head reshapes.
``linear_attention`` (``ops/linear.py``), ``chunked_attention`` (``ops/chunked.py``) and the
masks (``ops/masks.py``) live in their own files and are re-exported here, so everything is
reached as ``attnlab.ops.attention.<name>``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnlab.ops.chunked import chunked_attention
from attnlab.ops.linear import linear_attention
from attnlab.ops.masks import (
    MASK_VALUE,
    causal_mask,
    check_mask,
    check_qkv,
    expand_4d,
    local_mask,
    padding_mask,
)

__all__ = [
    "SCORE_FUNCTIONS",
    "attention_weights",
    "causal_mask",
    "chunked_attention",
    "dot_product_attention",
    "linear_attention",
    "local_mask",
    "merge_heads",
    "padding_mask",
    "split_heads",
]

SCORE_FUNCTIONS = ("softmax", "relu", "relu_over_length", "sigmoid", "sigmoid_minus_log_length")


def attention_weights(
    query: jax.Array,
    key: jax.Array,
    *,
    mask: jax.Array | None = None,
    bias: jax.Array | None = None,
    scores: str = "softmax",
    scale: float | None = None,
) -> jax.Array:
    """The attention weights ``A`` [B, H, Tq, Tk] (float32) of ``dot_product_attention``.

    With ``S = Q K^T * scale + bias`` (scale defaults to ``1/sqrt(d_k)``):

    - ``softmax``: ``A = softmax(S)`` over the keys (Vaswani et al. 2017, eq. 1). Masked logits
      are set to ``MASK_VALUE`` (a finite -0.7 * float32 max, exactly like
      ``jax.nn.dot_product_attention``): a masked key gets weight exactly 0 as long as its row
      has an allowed key, and a row whose keys are all masked gets uniform weights 1/Tk over
      every key (jax's behaviour, matched on purpose; it is finite, never NaN).
    - ``relu``: ``A = relu(S)``.
    - ``relu_over_length``: ``A = relu(S) / L`` with ``L`` the number of keys the query may
      attend (Wortsman et al. 2023, "Replacing softmax with ReLU in Vision Transformers",
      divide by the sequence length; with padding that is the number of real keys).
    - ``sigmoid``: ``A = sigmoid(S)`` (Ramapuram et al. 2024), with no bias.
    - ``sigmoid_minus_log_length``: ``A = sigmoid(S - log L)``, the bias ``b = -log(n)`` that
      Ramapuram et al. (2024) recommend, with ``L`` counted as for ``relu_over_length``. At
      ``S = 0`` every weight is ``1 / (L + 1)``, close to softmax's ``1 / L``, where plain
      sigmoid gives 1/2 to every key.

    For every choice but softmax masked keys get weight exactly 0, so a row whose keys are all
    masked has zero weights (output 0).
    """
    if scores not in SCORE_FUNCTIONS:
        raise ValueError(f"unknown scores {scores!r}; valid: {', '.join(SCORE_FUNCTIONS)}")
    check_qkv(query, key, key)
    batch, q_len, heads, head_dim = query.shape
    kv_len = key.shape[1]
    full = (batch, heads, q_len, kv_len)
    if scale is None:
        scale = head_dim**-0.5
    # Scores in float32 whatever the input dtype (bf16 products accumulate in f32).
    logits = jnp.einsum("bqhd,bkhd->bhqk", query, key, preferred_element_type=jnp.float32)
    logits = logits * jnp.float32(scale)
    if bias is not None:
        logits = logits + expand_4d(bias, "bias", full).astype(jnp.float32)
    if mask is not None:
        mask = check_mask(mask, full)
    if scores == "softmax":
        if mask is not None:
            logits = jnp.where(mask, logits, MASK_VALUE)
        return jax.nn.softmax(logits, axis=-1)
    if scores == "sigmoid":
        weights = jax.nn.sigmoid(logits)
    elif scores == "sigmoid_minus_log_length":
        weights = jax.nn.sigmoid(logits - jnp.log(_num_allowed_keys(mask, kv_len)))
    else:
        weights = jax.nn.relu(logits)
    if mask is not None:
        weights = jnp.where(mask, weights, 0.0)
    if scores == "relu_over_length":
        weights = weights / _num_allowed_keys(mask, kv_len)
    return weights


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    *,
    mask: jax.Array | None = None,
    bias: jax.Array | None = None,
    scores: str = "softmax",
    scale: float | None = None,
) -> jax.Array:
    """Attention(Q, K, V) = A V, with the weights ``A`` of ``attention_weights``.

    Vaswani et al. 2017, eq. 1: ``softmax(Q K^T / sqrt(d_k)) V``, per head; ``scores`` swaps the
    softmax for relu, relu/L, sigmoid or sigmoid(S - log L) (see ``attention_weights``).
    ``bias`` [B|1, H|1, Tq|1, Tk] is added to the logits before masking (e.g. ALiBi). For
    ``scores="softmax"`` the result equals ``jax.nn.dot_product_attention(query, key, value,
    bias, mask, scale=scale)``, fully-masked rows included. Masked keys get weight exactly 0,
    so their keys and values never change the output; the one exception is a softmax row whose
    keys are *all* masked, which is jax's uniform average over every key.

    Shapes: query [B, Tq, H, D], key [B, Tk, H, D], value [B, Tk, H, Dv] -> [B, Tq, H, Dv] in
    the dtype of ``value``. Scores and weights are float32; the weights are cast to the value
    dtype before the weighted sum, which accumulates in float32.
    """
    check_qkv(query, key, value)
    weights = attention_weights(query, key, mask=mask, bias=bias, scores=scores, scale=scale)
    out = jnp.einsum(
        "bhqk,bkhd->bqhd",
        weights.astype(value.dtype),
        value,
        preferred_element_type=jnp.float32,
    )
    return out.astype(value.dtype)


def _num_allowed_keys(mask: jax.Array | None, kv_len: int) -> jax.Array | float:
    """``L``: keys each query may attend, broadcastable to [B, H, Tq, 1]; at least 1."""
    if mask is None:
        return float(kv_len)
    full_keys = jnp.broadcast_to(mask, mask.shape[:-1] + (kv_len,))
    count = jnp.sum(full_keys, axis=-1, keepdims=True, dtype=jnp.float32)
    return jnp.maximum(count, 1.0)


def split_heads(x: jax.Array, num_heads: int) -> jax.Array:
    """``[B, T, H*D] -> [B, T, H, D]``: head h holds features ``h*D .. (h+1)*D - 1``."""
    if num_heads < 1 or x.shape[-1] % num_heads:
        raise ValueError(
            f"split_heads: features {x.shape[-1]} must be a positive multiple of num_heads"
            f" {num_heads}"
        )
    return x.reshape(x.shape[:-1] + (num_heads, x.shape[-1] // num_heads))


def merge_heads(x: jax.Array) -> jax.Array:
    """``[B, T, H, D] -> [B, T, H*D]``, the inverse of ``split_heads`` (Concat(head_1..head_h))."""
    if x.ndim < 2:
        raise ValueError(f"merge_heads needs [..., heads, head_dim]; got shape {x.shape}")
    return x.reshape(x.shape[:-2] + (x.shape[-2] * x.shape[-1],))

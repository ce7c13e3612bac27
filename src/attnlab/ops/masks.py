"""Attention masks and the shape rules every attention function shares.

A mask is boolean and broadcastable to ``[batch, heads, q_len, kv_len]``; True means "query i
may attend to key j". Masks combine with ``&``, e.g. ``padding_mask(src) & causal_mask(T)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# The logit given to a masked key. Same constant as ``jax.nn.dot_product_attention``: finite, so
# a row whose keys are all masked is a uniform average instead of NaN, and so small that
# exp(MASK_VALUE - max_logit) is exactly 0 whenever the row has one allowed key.
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


def causal_mask(length: int) -> jax.Array:
    """Decoder self-attention mask, bool ``[1, 1, L, L]``: ``mask[i, j] = j <= i``.

    Position i may attend to positions up to and including i (Vaswani et al. 2017, 3.2.3).
    """
    _check_length(length)
    return jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]


def padding_mask(tokens: jax.Array, pad_id: int = 0) -> jax.Array:
    """Key padding mask, bool ``[B, 1, 1, L]``: ``mask[b, j] = tokens[b, j] != pad_id``."""
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"padding_mask takes tokens [batch, length]; got shape {tokens.shape}")
    return (tokens != pad_id)[:, None, None, :]


def local_mask(length: int, window: int, causal: bool = False) -> jax.Array:
    """Sliding-window mask, bool ``[1, 1, L, L]``: ``mask[i, j] = |i - j| <= window``.

    With ``causal=True`` additionally ``j <= i``, so each query sees itself and the ``window``
    keys before it.
    """
    _check_length(length)
    if window < 0:
        raise ValueError(f"local_mask window must be >= 0; got {window}")
    i = jnp.arange(length)[:, None]
    j = jnp.arange(length)[None, :]
    allowed = jnp.abs(i - j) <= window
    if causal:
        allowed = allowed & (j <= i)
    return allowed[None, None]


def _check_length(length: int) -> None:
    if length < 1:
        raise ValueError(f"mask length must be >= 1; got {length}")


def expand_4d(x: jax.Array, name: str, full: tuple[int, int, int, int]) -> jax.Array:
    """``x`` with leading size-1 axes added to rank 4, checked broadcastable to ``full``.

    Size-1 axes stay size 1 (nothing is materialized at ``full``).
    """
    x = jnp.asarray(x)
    if x.ndim > 4:
        raise ValueError(
            f"{name} must have at most 4 axes [batch, heads, q_len, kv_len]; got {x.shape}"
        )
    x = x.reshape((1,) * (4 - x.ndim) + x.shape)
    if any(have not in (1, want) for have, want in zip(x.shape, full)):
        raise ValueError(
            f"{name} of shape {x.shape} is not broadcastable to [batch, heads, q_len, kv_len]"
            f" = {full}"
        )
    return x


def check_mask(mask: jax.Array, full: tuple[int, int, int, int]) -> jax.Array:
    """A boolean mask as rank 4, broadcastable to ``full``; ValueError otherwise."""
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise ValueError(f"mask must be boolean (True = may attend); got dtype {mask.dtype}")
    return expand_4d(mask, "mask", full)


def check_qkv(query: jax.Array, key: jax.Array, value: jax.Array) -> None:
    """Check the ``[batch, length, heads, head_dim]`` layout of query, key and value."""
    for name, x in (("query", query), ("key", key), ("value", value)):
        if x.ndim != 4:
            raise ValueError(f"{name} must be [batch, length, heads, head_dim]; got {x.shape}")
    if value.shape[:3] != key.shape[:3]:
        raise ValueError(f"value {value.shape} and key {key.shape} differ in batch/length/heads")
    b, _, h, d = query.shape
    if (key.shape[0], key.shape[2], key.shape[3]) != (b, h, d):
        raise ValueError(f"query {query.shape} and key {key.shape} differ in batch/heads/head_dim")

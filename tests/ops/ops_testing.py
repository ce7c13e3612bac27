"""Shared helpers for the ops/ tests: seeded random q/k/v, masks and hypothesis shapes."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st


def qkv(seed: int, batch: int, q_len: int, kv_len: int, heads: int, head_dim: int):
    """Random float32 query [B, Tq, H, D], key and value [B, Tk, H, D]."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(batch, q_len, heads, head_dim))
    k = rng.normal(size=(batch, kv_len, heads, head_dim))
    v = rng.normal(size=(batch, kv_len, heads, head_dim))
    return tuple(jnp.asarray(a, jnp.float32) for a in (q, k, v))


def key_padding(seed: int, batch: int, kv_len: int) -> np.ndarray:
    """A random right-padding key mask [B, 1, 1, Tk] with 1..Tk real keys per example."""
    rng = np.random.default_rng(seed + 1)
    lengths = rng.integers(1, kv_len + 1, size=batch)
    return (np.arange(kv_len)[None, :] < lengths[:, None])[:, None, None, :]


def random_mask(seed: int, shape: tuple[int, ...], *, every_row_allowed: bool) -> np.ndarray:
    """A random bool mask; with ``every_row_allowed`` each row keeps at least one True key."""
    rng = np.random.default_rng(seed + 2)
    mask = rng.random(shape) < 0.6
    if every_row_allowed:
        rows = mask.reshape(-1, shape[-1])
        rows[np.arange(rows.shape[0]), rng.integers(0, shape[-1], rows.shape[0])] = True
    return mask


def as_4d(x: np.ndarray) -> np.ndarray:
    """Leading size-1 axes up to rank 4 (the broadcast a rank < 4 mask implies)."""
    return x.reshape((1,) * (4 - x.ndim) + x.shape)


# Small attention problems: (batch, q_len, kv_len, heads, head_dim, seed).
shapes = st.tuples(
    st.integers(1, 2),
    st.integers(1, 6),
    st.integers(1, 7),
    st.integers(1, 3),
    st.sampled_from([2, 4]),
    st.integers(0, 2**16),
)

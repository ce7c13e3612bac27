"""Position information: sinusoidal encodings, rotary embeddings and ALiBi biases."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def sinusoidal(length: int, dim: int) -> jax.Array:
    """Sinusoidal positional encodings, float32 ``[length, dim]`` (Vaswani et al. 2017, 3.5).

        PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
        PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

    Sines and cosines interleave along the feature axis, exactly as in the paper. An odd
    ``dim`` ends with a sine column.
    """
    if length < 0 or dim < 1:
        raise ValueError(f"sinusoidal needs length >= 0 and dim >= 1; got {length}, {dim}")
    pos = np.arange(length, dtype=np.float64)[:, None]
    two_i = (np.arange(dim) // 2 * 2).astype(np.float64)
    angle = pos / np.power(10000.0, two_i / dim)
    pe = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    return jnp.asarray(pe, dtype=jnp.float32)


def apply_rotary(x: jax.Array, positions: jax.Array, *, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding (RoFormer, Su et al. 2021, section 3.4.2).

    Each feature pair ``(x_{2i}, x_{2i+1})`` at position m is rotated by the angle
    ``m * theta_i`` with ``theta_i = base^(-2i/d)``:

        x'_{2i}   = x_{2i} cos(m theta_i) - x_{2i+1} sin(m theta_i)
        x'_{2i+1} = x_{2i} sin(m theta_i) + x_{2i+1} cos(m theta_i)

    so ``<R_m q, R_n k>`` depends only on ``m - n``, and norms are preserved. Pairs are
    adjacent features, as in the paper (not the "rotate half" split).

    ``x`` [B, T, H, D] with D even; ``positions`` int [B, T] or [T]. Computed in float32,
    returned in the dtype of ``x``.
    """
    if x.ndim != 4 or x.shape[-1] % 2:
        raise ValueError(
            f"apply_rotary needs x [batch, length, heads, head_dim] with even head_dim;"
            f" got {x.shape}"
        )
    positions = jnp.asarray(positions)
    if positions.ndim == 1:
        positions = positions[None]
    if positions.ndim != 2 or positions.shape[-1] != x.shape[1]:
        raise ValueError(
            f"apply_rotary positions must be [T] or [B, T] with T = {x.shape[1]};"
            f" got {positions.shape}"
        )
    half = x.shape[-1] // 2
    theta = base ** (-2.0 * jnp.arange(half, dtype=jnp.float32) / x.shape[-1])  # [D/2]
    angle = positions.astype(jnp.float32)[:, :, None, None] * theta  # [B|1, T, 1, D/2]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    pairs = x.astype(jnp.float32).reshape(x.shape[:-1] + (half, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(x.shape).astype(x.dtype)


def alibi_slopes(num_heads: int) -> jax.Array:
    """ALiBi head slopes, float32 ``[num_heads]`` (Press et al. 2022, section 3).

    For n a power of two the slopes are the geometric sequence ``2^(-8/n), 2^(-16/n), ...,
    2^(-8)`` (n = 8: 1/2, 1/4, ..., 1/256). Otherwise, with p the largest power of two below n,
    the slopes of p heads followed by every other slope of 2p heads, taking the first n - p
    (the rule of the authors' reference code).
    """
    if num_heads < 1:
        raise ValueError(f"alibi_slopes needs num_heads >= 1; got {num_heads}")

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]

    p = 2 ** int(math.floor(math.log2(num_heads)))
    slopes = geometric(p) + geometric(2 * p)[0::2][: num_heads - p]
    return jnp.asarray(slopes, dtype=jnp.float32)


def alibi_bias(num_heads: int, q_len: int, kv_len: int) -> jax.Array:
    """ALiBi attention bias, float32 ``[1, H, q_len, kv_len]``: ``bias[h, i, j] = -m_h |i' - j|``.

    Added to the attention logits ``Q K^T / sqrt(d)`` (Press et al. 2022, section 3), with the
    slope ``m_h`` of ``alibi_slopes``. The distance is symmetric, for encoders; in a causal
    decoder the future positions are masked anyway, so the same bias serves both. Query i sits
    at key position ``i' = kv_len - q_len + i`` (the queries are the last q_len positions), so
    a decoding step with q_len = 1 gets the row of the last key.
    """
    if q_len < 1 or kv_len < q_len:
        raise ValueError(
            f"alibi_bias needs 1 <= q_len <= kv_len; got q_len={q_len}, kv_len={kv_len}"
        )
    i = jnp.arange(q_len)[:, None] + (kv_len - q_len)
    j = jnp.arange(kv_len)[None, :]
    distance = jnp.abs(i - j).astype(jnp.float32)
    return (-alibi_slopes(num_heads)[:, None, None] * distance)[None]

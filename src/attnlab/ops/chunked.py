"""Memory-efficient softmax attention with an online softmax.

Rabe & Staats 2021, "Self-attention does not need O(n^2) memory"; Dao et al. 2022,
FlashAttention. The result is that of softmax ``dot_product_attention``; only the order of the
computation changes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from attnlab.ops.masks import MASK_VALUE, check_mask, check_qkv, expand_4d

# Logit of a padding key (one that exists only because the length was rounded up to a chunk
# multiple). Below MASK_VALUE, so even a row whose real keys are all masked gives it weight 0,
# and finite, so no inf - inf ever appears.
_PAD_VALUE = -float(np.finfo(np.float32).max)


def chunked_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    *,
    mask: jax.Array | None = None,
    bias: jax.Array | None = None,
    causal: bool = False,
    query_chunk: int = 128,
    key_chunk: int = 128,
    scale: float | None = None,
) -> jax.Array:
    """``softmax(Q K^T * scale + bias) V`` computed chunk by chunk with an online softmax.

    For each query chunk, scan over key chunks keeping, per query row, the running max ``m``,
    the running sum ``l`` and the accumulator ``o``:

        S = Q_c K_c^T * scale + bias_c,   m' = max(m, rowmax S),   P = exp(S - m')
        l' = exp(m - m') l + rowsum P,     o' = exp(m - m') o + P V_c,   out = o / l

    Only [B, H, query_chunk, key_chunk] scores exist at a time. ``mask`` and ``bias`` are
    sliced per chunk with ``lax.dynamic_slice`` keeping their size-1 (broadcast) axes, so a
    [B, 1, 1, Tk] padding mask is never materialized at [B, H, Tq, Tk]. ``causal=True`` builds
    the causal mask per chunk from indices: query i sits at key position ``Tk - Tq + i`` (with
    Tq = Tk that is ``causal_mask``). Lengths need not be multiples of the chunks: the inputs
    are padded internally and the padding keys get weight 0.

    The chunk bodies run under ``jax.checkpoint``, so the backward pass recomputes the scores
    chunk by chunk and gradients w.r.t. query, key and value stay O(chunk) in memory.
    The running max is a ``stop_gradient`` constant: the result does not depend on it.

    Masking follows ``jax.nn.dot_product_attention`` (masked logits = ``MASK_VALUE``), so the
    result equals softmax ``dot_product_attention`` including a row whose keys are all masked
    (uniform weights over the Tk real keys).

    Shapes: query [B, Tq, H, D], key [B, Tk, H, D], value [B, Tk, H, Dv] -> [B, Tq, H, Dv] in
    the dtype of ``value``; scores, the running sum and ``o`` are float32.
    """
    check_qkv(query, key, value)
    if query_chunk < 1 or key_chunk < 1:
        raise ValueError(
            f"chunk sizes must be >= 1; got query_chunk={query_chunk}, key_chunk={key_chunk}"
        )
    batch, q_len, heads, head_dim = query.shape
    kv_len, v_dim = key.shape[1], value.shape[-1]
    full = (batch, heads, q_len, kv_len)
    scale = head_dim**-0.5 if scale is None else scale
    qc, kc = min(query_chunk, q_len), min(key_chunk, kv_len)
    nq, nk = -(-q_len // qc), -(-kv_len // kc)

    q = _pad_axis(query, 1, nq * qc, 0)
    k = _pad_axis(key, 1, nk * kc, 0)
    v = _pad_axis(value, 1, nk * kc, 0)
    if mask is not None:
        mask = _pad_qk(check_mask(mask, full), nq * qc, nk * kc, False)
    if bias is not None:
        bias = _pad_qk(expand_4d(bias, "bias", full).astype(jnp.float32), nq * qc, nk * kc, 0.0)

    def key_step(carry, k_start, q_blk, q_start):
        m, row_sum, o = carry
        k_blk = lax.dynamic_slice_in_dim(k, k_start, kc, axis=1)
        v_blk = lax.dynamic_slice_in_dim(v, k_start, kc, axis=1).astype(jnp.float32)
        s = jnp.einsum("bqhd,bkhd->bhqk", q_blk, k_blk, preferred_element_type=jnp.float32)
        s = s * jnp.float32(scale)
        if bias is not None:
            s = s + _block(bias, q_start, qc, k_start, kc)
        q_pos = q_start + jnp.arange(qc)[:, None]
        k_pos = k_start + jnp.arange(kc)[None, :]
        allowed = jnp.ones((1, 1, 1, 1), bool)
        if mask is not None:
            allowed = _block(mask, q_start, qc, k_start, kc)
        if causal:
            allowed = allowed & (k_pos <= q_pos + (kv_len - q_len))
        s = jnp.where(allowed, s, MASK_VALUE)
        s = jnp.where(k_pos < kv_len, s, _PAD_VALUE)
        m_new = lax.stop_gradient(jnp.maximum(m, jnp.max(s, axis=-1)))
        correction = jnp.exp(m - m_new)
        p = jnp.exp(s - m_new[..., None])
        l_new = correction * row_sum + jnp.sum(p, axis=-1)
        o_new = correction[..., None] * o + jnp.einsum("bhqk,bkhd->bhqd", p, v_blk)
        return (m_new, l_new, o_new), None

    def query_step(_, q_start):
        q_blk = lax.dynamic_slice_in_dim(q, q_start, qc, axis=1)
        init = (
            jnp.full((batch, heads, qc), _PAD_VALUE, jnp.float32),
            jnp.zeros((batch, heads, qc), jnp.float32),
            jnp.zeros((batch, heads, qc, v_dim), jnp.float32),
        )
        body = jax.checkpoint(
            functools.partial(key_step, q_blk=q_blk, q_start=q_start), prevent_cse=False
        )
        (_, row_sum, o), _ = lax.scan(body, init, jnp.arange(nk) * kc)
        return None, o / row_sum[..., None]

    query_step = jax.checkpoint(query_step, prevent_cse=False)
    _, out = lax.scan(query_step, None, jnp.arange(nq) * qc)  # [nq, B, H, qc, Dv]
    out = jnp.transpose(out, (1, 0, 3, 2, 4)).reshape(batch, nq * qc, heads, v_dim)
    return out[:, :q_len].astype(value.dtype)


def _pad_axis(x: jax.Array, axis: int, size: int, value) -> jax.Array:
    """``x`` padded at the end of ``axis`` up to ``size`` with ``value``."""
    if x.shape[axis] == size:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, widths, constant_values=value)


def _pad_qk(x: jax.Array, q_size: int, k_size: int, value) -> jax.Array:
    """Pad the query and key axes of a rank-4 mask/bias, leaving broadcast (size-1) axes."""
    if x.shape[2] != 1:
        x = _pad_axis(x, 2, q_size, value)
    if x.shape[3] != 1:
        x = _pad_axis(x, 3, k_size, value)
    return x


def _block(x: jax.Array, q_start, qc: int, k_start, kc: int) -> jax.Array:
    """The [.., qc, kc] chunk of a rank-4 mask/bias; size-1 axes stay size 1."""
    if x.shape[2] != 1:
        x = lax.dynamic_slice_in_dim(x, q_start, qc, axis=2)
    if x.shape[3] != 1:
        x = lax.dynamic_slice_in_dim(x, k_start, kc, axis=3)
    return x

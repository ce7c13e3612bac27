"""Linear (kernelized) attention: Katharopoulos et al. 2020, "Transformers are RNNs"."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnlab.ops.masks import check_mask, check_qkv


def feature_map(x: jax.Array) -> jax.Array:
    """``phi(x) = elu(x) + 1``, positive everywhere (Katharopoulos et al. 2020, section 3.2.1)."""
    return jax.nn.elu(x) + 1.0


def linear_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    *,
    mask: jax.Array | None = None,
    causal: bool = False,
    eps: float = 1e-6,
) -> jax.Array:
    """Attention with the similarity ``phi(q)^T phi(k)`` in place of ``exp(q^T k / sqrt(d))``.

        V'_i = phi(Q_i)^T S / (phi(Q_i)^T z + eps),  S = sum_j phi(K_j) V_j^T,  z = sum_j phi(K_j)

    (Katharopoulos et al. 2020, section 3.2), computed per head. The summaries S [D, Dv] and z [D]
    make it O(length) in time and memory: non-causal sums over all allowed keys; ``causal=True``
    uses prefix sums (section 3.3) ``S_i = sum_{j <= i} phi(K_j) V_j^T`` via ``cumsum``, memory
    O(Tk * D * Dv) per head. There is no 1/sqrt(d) scale, as in the paper.

    ``mask`` is a *key* mask: boolean, broadcastable to ``[B, H, 1, Tk]`` (e.g.
    ``padding_mask(tokens)`` [B, 1, 1, Tk] or ``valid[:, None, None, :]``). Masked keys are
    dropped from S and z. A mask that varies along the query axis cannot be expressed by the
    summaries and raises ValueError; causality is the ``causal`` flag. A query with no allowed
    key gets output 0 (``eps`` keeps the denominator positive).

    With ``causal=True`` and Tq < Tk the queries are the last Tq positions: query i sits at key
    position ``Tk - Tq + i`` (so one decoding step, Tq = 1, sees all Tk keys).

    Shapes: query [B, Tq, H, D], key [B, Tk, H, D], value [B, Tk, H, Dv] -> [B, Tq, H, Dv].
    Computed in float32, returned in the dtype of ``value``.
    """
    check_qkv(query, key, value)
    batch, q_len, heads, _ = query.shape
    kv_len = key.shape[1]
    phi_q = feature_map(query.astype(jnp.float32))
    phi_k = feature_map(key.astype(jnp.float32))
    v = value.astype(jnp.float32)
    if mask is not None:
        mask = check_mask(mask, (batch, heads, q_len, kv_len))
        if mask.shape[2] != 1:
            raise ValueError(
                f"linear_attention takes a key mask broadcastable to [batch, heads, 1, kv_len];"
                f" got a mask of shape {mask.shape} that varies over queries (use causal=True"
                " for causality)"
            )
        # [B|1, H|1, 1, Tk|1] -> [B|1, Tk|1, H|1, 1], the layout of phi_k.
        key_mask = jnp.transpose(mask[:, :, 0, :], (0, 2, 1))[..., None]
        phi_k = phi_k * key_mask.astype(jnp.float32)
    if not causal:
        s = jnp.einsum("bkhd,bkhe->bhde", phi_k, v)
        z = jnp.sum(phi_k, axis=1)  # [B, H, D]
        num = jnp.einsum("bqhd,bhde->bqhe", phi_q, s)
        den = jnp.einsum("bqhd,bhd->bqh", phi_q, z)
    else:
        if q_len > kv_len:
            raise ValueError(
                f"causal linear_attention needs q_len <= kv_len; got {q_len} > {kv_len}"
            )
        start = kv_len - q_len
        s = jnp.cumsum(jnp.einsum("bkhd,bkhe->bkhde", phi_k, v), axis=1)[:, start:]
        z = jnp.cumsum(phi_k, axis=1)[:, start:]  # [B, Tq, H, D]
        num = jnp.einsum("bqhd,bqhde->bqhe", phi_q, s)
        den = jnp.einsum("bqhd,bqhd->bqh", phi_q, z)
    out = num / (den[..., None] + eps)
    return out.astype(value.dtype)

"""Normalization layers as pure functions: layer norm, RMS norm, batch norm.

Each normalizes over (layer, RMS) or per (batch) the last axis; ``scale`` and ``bias`` broadcast
on the last axis. Statistics are computed in float32 and the result is returned in the dtype of
``x``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, *, eps: float) -> jax.Array:
    """Layer normalization over the last axis (Ba et al. 2016).

    mu = (1/H) sum_i a_i,   sigma^2 = (1/H) sum_i (a_i - mu)^2
    y  = g * (a - mu) / sqrt(sigma^2 + eps) + b
    """
    a = x.astype(jnp.float32)
    mu = jnp.mean(a, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(a - mu), axis=-1, keepdims=True)
    y = (a - mu) * jax.lax.rsqrt(var + eps) * scale + bias
    return y.astype(x.dtype)


def rms_norm(x: jax.Array, scale: jax.Array, *, eps: float) -> jax.Array:
    """Root-mean-square normalization over the last axis (Zhang & Sennrich 2019).

        RMS(a) = sqrt((1/n) sum_i a_i^2 + eps),   y = g * a / RMS(a)

    No re-centering and no bias.
    """
    a = x.astype(jnp.float32)
    ms = jnp.mean(jnp.square(a), axis=-1, keepdims=True)
    return (a * jax.lax.rsqrt(ms + eps) * scale).astype(x.dtype)


def batch_norm(
    x: jax.Array,
    scale: jax.Array,
    bias: jax.Array,
    mean: jax.Array,
    var: jax.Array,
    *,
    training: bool,
    momentum: float,
    eps: float,
    mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Batch normalization per feature (last axis) (Ioffe & Szegedy 2015, Algorithm 1).

        mu_B = (1/m) sum_i x_i,   sigma_B^2 = (1/m) sum_i (x_i - mu_B)^2
        y_i  = gamma * (x_i - mu_B) / sqrt(sigma_B^2 + eps) + beta

    Training (``training=True``): mu_B and sigma_B^2 (biased, as flax) are taken over every
    axis but the last, counting only positions where ``mask`` (bool, shape ``x.shape[:-1]``) is
    True, so padding never enters the statistics. Returns ``(y, new_mean, new_var)`` with the
    running statistics updated as ``new = momentum * old + (1 - momentum) * batch_stat`` (the
    flax convention; ``momentum`` is the weight of the past). A batch with no valid position
    leaves the running statistics unchanged.

    Eval (``training=False``): normalizes with the running ``mean``/``var`` (Algorithm 2, the
    population statistics) and returns them unchanged, so the output of one example does not
    depend on the rest of its batch, and a batch of one is fine.

    This fixes the three bugs of the numpy ``Batchnorm`` in the study notes:
    ``np.var(..., keepdims=True0)`` is a syntax error; ``momentum`` is used but never defined;
    and the running statistics are updated but never used, so "test time" still normalizes
    with the statistics of the test batch (a single test example normalizes to ``beta``).
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch_norm momentum must be in [0, 1]; got {momentum}")
    a = x.astype(jnp.float32)
    if not training:
        y = (a - mean) * jax.lax.rsqrt(var + eps) * scale + bias
        return y.astype(x.dtype), mean, var
    axes = tuple(range(x.ndim - 1))
    if mask is None:
        weight = jnp.ones(x.shape[:-1] + (1,), jnp.float32)
    else:
        mask = jnp.asarray(mask)
        if mask.shape != x.shape[:-1] or mask.dtype != jnp.bool_:
            raise ValueError(
                f"batch_norm mask must be bool with shape x.shape[:-1] = {x.shape[:-1]};"
                f" got {mask.dtype} {mask.shape}"
            )
        weight = mask[..., None].astype(jnp.float32)
    count = jnp.sum(weight)
    n = jnp.maximum(count, 1.0)
    batch_mean = jnp.sum(a * weight, axis=axes) / n
    batch_var = jnp.sum(jnp.square(a - batch_mean) * weight, axis=axes) / n
    y = (a - batch_mean) * jax.lax.rsqrt(batch_var + eps) * scale + bias
    has_data = count > 0
    new_mean = jnp.where(has_data, momentum * mean + (1.0 - momentum) * batch_mean, mean)
    new_var = jnp.where(has_data, momentum * var + (1.0 - momentum) * batch_var, var)
    return y.astype(x.dtype), new_mean, new_var

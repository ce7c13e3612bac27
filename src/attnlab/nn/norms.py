"""Normalization modules: thin holders of parameters around ``attnlab.ops.norms``.

Every norm is called as ``norm(x, valid=valid, train=train)`` with ``x`` [B, T, d] and
``valid`` [B, T] bool (True at real tokens), so the layers can swap them freely. Only
``BatchNorm`` uses ``valid`` and ``train``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attnlab.choices import check_choice
from attnlab.nn.config import NORMS
from attnlab.ops import norms as ops_norms


class LayerNorm(nnx.Module):
    """Layer normalization (Ba et al. 2016) over the feature axis; calls ``ops.layer_norm``."""

    def __init__(self, dim: int, *, eps: float) -> None:
        self.scale = nnx.Param(jnp.ones((dim,)))
        self.bias = nnx.Param(jnp.zeros((dim,)))
        self.eps = eps

    def __call__(self, x: jax.Array, *, valid: jax.Array | None = None, train: bool = False):
        return ops_norms.layer_norm(x, self.scale[...], self.bias[...], eps=self.eps)


class RMSNorm(nnx.Module):
    """Root-mean-square normalization (Zhang & Sennrich 2019); calls ``ops.rms_norm``."""

    def __init__(self, dim: int, *, eps: float) -> None:
        self.scale = nnx.Param(jnp.ones((dim,)))
        self.eps = eps

    def __call__(self, x: jax.Array, *, valid: jax.Array | None = None, train: bool = False):
        return ops_norms.rms_norm(x, self.scale[...], eps=self.eps)


class BatchNorm(nnx.Module):
    """Batch normalization (Ioffe & Szegedy 2015) over batch and length; calls ``ops.batch_norm``.

    ``scale``/``bias`` are ``nnx.Param``; the running ``mean``/``var`` are ``nnx.BatchStat``.
    With ``train=True`` it normalizes with the statistics of the non-padding positions of the
    batch (``valid``), so padding never contributes, and updates the running statistics in
    place; with ``train=False`` it uses the running statistics. Note that in training the
    statistics mix all positions, so a causal decoder is only causal in eval mode.
    """

    def __init__(self, dim: int, *, eps: float, momentum: float) -> None:
        self.scale = nnx.Param(jnp.ones((dim,)))
        self.bias = nnx.Param(jnp.zeros((dim,)))
        self.mean = nnx.BatchStat(jnp.zeros((dim,)))
        self.var = nnx.BatchStat(jnp.ones((dim,)))
        self.eps = eps
        self.momentum = momentum

    def __call__(self, x: jax.Array, *, valid: jax.Array | None = None, train: bool = False):
        y, new_mean, new_var = ops_norms.batch_norm(
            x,
            self.scale[...],
            self.bias[...],
            self.mean[...],
            self.var[...],
            training=train,
            momentum=self.momentum,
            eps=self.eps,
            mask=valid,
        )
        if train:
            self.mean[...] = new_mean
            self.var[...] = new_var
        return y


class Identity(nnx.Module):
    """``norm = none``: returns its input."""

    def __call__(self, x: jax.Array, *, valid: jax.Array | None = None, train: bool = False):
        return x


def make_norm(kind: str, dim: int, *, eps: float, momentum: float) -> nnx.Module:
    """The norm module named by ``model.norm``."""
    check_choice("model.norm", kind, NORMS)
    if kind == "layer":
        return LayerNorm(dim, eps=eps)
    if kind == "rms":
        return RMSNorm(dim, eps=eps)
    if kind == "batch":
        return BatchNorm(dim, eps=eps, momentum=momentum)
    return Identity()

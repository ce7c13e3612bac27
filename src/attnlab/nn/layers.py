"""Transformer layers: position-wise feed-forward, encoder layer and decoder layer.

Each sub-layer (attention, cross-attention, feed-forward) is wrapped in a residual connection
with dropout and a norm, in one of two places (``model.norm_position``):

- ``post`` (Vaswani et al. 2017):  x <- Norm(x + Dropout(Sublayer(x)))
- ``pre``  (Xiong et al. 2020):    x <- x + Dropout(Sublayer(Norm(x))), and the stack ends in
  one final Norm (see ``stacks.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from attnlab.nn.attention import MultiHeadAttention
from attnlab.nn.conv import ConvMixer
from attnlab.nn.norms import make_norm

Cache = dict[str, dict[str, jax.Array]]


class FeedForward(nnx.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 (Vaswani et al. 2017, eq. 2): ReLU, as in the paper.

    ReLU rather than GELU keeps the model the one the paper describes.
    """

    def __init__(self, d_model: int, d_ff: int, *, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(d_model, d_ff, rngs=rngs)
        self.output = nnx.Linear(d_ff, d_model, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.output(jax.nn.relu(self.hidden(x)))


def make_self_attention(
    cfg: ml_collections.ConfigDict, *, causal: bool, rngs: nnx.Rngs
) -> MultiHeadAttention | ConvMixer:
    """The self-attention sub-layer named by ``model.attention`` (``conv`` gives ConvMixer)."""
    if cfg.attention == "conv":
        return ConvMixer(cfg.d_model, kernel=cfg.conv_kernel, causal=causal, rngs=rngs)
    return MultiHeadAttention(
        cfg.d_model,
        cfg.num_heads,
        attention=cfg.attention,
        position=cfg.position,
        causal=causal,
        local_window=cfg.local_window,
        chunk_size=cfg.chunk_size,
        rngs=rngs,
    )


def make_cross_attention(cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> MultiHeadAttention:
    """Cross-attention: the model's choice, but softmax for ``local`` and ``conv`` models."""
    kind = "softmax" if cfg.attention in ("local", "conv") else cfg.attention
    return MultiHeadAttention(
        cfg.d_model, cfg.num_heads, attention=kind, chunk_size=cfg.chunk_size, rngs=rngs
    )


def _make_norm(cfg: ml_collections.ConfigDict) -> nnx.Module:
    return make_norm(cfg.norm, cfg.d_model, eps=cfg.norm_eps, momentum=cfg.bn_momentum)


class _Residual(nnx.Module):
    """Shared residual/norm wiring of the encoder and decoder layers.

    ``residual_hook``, when set, is applied to the residual stream ``x`` as it enters each
    sub-layer. The model never sets it: the train step does, on CPU, with a speed fix of the
    backward pass that leaves every value unchanged (``attnlab.train.steps.buffer_cotangent``).
    """

    pre: bool
    dropout: nnx.Dropout
    residual_hook: Callable[[jax.Array], jax.Array] | None = None

    def _sublayer(
        self,
        x: jax.Array,
        norm: nnx.Module,
        fn: Callable[[jax.Array], jax.Array],
        *,
        valid: jax.Array,
        train: bool,
    ) -> jax.Array:
        if self.residual_hook is not None:
            x = self.residual_hook(x)
        if self.pre:
            y = fn(norm(x, valid=valid, train=train))
            return x + self.dropout(y, deterministic=not train)
        y = self.dropout(fn(x), deterministic=not train)
        return norm(x + y, valid=valid, train=train)


class EncoderLayer(_Residual):
    """Self-attention (non-causal) then feed-forward."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> None:
        self.pre = cfg.norm_position == "pre"
        self.attn = make_self_attention(cfg, causal=False, rngs=rngs)
        self.attn_norm = _make_norm(cfg)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, rngs=rngs)
        self.ffn_norm = _make_norm(cfg)
        self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs)

    def __call__(self, x: jax.Array, *, valid: jax.Array, train: bool = False) -> jax.Array:
        """``x`` [B, S, d], ``valid`` [B, S] -> [B, S, d]."""
        x = self._sublayer(
            x, self.attn_norm, lambda h: self.attn(h, valid=valid), valid=valid, train=train
        )
        return self._sublayer(x, self.ffn_norm, self.ffn, valid=valid, train=train)


class DecoderLayer(_Residual):
    """Self-attention (causal for AT, not for NAT), cross-attention, then feed-forward."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, causal: bool, rngs: nnx.Rngs) -> None:
        self.pre = cfg.norm_position == "pre"
        self.attn = make_self_attention(cfg, causal=causal, rngs=rngs)
        self.attn_norm = _make_norm(cfg)
        self.cross = make_cross_attention(cfg, rngs=rngs)
        self.cross_norm = _make_norm(cfg)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, rngs=rngs)
        self.ffn_norm = _make_norm(cfg)
        self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        *,
        valid: jax.Array,
        context: jax.Array,
        context_valid: jax.Array,
        train: bool = False,
    ) -> jax.Array:
        """``x`` [B, T, d] attends itself and ``context`` [B, S, d] -> [B, T, d]."""
        kv = self.cross.context_kv(context)
        x = self._sublayer(
            x, self.attn_norm, lambda h: self.attn(h, valid=valid), valid=valid, train=train
        )
        x = self._sublayer(
            x,
            self.cross_norm,
            lambda h: self.cross.cross(h, kv, context_valid),
            valid=valid,
            train=train,
        )
        return self._sublayer(x, self.ffn_norm, self.ffn, valid=valid, train=train)

    def init_cache(self, context: jax.Array, max_len: int) -> Cache:
        """Empty self-attention state and the precomputed cross-attention K/V."""
        return {
            "self": self.attn.init_cache(context.shape[0], max_len, context.dtype),
            "cross": self.cross.context_kv(context),
        }

    def step(
        self, x: jax.Array, cache: Cache, index: jax.Array, context_valid: jax.Array
    ) -> tuple[jax.Array, Cache]:
        """One incremental step (eval mode): ``x`` [B, 1, d] at positions ``index`` [B]."""
        valid = jnp.ones(x.shape[:2], bool)
        if self.pre:
            y, new_self = self.attn.step(self.attn_norm(x, valid=valid), cache["self"], index)
            x = x + y
        else:
            y, new_self = self.attn.step(x, cache["self"], index)
            x = self.attn_norm(x + y, valid=valid)
        x = self._sublayer(
            x,
            self.cross_norm,
            lambda h: self.cross.cross(h, cache["cross"], context_valid),
            valid=valid,
            train=False,
        )
        x = self._sublayer(x, self.ffn_norm, self.ffn, valid=valid, train=False)
        return x, {"self": new_self, "cross": cache["cross"]}

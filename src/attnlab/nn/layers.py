"""The Transformer's layers and stacks, in the order a forward pass meets them.

    tokens -> Embedder (token input + position + dropout)
           -> N x EncoderLayer / DecoderLayer (self-attention, [cross-attention,] feed-forward)
           -> final norm (pre-norm only) -> [output projection: logits]

The attention sub-layers live in ``attention.py``; everything else a stack is made of is here:
the norms, the input embeddings, the feed-forward network, the residual wiring, the layers,
and the ``Encoder`` and ``Decoder`` stacks that ``Seq2Seq``, ``NATSeq2Seq``, ``Tagger`` and
``Classifier`` are built from.

Each sub-layer (attention, cross-attention, feed-forward) is wrapped in a residual connection
with dropout and a norm, in one of two places (``model.norm_position``):

- ``post`` (Vaswani et al. 2017):  x <- Norm(x + Dropout(Sublayer(x)))
- ``pre``  (Xiong et al. 2020):    x <- x + Dropout(Sublayer(Norm(x))), and the stack ends in
  one final Norm.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from attnlab.choices import check_choice
from attnlab.nn.attention import make_cross_attention, make_self_attention
from attnlab.nn.config import INPUTS, NORMS, POSITIONS
from attnlab.ops import norms as ops_norms
from attnlab.ops import positional
from attnlab.specials import PAD

Cache = dict[str, dict[str, jax.Array]]

# -- Norms ------------------------------------------------------------------------------------
# Thin holders of parameters around ``attnlab.ops.norms``. Every norm is called as
# ``norm(x, valid=valid, train=train)`` with ``x`` [B, T, d] and ``valid`` [B, T] bool (True at
# real tokens), so the layers can swap them freely. Only ``BatchNorm`` uses ``valid`` and
# ``train``.


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


# -- Input embeddings --------------------------------------------------------------------------
# Token input (``embedding | one_hot``) plus absolute positions.
#
# - ``embedding``: an ``nnx.Embed`` lookup multiplied by sqrt(d_model), as in Vaswani et al.
#   (2017, section 3.4). The table is initialized with std 1/sqrt(d_model), so the scaled
#   embedding has unit variance per feature, the same scale as the positional signal. The
#   scale is applied only at the input; the tied output projection uses the raw table.
# - ``one_hot``: ``jax.nn.one_hot(tokens, V)`` followed by an ``nnx.Linear(V, d_model)``. It
#   computes the same kind of function as an embedding (a one-hot row selects a kernel row,
#   plus a bias) but is a separate parameter, never tied to an output table. Its kernel is
#   initialized with unit variance so its output has the scale of the scaled embedding.
#
# Positions (``model.position``): ``sinusoidal`` and ``learned`` are added here, at the input;
# ``rotary`` and ``alibi`` act inside attention (see ``attention.py``); ``none`` adds nothing.
# Both added kinds are read from a table of ``max_len`` rows indexed by position, so the
# incremental decoder reads exactly the rows the full pass reads.


class TokenInput(nnx.Module):
    """Token ids [..] -> vectors [.., d_model], by ``embedding`` or ``one_hot`` projection."""

    def __init__(self, vocab_size: int, d_model: int, *, kind: str, rngs: nnx.Rngs) -> None:
        self.kind = check_choice("model.input", kind, INPUTS)
        self.vocab_size = vocab_size
        self.d_model = d_model
        if kind == "embedding":
            self.embed = nnx.Embed(vocab_size, d_model, rngs=rngs)
        else:
            self.project = nnx.Linear(
                vocab_size, d_model, kernel_init=nnx.initializers.normal(1.0), rngs=rngs
            )

    def __call__(self, tokens: jax.Array) -> jax.Array:
        if self.kind == "embedding":
            return self.embed(tokens) * jnp.sqrt(float(self.d_model))
        return self.project(jax.nn.one_hot(tokens, self.vocab_size))

    def attend(self, h: jax.Array) -> jax.Array:
        """Logits ``h @ E^T`` against the embedding table (weight tying, ``embedding`` only)."""
        if self.kind != "embedding":
            raise ValueError("weight tying needs model.input 'embedding'; valid: embedding")
        return self.embed.attend(h)


class PositionInput(nnx.Module):
    """Adds the absolute position signal (``sinusoidal`` or ``learned``) to the input."""

    def __init__(self, kind: str, max_len: int, d_model: int, *, rngs: nnx.Rngs) -> None:
        self.kind = check_choice("model.position", kind, POSITIONS)
        self.max_len = max_len
        self.d_model = d_model
        if kind == "learned":
            self.table = nnx.Embed(
                max_len, d_model, embedding_init=nnx.initializers.normal(1.0), rngs=rngs
            )

    def __call__(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        """``x`` [B, T, d] plus the signal at ``positions`` ([T] or [B, T] int)."""
        if self.kind == "sinusoidal":
            return x + positional.sinusoidal(self.max_len, self.d_model)[positions]
        if self.kind == "learned":
            return x + self.table(positions)
        return x


class Embedder(nnx.Module):
    """Token input + absolute position + dropout: the first block of an encoder or decoder."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        *,
        input_kind: str,
        position: str,
        max_len: int,
        dropout: float,
        rngs: nnx.Rngs,
    ) -> None:
        self.tokens = TokenInput(vocab_size, d_model, kind=input_kind, rngs=rngs)
        self.positions = PositionInput(position, max_len, d_model, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.max_len = max_len

    def __call__(self, tokens: jax.Array, *, train: bool = False) -> jax.Array:
        """Embeds ``tokens`` [B, T] at positions 0..T-1."""
        return self.embed_tokens(self.tokens(tokens), train=train)

    def embed_tokens(
        self, h: jax.Array, *, positions: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        """Adds positions (default 0..T-1) and dropout to token vectors ``h`` [B, T, d]."""
        if positions is None:
            if h.shape[1] > self.max_len:
                raise ValueError(f"sequence length {h.shape[1]} exceeds max_len {self.max_len}")
            positions = jnp.arange(h.shape[1])
        return self.dropout(self.positions(h, positions), deterministic=not train)


# -- Layers -----------------------------------------------------------------------------------


class FeedForward(nnx.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 (Vaswani et al. 2017, eq. 2): ReLU, as in the paper.

    ReLU rather than GELU keeps the model the one the paper describes.
    """

    def __init__(self, d_model: int, d_ff: int, *, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(d_model, d_ff, rngs=rngs)
        self.output = nnx.Linear(d_ff, d_model, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.output(jax.nn.relu(self.hidden(x)))


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


# -- Stacks -----------------------------------------------------------------------------------


def masked_mean(x: jax.Array, valid: jax.Array) -> jax.Array:
    """Mean of ``x`` [B, T, d] over the positions where ``valid`` [B, T] is True -> [B, d]."""
    weights = valid.astype(x.dtype)[..., None]
    return (x * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1.0)


def _embedder(cfg: ml_collections.ConfigDict, vocab_size: int, rngs: nnx.Rngs) -> Embedder:
    return Embedder(
        vocab_size,
        cfg.d_model,
        input_kind=cfg.input,
        position=cfg.position,
        max_len=cfg.max_len,
        dropout=cfg.dropout,
        rngs=rngs,
    )


def _final_norm(cfg: ml_collections.ConfigDict) -> nnx.Module:
    return _make_norm(cfg) if cfg.norm_position == "pre" else Identity()


class Encoder(nnx.Module):
    """Token ids [B, S] -> states [B, S, d]. PAD positions are masked out as keys."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> None:
        self.embedder = _embedder(cfg, cfg.vocab_size, rngs)
        self.layers = nnx.List(
            [EncoderLayer(cfg, rngs=rngs) for _ in range(cfg.num_encoder_layers)]
        )
        self.final_norm = _final_norm(cfg)

    def __call__(self, tokens: jax.Array, *, train: bool = False) -> jax.Array:
        valid = tokens != PAD
        x = self.embedder(tokens, train=train)
        for layer in self.layers:
            x = layer(x, valid=valid, train=train)
        return self.final_norm(x, valid=valid, train=train)


class Decoder(nnx.Module):
    """Target tokens [B, T] and encoder states -> logits [B, T, V].

    The output projection is the transposed input embedding when ``tie_embeddings`` and
    ``input = embedding``; otherwise a separate ``nnx.Linear``.
    """

    def __init__(self, cfg: ml_collections.ConfigDict, *, causal: bool, rngs: nnx.Rngs) -> None:
        self.embedder = _embedder(cfg, cfg.target_vocab_size, rngs)
        self.layers = nnx.List(
            [DecoderLayer(cfg, causal=causal, rngs=rngs) for _ in range(cfg.num_decoder_layers)]
        )
        self.final_norm = _final_norm(cfg)
        self.tied = bool(cfg.tie_embeddings) and cfg.input == "embedding"
        if not self.tied:
            self.logits = nnx.Linear(cfg.d_model, cfg.target_vocab_size, rngs=rngs)

    def states(
        self,
        tokens: jax.Array,
        *,
        context: jax.Array,
        context_valid: jax.Array,
        token_vectors: jax.Array | None = None,
        train: bool = False,
    ) -> jax.Array:
        """Full pass up to the final norm: states [B, T, d] (``__call__`` projects them)."""
        valid = tokens != PAD
        if token_vectors is None:
            token_vectors = self.embedder.tokens(tokens)
        x = self.embedder.embed_tokens(token_vectors, train=train)
        for layer in self.layers:
            x = layer(x, valid=valid, context=context, context_valid=context_valid, train=train)
        return self.final_norm(x, valid=valid, train=train)

    def project(self, states: jax.Array) -> jax.Array:
        """Output logits [B, T, V] of decoder ``states`` (tied: ``states @ E^T``)."""
        return self.embedder.tokens.attend(states) if self.tied else self.logits(states)

    def __call__(
        self,
        tokens: jax.Array,
        *,
        context: jax.Array,
        context_valid: jax.Array,
        token_vectors: jax.Array | None = None,
        train: bool = False,
    ) -> jax.Array:
        """Full pass. ``token_vectors`` [B, T, d], if given, replace the token lookup."""
        return self.project(
            self.states(
                tokens,
                context=context,
                context_valid=context_valid,
                token_vectors=token_vectors,
                train=train,
            )
        )

    def init_cache(self, context: jax.Array, max_len: int) -> list:
        """Per-layer incremental state (see ``DecoderLayer.init_cache``)."""
        return [layer.init_cache(context, max_len) for layer in self.layers]

    def step(
        self, tokens: jax.Array, layers: list, index: jax.Array, context_valid: jax.Array
    ) -> tuple[jax.Array, list]:
        """One new token per row: ``tokens`` [B] at positions ``index`` [B] -> logits [B, V]."""
        h = self.embedder.tokens(tokens[:, None])
        x = self.embedder.embed_tokens(h, positions=index[:, None])
        new_layers = []
        for layer, cache in zip(self.layers, layers):
            x, cache = layer.step(x, cache, index, context_valid)
            new_layers.append(cache)
        valid = jnp.ones(x.shape[:2], bool)
        return self.project(self.final_norm(x, valid=valid))[:, 0], new_layers

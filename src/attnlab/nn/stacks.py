"""Encoder and decoder stacks: embedder, N layers, final norm (pre-norm only), output head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from attnlab.nn.embed import Embedder
from attnlab.nn.layers import DecoderLayer, EncoderLayer
from attnlab.nn.norms import Identity, make_norm
from attnlab.specials import PAD


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
    if cfg.norm_position == "pre":
        return make_norm(cfg.norm, cfg.d_model, eps=cfg.norm_eps, momentum=cfg.bn_momentum)
    return Identity()


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

    def _project(self, x: jax.Array) -> jax.Array:
        return self.embedder.tokens.attend(x) if self.tied else self.logits(x)

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
        """Output logits [B, T, V] of decoder ``states``."""
        return self._project(states)

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
        return self._project(
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
        return self._project(self.final_norm(x, valid=valid))[:, 0], new_layers

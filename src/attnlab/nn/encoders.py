"""Encoder-only models: ``Tagger`` (a label per token) and ``Classifier`` (one per sequence)."""

from __future__ import annotations

import jax
import ml_collections
from flax import nnx

from attnlab.nn.config import check_model
from attnlab.nn.layers import Encoder, masked_mean
from attnlab.specials import PAD


class Tagger(nnx.Module):
    """Encoder + a linear label head at every position: [B, S] -> [B, S, num_classes]."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> None:
        check_model(cfg)
        self.encoder = Encoder(cfg, rngs=rngs)
        self.head = nnx.Linear(cfg.d_model, cfg.num_classes, rngs=rngs)

    def __call__(self, tokens: jax.Array, *, train: bool = False) -> jax.Array:
        return self.head(self.encoder(tokens, train=train))


class Classifier(nnx.Module):
    """Encoder, mean pooling over non-pad positions, linear head: [B, S] -> [B, num_classes]."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> None:
        check_model(cfg)
        self.encoder = Encoder(cfg, rngs=rngs)
        self.head = nnx.Linear(cfg.d_model, cfg.num_classes, rngs=rngs)

    def __call__(self, tokens: jax.Array, *, train: bool = False) -> jax.Array:
        enc = self.encoder(tokens, train=train)
        return self.head(masked_mean(enc, tokens != PAD))

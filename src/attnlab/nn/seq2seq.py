"""``Seq2Seq``: encoder + causal decoder, the autoregressive (AT) Transformer.

The forward pass reads in three files: this one, ``layers.py`` (``Encoder`` and ``Decoder``:
embeddings, the layers, the final norm and the output projection) and ``attention.py``
(``MultiHeadAttention``), which call the pure functions of ``attnlab.ops``::

    logits = Decoder(tgt_in, context=Encoder(src), context_valid=src != PAD)

Training is teacher-forced: ``model(src, tgt_in)`` with ``tgt_in = [BOS] + targets[:-1]``.
Decoding is incremental: ``init_cache`` runs the encoder once, precomputes every layer's
cross-attention keys and values, and allocates the self-attention state; ``decode_step``
then embeds exactly one new token per row at position ``cache["index"]`` and returns its
logits, so a loop of steps gives the same logits as the full causal pass.

The cache is a dict pytree whose every leaf has a leading batch axis, so a model-agnostic
beam search can expand it to batch*beam and gather it by parent beam::

    {"enc": [B, S, d], "src": [B, S], "index": [B] int32,
     "layers": [{"self": {...}, "cross": {"k", "v": [B, S, H, Dh]}}, ...]}

``self`` holds K/V buffers ``[B, max_len, H, Dh]`` (every attention choice but conv) or a
rolling input buffer ``[B, conv_kernel - 1, d]`` (conv).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from attnlab.nn.config import check_model
from attnlab.nn.layers import Decoder, Encoder
from attnlab.specials import PAD


class Seq2Seq(nnx.Module):
    """Encoder-decoder Transformer with a causal decoder and a KV cache."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> None:
        check_model(cfg)
        self.max_len = cfg.max_len
        self.encoder = Encoder(cfg, rngs=rngs)
        self.decoder = Decoder(cfg, causal=True, rngs=rngs)

    def encode(self, src: jax.Array, *, train: bool = False) -> jax.Array:
        """``src`` [B, S] int32 -> encoder states [B, S, d]."""
        return self.encoder(src, train=train)

    def decode(
        self, tgt_in: jax.Array, enc: jax.Array, src: jax.Array, *, train: bool = False
    ) -> jax.Array:
        """Causal decoder: ``tgt_in`` [B, T] -> logits [B, T, V]; ``src`` gives the mask."""
        return self.decoder(tgt_in, context=enc, context_valid=src != PAD, train=train)

    def __call__(self, src: jax.Array, tgt_in: jax.Array, *, train: bool = False) -> jax.Array:
        return self.decode(tgt_in, self.encode(src, train=train), src, train=train)

    def init_cache(self, src: jax.Array, max_len: int) -> dict[str, Any]:
        """Encode ``src`` and return the empty decoding state for up to ``max_len`` steps.

        ``max_len`` may not exceed the config's ``max_len`` (the position tables' size).
        """
        if max_len > self.max_len:
            raise ValueError(f"cache max_len {max_len} exceeds model max_len {self.max_len}")
        enc = self.encode(src)
        return {
            "enc": enc,
            "src": src,
            "index": jnp.zeros((src.shape[0],), jnp.int32),
            "layers": self.decoder.init_cache(enc, max_len),
        }

    def decode_step(
        self, tokens: jax.Array, cache: dict[str, Any]
    ) -> tuple[jax.Array, dict[str, Any]]:
        """Feed one token per row, ``tokens`` [B], -> (logits [B, V], advanced cache)."""
        logits, layers = self.decoder.step(
            tokens, cache["layers"], cache["index"], cache["src"] != PAD
        )
        return logits, {**cache, "layers": layers, "index": cache["index"] + 1}

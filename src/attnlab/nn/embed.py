"""Input embeddings: token input (``embedding | one_hot``) plus absolute positions.

- ``embedding``: an ``nnx.Embed`` lookup multiplied by sqrt(d_model), as in Vaswani et al.
  (2017, section 3.4). The table is initialized with std 1/sqrt(d_model), so the scaled
  embedding has unit variance per feature, the same scale as the positional signal. The
  scale is applied only at the input; the tied output projection uses the raw table.
- ``one_hot``: ``jax.nn.one_hot(tokens, V)`` followed by an ``nnx.Linear(V, d_model)``. It
  computes the same kind of function as an embedding (a one-hot row selects a kernel row,
  plus a bias) but is a separate parameter, never tied to an output table. Its kernel is
  initialized with unit variance so its output has the scale of the scaled embedding.

Positions (``model.position``): ``sinusoidal`` and ``learned`` are added here, at the input;
``rotary`` and ``alibi`` act inside attention (see ``attention.py``); ``none`` adds nothing.
Both added kinds are read from a table of ``max_len`` rows indexed by position, so the
incremental decoder reads exactly the rows the full pass reads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attnlab.choices import check_choice
from attnlab.nn.config import INPUTS, POSITIONS
from attnlab.ops import positional


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

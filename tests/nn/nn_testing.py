"""Shared helpers for the nn/ tests: a tiny config, random token batches, a model factory."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from attnlab.nn import model_config
from attnlab.train.models import build_model

VOCAB = 12
MAX_LEN = 12


def tiny_config(**overrides):
    """A model small enough to compile in a fraction of a second."""
    base = dict(
        vocab_size=VOCAB,
        target_vocab_size=VOCAB,
        num_classes=3,
        d_model=16,
        num_heads=2,
        d_ff=32,
        num_encoder_layers=1,
        num_decoder_layers=1,
        dropout=0.0,
        max_len=MAX_LEN,
        conv_kernel=3,
        local_window=2,
        chunk_size=4,
    )
    base.update(overrides)
    return model_config(**base)


def tiny_model(seed: int = 0, **overrides):
    return build_model(tiny_config(**overrides), rngs=nnx.Rngs(seed))


def tokens(seed: int, lengths, width: int) -> np.ndarray:
    """Right-padded int32 tokens [len(lengths), width] with ids in 5..VOCAB-1 (no specials)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(lengths), width), np.int32)
    for row, n in enumerate(lengths):
        out[row, :n] = rng.integers(5, VOCAB, size=n)
    return out


def assert_close(a, b, atol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=1e-5)


def leaves_differ(a, b) -> bool:
    return any(
        not np.allclose(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )

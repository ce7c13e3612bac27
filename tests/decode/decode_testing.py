"""Shared helpers of the decode tests: a tiny AT or NAT model and random padded sources."""

from __future__ import annotations

import numpy as np
from flax import nnx

from attnlab.nn import model_config
from attnlab.train.models import build_model

VOCAB = 12


def tiny_model(name: str = "seq2seq", seed: int = 0, *, max_len: int, **overrides):
    """A 1+2-layer, d_model 16 ``seq2seq`` or ``nat`` model (the NAT copies the source)."""
    cfg = dict(
        name=name,
        vocab_size=VOCAB,
        target_vocab_size=VOCAB,
        d_model=16,
        num_heads=2,
        d_ff=32,
        num_encoder_layers=1,
        num_decoder_layers=2,
        dropout=0.0,
        max_len=max_len,
    )
    if name == "nat":
        cfg.update(length_mode="offset", decoder_input="copy_source")
    cfg.update(overrides)
    return build_model(model_config(**cfg), rngs=nnx.Rngs(seed))


def random_sources(seed: int, lengths, width: int) -> np.ndarray:
    """``[len(lengths), width]`` int32: random non-special tokens, right-padded with PAD."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(lengths), width), np.int32)
    for row, n in enumerate(lengths):
        out[row, :n] = rng.integers(5, VOCAB, size=n)
    return out

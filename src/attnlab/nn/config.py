"""Model configuration: every model key with its default, the valid string choices, the check.

A model is described by a flat ``ml_collections.ConfigDict`` (see ``model_config``). Its
string options are declared in ``CHOICES``; ``check_model`` makes every check of the section
(``attnlab.choices`` words the choices): a bad value is a one-line ``ValueError`` naming the
key, the value and the valid values. Each model checks its config when it is built; a NAT's
recipe checks the options that depend on it (``attnlab.nat.check_options``).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from attnlab.choices import check_choices
from attnlab.ops.attention import SCORE_FUNCTIONS

MODEL_NAMES = ("seq2seq", "nat", "tagger", "classifier")
# The score functions (softmax, relu, ...) that ``ops.dot_product_attention`` computes via its
# ``scores`` argument, then the attention kinds with their own ops.
ATTENTIONS = (*SCORE_FUNCTIONS, "linear", "chunked", "local", "conv")
NORMS = ("layer", "batch", "rms", "none")
NORM_POSITIONS = ("pre", "post")
POSITIONS = ("none", "sinusoidal", "learned", "rotary", "alibi")
INPUTS = ("embedding", "one_hot")
LENGTH_MODES = ("absolute", "offset", "none")
DECODER_INPUTS = ("mask", "copy_source")
POOLINGS = ("mean",)

CHOICES = {
    "name": MODEL_NAMES,
    "attention": ATTENTIONS,
    "norm": NORMS,
    "norm_position": NORM_POSITIONS,
    "position": POSITIONS,
    "input": INPUTS,
    "length_mode": LENGTH_MODES,
    "decoder_input": DECODER_INPUTS,
    "pooling": POOLINGS,
}


def model_config(**overrides: Any) -> ml_collections.ConfigDict:
    """Every model key with its default (docs/INTERFACES.md), updated with ``overrides``."""
    cfg = ml_collections.ConfigDict(
        {
            "name": "seq2seq",
            "vocab_size": 32,
            "target_vocab_size": 32,
            "num_classes": 2,
            "d_model": 64,
            "num_heads": 4,
            "d_ff": 256,
            "num_encoder_layers": 2,
            "num_decoder_layers": 2,
            "dropout": 0.1,
            "attention_dropout": 0.0,
            "attention": "softmax",
            "norm": "layer",
            "norm_position": "pre",
            "position": "sinusoidal",
            "input": "embedding",
            "max_len": 64,
            "conv_kernel": 3,
            "local_window": 8,
            "chunk_size": 32,
            "norm_eps": 1e-6,
            "bn_momentum": 0.99,
            "tie_embeddings": True,
            # NAT: the recipe (a name of attnlab.nat.RECIPES, which checks it), its length
            # head's mode, what a masked decoder position reads, and the canvas factor of ctc
            # (k) and dag (lambda); upsample 0 = the recipe's default.
            "nat_recipe": "vanilla",
            "length_mode": "absolute",
            "decoder_input": "mask",
            "upsample": 0,
            # NAT: add learned marks of each canvas position's place among the positions that
            # read the same source position (its rank from the start and from the end of that
            # run), so that the decoder knows which copy it is (attnlab.nat.model, "Copy marks").
            "mark_copies": False,
            "pooling": "mean",
        }
    )
    unknown = sorted(set(overrides) - set(cfg.keys()))
    if unknown:
        raise ValueError(f"unknown model config keys {unknown}; valid: {', '.join(cfg.keys())}")
    cfg.update(overrides)
    return cfg


def check_model(cfg: ml_collections.ConfigDict) -> None:
    """Check the sizes of ``cfg``, the combinations that cannot work, and every string choice.

    - ``linear`` attention has no score matrix, so it cannot take the ALiBi bias.
    - ``conv`` replaces query/key attention, so ``rotary`` and ``alibi`` (which act on
      queries and keys) have nothing to act on; use ``none``, ``sinusoidal`` or ``learned``.
    - ``attention_dropout`` would need the attention weights, which ops/ does not expose.
    """
    for key in ("d_model", "num_heads", "d_ff", "max_len", "vocab_size", "target_vocab_size"):
        if not 1 <= int(cfg[key]) <= 2**20:
            raise ValueError(f"model.{key} must be in [1, {2**20}], got {cfg[key]}")
    for key in ("num_encoder_layers", "num_decoder_layers"):
        if not 0 <= int(cfg[key]) <= 1000:
            raise ValueError(f"model.{key} must be in [0, 1000], got {cfg[key]}")
    if not 0.0 <= float(cfg.dropout) < 1.0:
        raise ValueError(f"model.dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.d_model % cfg.num_heads:
        raise ValueError(f"d_model {cfg.d_model} is not divisible by num_heads {cfg.num_heads}")
    check_position_fits(cfg.attention, cfg.position)
    if cfg.attention_dropout:
        raise ValueError(
            f"model.attention_dropout {cfg.attention_dropout} is not supported "
            "(ops/ attention does not expose its weights); valid: 0.0"
        )
    if cfg.conv_kernel < 1 or cfg.local_window < 1 or cfg.chunk_size < 1:
        raise ValueError("conv_kernel, local_window and chunk_size must be >= 1")
    check_choices(cfg, CHOICES, prefix="model.")


def check_position_fits(attention: str, position: str) -> None:
    """Refuse a position signal that the attention choice has nothing to apply to."""
    if attention == "linear" and position == "alibi":
        raise ValueError(
            "model.position 'alibi' needs a score matrix; linear attention has none "
            "(valid with linear: none, sinusoidal, learned, rotary)"
        )
    if attention == "conv" and position in ("rotary", "alibi"):
        raise ValueError(
            f"model.position {position!r} acts on queries and keys; conv has none "
            "(valid with conv: none, sinusoidal, learned)"
        )

"""The ``eos_canvas`` NAT recipe: a fixed canvas of the maximum target length, cut after EOS.

No length head. The canvas is ``model.max_len`` MASK tokens for every row, whatever the
batch's padding; ``fit_to_data`` sets ``max_len`` to the data's length bound (the larger
of its source and target length limits, ``DatasetInfo.max_len`` and ``max_target_len``, a
target counting its EOS), so training and decoding see the same canvas width and the same
decoder inputs. The target is the tokens, EOS, then PAD to the end of the canvas, trained by
``vanilla``'s cross-entropy at every canvas position (PAD included). There is no paper of its
own: it is the length-free baseline of docs/nat_recipes.md.

Decoding, ``eos_cut``: decode the model's canvas (a ``max_len`` argument does not change it),
take the most probable token at every position (anything but PAD, BOS and MASK, so there is
no PAD hole before the EOS) and cut after the first EOS (PAD after it). Without an EOS the
whole canvas is kept. The score is the mean log-prob of the kept tokens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnlab.decode.search import forbid_ids
from attnlab.nat.base import Candidates, Recipe, one_candidate
from attnlab.nat.vanilla import Vanilla
from attnlab.specials import BOS, EOS, MASK, PAD

_CANVAS_FORBIDDEN = (PAD, BOS, MASK)


def canvas_targets(targets: jax.Array, width: int) -> jax.Array:
    """The tokens, EOS, then PAD out to the fixed canvas ``width``."""
    if targets.shape[1] > width:
        raise ValueError(f"targets of width {targets.shape[1]} exceed the canvas {width}")
    return jnp.pad(targets, ((0, 0), (0, width - targets.shape[1])), constant_values=PAD)


class EosCanvas(Vanilla):
    name = "eos_canvas"
    length_modes = ("none",)
    glancing = False
    fixed_canvas = True
    strategies = ("eos_cut",)
    default_strategy = "eos_cut"

    def canvas(self, model, src):
        return jnp.full((src.shape[0], model.max_len), MASK, jnp.int32)

    def targets(self, model, targets):
        return canvas_targets(targets, model.max_len)

    def decoder_tokens(self, targets, key, *, train):
        """MASK at every canvas position, and the loss there (PAD is a target too)."""
        return jnp.full(targets.shape, MASK, jnp.int32), jnp.ones_like(targets, bool)

    def check_decode(self, strategy, canvas, rescored):
        Recipe.check_decode(self, strategy, canvas, rescored)  # not the length strategies'

    def candidates(self, model, src, ref_lengths, strategy, *, canvas, trim) -> Candidates:
        width = model.max_len
        enc = model.encode(src)
        dec = self.canvas(model, src)
        logp = jax.nn.log_softmax(model.decode(dec, enc, src).astype(jnp.float32), axis=-1)
        tokens = jnp.argmax(forbid_ids(logp, _CANVAS_FORBIDDEN), axis=-1).astype(jnp.int32)
        is_eos = tokens == EOS
        lengths = jnp.where(jnp.any(is_eos, axis=1), jnp.argmax(is_eos, axis=1) + 1, width)
        keep = jnp.arange(width)[None, :] < lengths[:, None]
        token_logp = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
        tokens = jnp.where(keep, tokens, PAD)
        scores = jnp.sum(jnp.where(keep, token_logp, 0.0), axis=1) / jnp.maximum(lengths, 1)
        return one_candidate(tokens, lengths, scores)


RECIPE = EosCanvas()

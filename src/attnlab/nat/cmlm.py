"""The ``cmlm`` NAT recipe: masked-token training, and mask-predict refinement at decoding.

Ghazvininejad et al. 2019, "Mask-Predict: Parallel Decoding of Conditional Masked Language
Models". As ``vanilla`` (a length head, a canvas of the target's length, the same loss and
length strategies), except:

- Training: each row masks ``k ~ U{1..len}`` of its target positions chosen at random, shows
  the others as decoder input, and trains on the masked ones. No glancing.
- Decoding: ``mask_predict:T``, alone (at the ``length_pred`` length) or after a length
  strategy with ``+``: ``length_beam:5+mask_predict:10``, ``oracle_length+mask_predict:4``.
  Start from all MASK at length ``L``; iteration 0 predicts every position; iteration
  ``t = 1..T-1`` re-masks the ``n = floor(N * (T - t) / T)`` content positions of lowest
  probability (``N = L - 1``; the EOS is fixed) and re-predicts them given the others,
  updating the tokens and probabilities of the re-masked positions only. ``mask_predict:1``
  is one parallel pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnlab.nat.base import Strategy
from attnlab.nat.glancing import random_subset
from attnlab.nat.vanilla import Vanilla, predict
from attnlab.specials import MASK, PAD

_LENGTH_FORMS = ("length_pred", "length_beam:K", "oracle_length")


def mask_predict(model, enc, src, lengths: jax.Array, width: int, iterations: int):
    """(tokens, token log-probs) [N, width] after ``iterations`` passes (see module doc)."""
    pos = jnp.arange(width)[None, :]
    inside = pos < lengths[:, None]
    content = pos < (lengths - 1)[:, None]
    dec = jnp.where(inside, MASK, PAD).astype(jnp.int32)
    tokens, token_logp = predict(model, enc, src, dec, lengths)
    num_content = jnp.maximum(lengths - 1, 0)
    for t in range(1, iterations):
        n = (num_content * (iterations - t)) // iterations  # [N]
        confidence = jnp.where(content, token_logp, jnp.inf)
        rank = jnp.argsort(jnp.argsort(confidence, axis=1, stable=True), axis=1)
        remask = content & (rank < n[:, None])
        new_tokens, new_logp = predict(model, enc, src, jnp.where(remask, MASK, tokens), lengths)
        tokens = jnp.where(remask, new_tokens, tokens)
        token_logp = jnp.where(remask, new_logp, token_logp)
    return tokens, token_logp


class CMLM(Vanilla):
    name = "cmlm"
    glancing = False
    strategies = (*_LENGTH_FORMS, "mask_predict:T", "<length strategy>+mask_predict:T")
    default_strategy = "length_beam:3+mask_predict:4"

    def decoder_tokens(self, targets, key, *, train):
        """In training, MASK at ``k ~ U{1..len}`` random target positions, the loss there."""
        present = targets != PAD
        if not train:
            return jnp.where(present, MASK, PAD).astype(jnp.int32), present
        k_key, order_key = jax.random.split(key)
        lengths = jnp.sum(present, axis=-1)
        k = jnp.floor(jax.random.uniform(k_key, lengths.shape) * lengths).astype(jnp.int32) + 1
        masked = random_subset(present, k, order_key)
        return jnp.where(masked, MASK, targets).astype(jnp.int32), masked

    def parse_strategy(self, strategy: str) -> Strategy:
        """A length strategy, ``mask_predict:T``, or ``<length strategy>+mask_predict:T``."""
        parts = str(strategy).split("+")
        refine = parts[-1].startswith("mask_predict")
        if len(parts) > 2 or (len(parts) == 2 and not refine):
            raise self.refuse(strategy)
        length = Strategy("length_pred")
        if len(parts) == 2 or not refine:
            try:
                length = Vanilla.parse_strategy(self, parts[0])
            except ValueError:
                raise self.refuse(strategy) from None
        if not refine:
            return length
        prefix, _, number = parts[-1].partition(":")
        if prefix != "mask_predict" or not number.isdigit() or int(number) < 1 or number[0] == "0":
            raise self.refuse(strategy)
        return length._replace(iterations=int(number))

    def fill(self, model, enc, src, lengths, width, strategy):
        return mask_predict(model, enc, src, lengths, width, strategy.iterations)


RECIPE = CMLM()

"""The ``vanilla`` NAT recipe: a length head, then every target position predicted at once.

Gu et al. 2018, "Non-Autoregressive Neural Machine Translation". The canvas has the target's
length ``L`` (counting its EOS): ``L`` MASK tokens (or, with ``decoder_input = copy_source``,
the source embeddings copied onto them), then PAD. Training reads the reference length;
decoding reads the length head's (``NATSeq2Seq.length_log_probs``, ``length_mode`` absolute or
offset). Glancing training applies (``attnlab.nat.glancing``). ``cmlm`` and ``eos_canvas``
build on this module.

Loss. Label-smoothed cross-entropy over the target positions (per token), plus the length
head's unsmoothed cross-entropy over length classes (per sentence, ``length_loss`` weighted by
``length_loss_weight``, fairseq's 0.1). With a glancing ``ratio``, a first pass (no gradient)
guesses every target position; the revealed positions get their gold token as decoder input
and leave the loss.

Decoding. Positions ``0..L-2`` take the most probable token that can be a content token
(never PAD, BOS, EOS or MASK); position ``L-1`` is EOS; a row's score is the mean log-prob of
its ``L`` tokens.

- ``length_pred``: ``L`` = the most probable length under the length head.
- ``length_beam:K``: the ``K`` most probable lengths, decoded in parallel as ``K * B`` rows;
  the candidate with the best mean log-prob is kept, or, given a ``rescorer``, the best by the
  rescorer (for an AT model: its teacher-forced log-prob, Gu et al. 2018's noisy parallel
  decoding). ``length_beam:1`` is ``length_pred``.
- ``oracle_length``: ``L`` = the reference length (counting the EOS): an upper bound that
  removes length prediction errors.

``decode_at_lengths`` decodes at lengths its caller gives (``attnlab.analysis`` times a fresh
model at recorded lengths with it). The decoder runs at the smallest width of
``compiled.widths(max_len)`` (8, 16, 32, ...) that holds every chosen length, picked inside the
call by ``lax.switch``: positions past a row's length are PAD, which the decoder masks, so the
width changes the cost, not the output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnlab.decode.compiled import jit_model, trim_source, widths
from attnlab.decode.search import forbid_ids
from attnlab.nat.base import Candidates, Recipe, Stats, Strategy
from attnlab.nat.glancing import glance
from attnlab.ops.losses import smoothed_cross_entropy, token_stats
from attnlab.specials import BOS, EOS, MASK, PAD

CONTENT_FORBIDDEN = (PAD, BOS, EOS, MASK)


def length_stats(model: Any, enc: jax.Array, src: jax.Array, targets: jax.Array, valid) -> Stats:
    """``length_loss`` and ``length_accuracy`` of the length head, per sentence."""
    length_target = model.length_classes(
        jnp.sum(targets != PAD, axis=-1), jnp.sum(src != PAD, axis=-1)
    )
    length_logits = model.length_logits(enc, src)
    l_loss, _, l_correct = smoothed_cross_entropy(length_logits, length_target, valid, 0.0)
    rows = jnp.sum(valid.astype(jnp.float32))
    return {"length_loss": (l_loss, rows), "length_accuracy": (l_correct, rows)}


def predict(model: Any, enc, src, dec_tokens: jax.Array, lengths: jax.Array):
    """One parallel pass: (tokens [N, T], token log-probs [N, T]) with EOS at ``lengths - 1``."""
    logp = jax.nn.log_softmax(model.decode(dec_tokens, enc, src).astype(jnp.float32), axis=-1)
    pos = jnp.arange(dec_tokens.shape[1])[None, :]
    is_eos = pos == (lengths - 1)[:, None]
    tokens = jnp.where(is_eos, EOS, jnp.argmax(forbid_ids(logp, CONTENT_FORBIDDEN), axis=-1))
    tokens = jnp.where(pos < lengths[:, None], tokens, PAD).astype(jnp.int32)
    token_logp = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
    return tokens, jnp.where(tokens != PAD, token_logp, 0.0)


def top_lengths(model: Any, enc, src, canvas: int, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` most probable lengths in ``1..canvas`` (a length counts the EOS, so >= 1),
    [B, k], most probable first, and which of them are possible at all (log-prob > -inf)."""
    length_logp, idx = jax.lax.top_k(model.length_log_probs(enc, src)[:, 1 : canvas + 1], k)
    return idx + 1, length_logp > -jnp.inf


def at_lengths(
    model: Any, enc, src, lengths: jax.Array, strategy: Strategy, *, canvas: int, trim: bool
) -> Candidates:
    """Decode every row of ``src`` at each of its ``lengths`` [B, k] (``recipe.fill``)."""
    batch, k = lengths.shape
    rows = lengths.reshape(-1)
    enc, src = jnp.repeat(enc, k, axis=0), jnp.repeat(src, k, axis=0)

    def at_width(width: int) -> Callable[[], tuple[jax.Array, jax.Array]]:
        def run() -> tuple[jax.Array, jax.Array]:
            tokens, token_logp = model.recipe.fill(model, enc, src, rows, width, strategy)
            pad = ((0, 0), (0, canvas - width))
            return jnp.pad(tokens, pad, constant_values=PAD), jnp.pad(token_logp, pad)

        return run

    options = widths(canvas) if trim else (canvas,)
    if len(options) == 1:
        tokens, token_logp = at_width(canvas)()
    else:  # the narrowest width that holds every row's length
        branch = jnp.searchsorted(jnp.asarray(options), jnp.max(rows))
        tokens, token_logp = jax.lax.switch(branch, [at_width(w) for w in options])
    scores = jnp.sum(token_logp, axis=1) / jnp.maximum(rows, 1)
    return Candidates(
        tokens.reshape(batch, k, canvas),
        lengths,
        scores.reshape(batch, k),
        jnp.ones(lengths.shape, bool),
    )


class Vanilla(Recipe):
    name = "vanilla"
    length_modes = ("absolute", "offset")
    glancing = True
    strategies = ("length_pred", "length_beam:K", "oracle_length")
    default_strategy = "length_beam:3"

    # -- decoder input and targets -----------------------------------------------------
    def targets(self, model: Any, targets: jax.Array) -> jax.Array:
        """The targets the decoder is trained on: the tokens, EOS, then PAD."""
        return targets

    def decoder_tokens(
        self, targets: jax.Array, key: jax.Array | None, *, train: bool
    ) -> tuple[jax.Array, jax.Array]:
        """(decoder tokens, positions that carry a loss): MASK at every target position."""
        present = targets != PAD
        return jnp.where(present, MASK, PAD).astype(jnp.int32), present

    # -- loss --------------------------------------------------------------------------
    def stats(self, model, enc, src, targets, valid, *, train, key, ratio, smoothing) -> Stats:
        targets = self.targets(model, targets)
        mask_key, glance_key = jax.random.split(key) if key is not None else (None, None)
        dec, loss_mask = self.decoder_tokens(targets, mask_key, train=train)
        stats = {}
        if ratio is not None:
            first = model.decode(dec, jax.lax.stop_gradient(enc), src, train=False)
            guess = jnp.argmax(jax.lax.stop_gradient(first), axis=-1)
            reveal = glance(guess, targets, loss_mask, ratio, glance_key)
            dec = jnp.where(reveal, targets, dec)
            loss_mask = loss_mask & ~reveal
            rows = jnp.sum(valid.astype(jnp.float32))
            stats["glanced"] = (jnp.sum(reveal & valid[:, None]), rows)
        logits = model.decode(dec, enc, src, train=train)
        stats.update(token_stats(logits, targets, loss_mask & valid[:, None], smoothing))
        if self.has_length_head:
            stats.update(length_stats(model, enc, src, targets, valid))
        return stats

    # -- decoding ----------------------------------------------------------------------
    def needs_reference(self, strategy: Strategy) -> bool:
        return strategy.name == "oracle_length"

    def check_decode(self, strategy: Strategy, canvas: int, rescored: bool) -> None:
        if rescored and strategy.name != "length_beam":
            raise ValueError(f"rescorer is only used by length_beam:K, not {strategy.name!r}")
        if strategy.name == "length_beam" and strategy.beam > canvas:
            raise ValueError(
                f"length_beam:{strategy.beam} asks for more lengths than max_len={canvas}"
            )

    def fill(self, model: Any, enc, src, lengths: jax.Array, width: int, strategy: Strategy):
        """(tokens, token log-probs) [N, width] of one pass over ``lengths`` MASK tokens."""
        dec = jnp.where(jnp.arange(width)[None, :] < lengths[:, None], MASK, PAD)
        return predict(model, enc, src, dec.astype(jnp.int32), lengths)

    def candidates(self, model, src, ref_lengths, strategy, *, canvas, trim) -> Candidates:
        enc = model.encode(src)
        if self.needs_reference(strategy):
            lengths, possible = ref_lengths[:, None], jnp.ones((src.shape[0], 1), bool)
        else:
            lengths, possible = top_lengths(model, enc, src, canvas, strategy.beam)
        out = at_lengths(model, enc, src, lengths, strategy, canvas=canvas, trim=trim)
        return out._replace(possible=possible)


RECIPE = Vanilla()


# -- decoding at given lengths (for timing a model at recorded lengths) ------------------
def _given(model, src, lengths, *, canvas: int, trim: bool) -> Candidates:
    one_pass = Strategy("oracle_length")
    return at_lengths(model, model.encode(src), src, lengths, one_pass, canvas=canvas, trim=trim)


def lengths_decoder(
    model: nnx.Module, *, max_len: int | None = None, trim: bool = True
) -> Callable[[Any, Any], Candidates]:
    """``decode(src [B, S], lengths [B, k]) -> Candidates [B, k, ...]``: one parallel pass at
    each given length (counting the EOS) of a NAT whose recipe has a length head, made once
    (``nat_decoder`` without the length head or a strategy)."""
    if not model.recipe.has_length_head:
        raise ValueError(
            f"decoding at given lengths needs a length head; nat_recipe {model.recipe.name!r} "
            "has none"
        )
    canvas = int(max_len if max_len is not None else model.max_len)
    run = jit_model(_given, model, canvas=canvas, trim=bool(trim))

    def decode(src: Any, lengths: Any) -> Candidates:
        src = trim_source(src) if trim else np.asarray(src, np.int32)
        lengths = np.asarray(lengths, np.int32)
        if lengths.ndim != 2 or len(lengths) != len(src) or lengths.min() < 1:
            raise ValueError(f"lengths must be [B, k] and >= 1, got shape {lengths.shape}")
        if lengths.max() > canvas:
            raise ValueError(f"lengths must be <= max_len={canvas} (with the EOS)")
        return run(src, lengths)

    return decode


def decode_at_lengths(
    model: nnx.Module, src: Any, lengths: Any, *, max_len: int | None = None
) -> Candidates:
    """``lengths_decoder(model, max_len=max_len)(src, lengths)``: one call."""
    return lengths_decoder(model, max_len=max_len)(src, lengths)

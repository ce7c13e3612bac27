"""The ``ctc`` NAT recipe: a canvas of k x source length, a blank class, ``optax.ctc_loss``.

Libovický & Helcl 2018, "End-to-End Non-Autoregressive Neural Machine Translation with
Connectionist Temporal Classification"; Saharia et al. 2020, "Non-Autoregressive Machine
Translation with Latent Alignments". The decoder reads ``T = k * source_length`` canvas
positions (``k = model.upsample``, by default 3: docs/nat_recipes.md; MASK or copied source
embeddings) and each emits a token or the blank. No length head. A task config marks the
copies by default (``model.mark_copies``, ``attnlab.nat.model``): without the marks, a canvas
of copied source embeddings could not keep two equal neighbouring tokens apart. The blank is
its own output class, id ``target_vocab_size`` (one row added to the decoder's vocabulary),
so it never collides with PAD, EOS or a real token; decoders drop it.

The CTC label sequence is the target without its EOS: the output's end is where the
alignment puts it, and decoders append the EOS. The loss per example is ``optax.ctc_loss``
(``-log sum_{collapse(pi) = y} P(pi)``), summed over the batch and divided by the number of
target tokens. A target that cannot fit its canvas (more tokens plus adjacent repeats than
positions, ``attnlab.ops.ctc.ctc_impossible``) gets a huge finite loss from optax; such rows
are left out of the loss and counted in the ``ctc_impossible`` statistic, whose value is the
count (its stat count is 0, so its mean is its sum).

Glancing (Gu & Kong 2021): the first pass's references are the labels of the best alignment
of the target (``ops.ctc.ctc_best_alignment``, blanks included); the guess at each canvas
position is compared with that label, and revealed positions get the label (token or blank)
as decoder input. The loss stays the CTC loss over the whole canvas.

Decoding (PAD, BOS, MASK and EOS are never emitted: the labels never hold EOS; the EOS is
appended after the output):

- ``ctc``: the argmax label of each position, repeats merged, blanks dropped
  (``ops.ctc.ctc_greedy``); score = the log-prob of that frame labelling.
- ``ctc_beam:K``: CTC prefix beam search with ``K`` prefixes (``ops.ctc.ctc_prefix_beam_search``),
  each scored by its log-prob summed over alignments; the best is kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from attnlab.decode.search import forbid_ids
from attnlab.nat.base import Candidates, Recipe, Stats, end_with_eos, source_canvas
from attnlab.nat.glancing import glance
from attnlab.ops.ctc import ctc_best_alignment, ctc_greedy, ctc_impossible, ctc_prefix_beam_search
from attnlab.specials import BOS, EOS, MASK, PAD


def blank_id(model) -> int:
    """The blank's id: the first output class after the target vocabulary."""
    return model.target_vocab_size


def ctc_labels(targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(labels [B, M] = the targets with EOS turned to PAD, label lengths [B])."""
    labels = jnp.where(targets == EOS, PAD, targets).astype(jnp.int32)
    return labels, jnp.sum(labels != PAD, axis=-1).astype(jnp.int32)


class CTC(Recipe):
    name = "ctc"
    default_upsample = 3
    glancing = True
    marks_copies = True
    extra_classes = 1  # the blank
    strategies = ("ctc", "ctc_beam:K")
    default_strategy = "ctc"

    def canvas(self, model, src):
        return source_canvas(src, model.upsample)

    def stats(self, model, enc, src, targets, valid, *, train, key, ratio, smoothing) -> Stats:
        """``loss`` = ``nll`` (per target token), ``accuracy`` (rows whose greedy decoding is
        the target), ``ctc_impossible`` (a count) and, with glancing, ``glanced`` (per row)."""
        blank = blank_id(model)
        labels, label_lengths = ctc_labels(targets)
        dec = self.canvas(model, src)
        frames = jnp.sum(dec != PAD, axis=-1)
        impossible = ctc_impossible(frames, labels, label_lengths)
        rows = jnp.sum(valid.astype(jnp.float32))
        stats = {}
        if ratio is not None:
            first = model.decode(dec, jax.lax.stop_gradient(enc), src, train=False)
            logp = jax.nn.log_softmax(jax.lax.stop_gradient(first).astype(jnp.float32), axis=-1)
            refs, _ = ctc_best_alignment(logp, frames, labels, label_lengths, blank)
            candidates = (dec != PAD) & ~impossible[:, None] & valid[:, None]
            reveal = glance(jnp.argmax(logp, axis=-1), refs, candidates, ratio, key)
            dec = jnp.where(reveal, refs, dec)
            stats["glanced"] = (jnp.sum(reveal), rows)
        logits = model.decode(dec, enc, src, train=train).astype(jnp.float32)
        per_row = optax.ctc_loss(
            logits,
            (dec == PAD).astype(jnp.float32),
            labels,
            (labels == PAD).astype(jnp.float32),
            blank_id=blank,
        )
        used = valid & ~impossible
        tokens = jnp.sum(jnp.where(used, label_lengths, 0).astype(jnp.float32))
        total = jnp.sum(jnp.where(used, per_row, 0.0))
        out, out_lengths = ctc_greedy(logits, frames, blank)
        width = min(out.shape[1], labels.shape[1])
        same = (out_lengths == label_lengths) & jnp.all(
            out[:, :width] == labels[:, :width], axis=-1
        )
        stats.update(
            {
                "loss": (total, tokens),
                "nll": (total, tokens),
                "accuracy": (jnp.sum(same & valid), rows),
                "ctc_impossible": (
                    jnp.sum(impossible & valid).astype(jnp.float32),
                    jnp.float32(0),
                ),
            }
        )
        return stats

    def candidates(self, model, src, ref_lengths, strategy, *, canvas, trim) -> Candidates:
        """tokens [B, K, W + 1], lengths [B, K] (with EOS), scores [B, K]; K = 1 for ``ctc``."""
        blank = blank_id(model)
        dec = self.canvas(model, src)
        frames = jnp.sum(dec != PAD, axis=-1)
        logits = model.decode(dec, model.encode(src), src).astype(jnp.float32)
        logp = forbid_ids(jax.nn.log_softmax(logits, axis=-1), (PAD, BOS, EOS, MASK))
        if strategy.name == "ctc":
            tokens, lengths = ctc_greedy(logp, frames, blank)
            inside = jnp.arange(dec.shape[1])[None, :] < frames[:, None]
            scores = jnp.sum(jnp.where(inside, jnp.max(logp, axis=-1), 0.0), axis=-1)
            tokens, lengths, scores = tokens[:, None], lengths[:, None], scores[:, None]
        else:
            tokens, lengths, scores = ctc_prefix_beam_search(logp, frames, strategy.beam, blank)
        tokens, lengths = end_with_eos(tokens, lengths)
        return Candidates(tokens, lengths, scores, jnp.ones(lengths.shape, bool))


RECIPE = CTC()

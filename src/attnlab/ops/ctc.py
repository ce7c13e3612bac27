"""Connectionist temporal classification around ``optax.ctc_loss``: collapse, fit, alignment.

Graves et al. 2006, "Connectionist Temporal Classification". A CTC canvas of ``T`` frames
emits one label per frame, a token or ``blank``; the output is the collapse of those labels:
merge adjacent repeats, then drop blanks, so ``a a _ a b b`` gives ``a a b``. The loss
``-log sum_{pi: collapse(pi) = y} prod_t p_t(pi_t)`` is ``optax.ctc_loss``; this module holds
what optax does not: the collapse, a fit check, and the single best alignment.

Conventions: ``blank_id`` is always a parameter (attnlab gives the blank its own id, not PAD);
``pad_id`` fills fixed-shape outputs past their length (attnlab's PAD is 0). Lengths are
per-example ``[B]`` int arrays; everything is right-padded and jit-compatible.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from attnlab.ops.lattice import LOG_ZERO, NO_PATH, backtrack


def ctc_collapse(
    tokens: jax.Array, lengths: jax.Array, blank_id: int, pad_id: int = 0
) -> tuple[jax.Array, jax.Array]:
    """The CTC output of frame labels ``tokens [B, T]``: merge repeats, then drop blanks.

    Frame ``t < lengths[b]`` is kept when it is not blank and differs from frame ``t - 1``
    (a blank between two equal tokens therefore keeps both). Returns ``(out [B, T], out_lengths
    [B])``, ``out`` right-padded with ``pad_id``.
    """
    tokens = jnp.asarray(tokens)
    batch, frames = tokens.shape
    t = jnp.arange(frames)[None, :]
    differs = jnp.concatenate([jnp.ones((batch, 1), bool), tokens[:, 1:] != tokens[:, :-1]], axis=1)
    keep = (t < jnp.asarray(lengths)[:, None]) & (tokens != blank_id) & differs
    where_to = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, frames)  # frames = dropped
    out = jnp.full_like(tokens, pad_id)
    out = out.at[jnp.arange(batch)[:, None], where_to].set(tokens, mode="drop")
    return out, keep.sum(axis=1).astype(jnp.int32)


def ctc_min_frames(targets: jax.Array, target_lengths: jax.Array) -> jax.Array:
    """Fewest frames that can emit each target: its length plus its adjacent repeats, ``[B]``.

    Each pair of equal neighbours needs a blank frame between them (Graves et al. 2006).
    """
    targets = jnp.asarray(targets)
    s = jnp.arange(1, targets.shape[1])[None, :]
    repeats = (targets[:, 1:] == targets[:, :-1]) & (s < jnp.asarray(target_lengths)[:, None])
    return (jnp.asarray(target_lengths) + repeats.sum(axis=1)).astype(jnp.int32)


def ctc_impossible(
    input_lengths: jax.Array, targets: jax.Array, target_lengths: jax.Array
) -> jax.Array:
    """bool ``[B]``: True where no alignment of the target fits the canvas.

    That is ``ctc_min_frames(targets, target_lengths) > input_lengths``. ``optax.ctc_loss``
    gives such an example a huge loss (about ``-log_epsilon = 1e5``), not an error, so mask
    them out of the loss and count them: ``ctc_impossible(...).sum()``.
    """
    return ctc_min_frames(targets, target_lengths) > jnp.asarray(input_lengths)


def ctc_best_alignment(
    logprobs: jax.Array,
    logit_lengths: jax.Array,
    targets: jax.Array,
    target_lengths: jax.Array,
    blank_id: int,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """The most probable frame labelling of the target: ``argmax_{collapse(pi) = y} log P(pi)``.

    Viterbi over the extended label ``z = (blank, y_1, blank, y_2, ..., y_S, blank)`` of
    ``2S + 1`` states (the forward recursion of Graves et al. 2006, with max for sum):

        d_0(s) = lp_0(z_s) for s in {0, 1}
        d_t(s) = lp_t(z_s) + max(d_(t-1)(s), d_(t-1)(s-1), d_(t-1)(s-2) if z_s != blank
                 and z_s != z_(s-2))

    ending in state ``2S`` or ``2S - 1`` at frame ``logit_length - 1``. Glancing training on a
    CTC canvas (Gu & Kong 2021) reveals the labels of this alignment. ``logprobs [B, T, V]``
    are per-frame log-probabilities. Returns ``labels [B, T]`` int32 (the token or
    ``blank_id`` each frame emits, ``pad_id`` at ``t >= logit_length`` and for examples that
    cannot fit, see ``ctc_impossible``) and ``scores [B]``, ``log P(pi*)`` (-inf if no fit).
    """
    lp = jnp.asarray(logprobs)
    lp = lp.astype(jnp.promote_types(lp.dtype, jnp.float32))
    batch, frames, _ = lp.shape
    targets = jnp.asarray(targets).astype(jnp.int32)
    target_lengths = jnp.asarray(target_lengths)
    logit_lengths = jnp.asarray(logit_lengths)
    states = 2 * targets.shape[1] + 1
    s = jnp.arange(states)[None, :]
    z = jnp.where(s % 2 == 1, targets[:, jnp.clip((s[0] - 1) // 2, 0, None)], blank_id)
    z = z.astype(jnp.int32)  # [B, 2S + 1]
    real = s < 2 * target_lengths[:, None] + 1
    z_before = jnp.concatenate([jnp.full((batch, 2), -1, jnp.int32), z[:, :-2]], axis=1)
    may_skip = (z != blank_id) & (z != z_before) & (s >= 2)
    emit = jnp.take_along_axis(lp, jnp.broadcast_to(z[:, None, :], (batch, frames, states)), 2)
    emit = jnp.where(real[:, None, :], jnp.maximum(emit, LOG_ZERO), LOG_ZERO)

    def shift(d, k):
        return jnp.concatenate([jnp.full((batch, k), LOG_ZERO), d[:, :-k]], axis=1)

    def step(d, emit_t):
        moves = jnp.stack([d, shift(d, 1), jnp.where(may_skip, shift(d, 2), LOG_ZERO)])
        d = jnp.maximum(jnp.max(moves, axis=0) + emit_t, LOG_ZERO)
        return d, (d, (s - jnp.argmax(moves, axis=0)).astype(jnp.int32))

    d0 = jnp.where(s <= 1, emit[:, 0], LOG_ZERO)
    _, (rest, pointers) = lax.scan(step, d0, jnp.moveaxis(emit[:, 1:], 1, 0))
    forward = jnp.concatenate([d0[None], rest], axis=0)  # [T, B, 2S + 1]
    pointers = jnp.concatenate([jnp.zeros_like(pointers[:1]), pointers], axis=0)

    last_frame = jnp.clip(logit_lengths - 1, 0, frames - 1)
    at_end = forward[last_frame, jnp.arange(batch)]  # [B, 2S + 1]
    final_blank = 2 * target_lengths
    final_token = jnp.maximum(final_blank - 1, 0)
    end_blank = jnp.take_along_axis(at_end, final_blank[:, None], 1)[:, 0]
    end_token = jnp.take_along_axis(at_end, final_token[:, None], 1)[:, 0]
    use_token = (target_lengths >= 1) & (end_token > end_blank)
    end_state = jnp.where(use_token, final_token, final_blank)
    score = jnp.where(use_token, end_token, end_blank)
    fits = (logit_lengths >= 1) & (score > NO_PATH)
    path = backtrack(pointers, jnp.where(fits, logit_lengths - 1, -1), end_state)
    labels = jnp.take_along_axis(z, jnp.maximum(path, 0), axis=1)
    return jnp.where(path >= 0, labels, pad_id), jnp.where(fits, score, -jnp.inf)


def ctc_greedy(
    logprobs: jax.Array, lengths: jax.Array, blank_id: int, pad_id: int = 0
) -> tuple[jax.Array, jax.Array]:
    """Best-path decoding: the argmax label of every frame, collapsed (Graves et al. 2006)."""
    return ctc_collapse(jnp.argmax(logprobs, axis=-1), lengths, blank_id, pad_id)


def ctc_prefix_beam_search(
    logprobs: jax.Array,
    lengths: jax.Array,
    beam_size: int,
    blank_id: int,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """CTC prefix beam search (Graves et al. 2006 "prefix search"; Hannun et al. 2014).

    Each hypothesis is an output prefix ``y`` with two scores: ``p_b`` and ``p_nb``, the
    log-probability of all frame labellings so far that collapse to ``y`` and end in a blank
    or in ``y``'s last token. At frame ``t`` with log-probs ``lp``:

        y stays:       p_b'(y)   = logaddexp(p_b, p_nb)(y) + lp(blank)
                       p_nb'(y)  = p_nb(y) + lp(last(y))
        y grows by c:  p_nb'(y+c) += (p_b(y) if c == last(y) else logaddexp(p_b, p_nb)(y))
                                     + lp(c)

    A grown prefix that equals a kept one is merged into it (``+=`` is logaddexp), then the
    ``beam_size`` prefixes with the highest ``logaddexp(p_b, p_nb)`` survive. Frames at
    ``t >= lengths[b]`` are skipped. With a beam at least the number of distinct prefixes,
    nothing is pruned and each score is the exact ``log P(y)`` (= ``-optax.ctc_loss``);
    otherwise a score is a lower bound on it.

    Shapes are fixed, so it jits (``beam_size`` static): ``logprobs [B, T, V]`` ->
    ``sequences [B, K, T]`` (right-padded with ``pad_id``), ``seq_lengths [B, K]`` and
    ``scores [B, K]``, best first. Slots beyond the number of reachable prefixes have score
    -inf and length 0.
    """
    lp = jnp.asarray(logprobs)
    lp = lp.astype(jnp.promote_types(lp.dtype, jnp.float32))
    if beam_size < 1:
        raise ValueError(f"ctc_prefix_beam_search beam_size must be >= 1; got {beam_size}")
    search = lambda x, n: _prefix_beam_one(x, n, beam_size, blank_id, pad_id)
    return jax.vmap(search)(lp, jnp.asarray(lengths))


def _prefix_beam_one(lp, length, beam_size, blank_id, pad_id):
    """Prefix beam search of one example, ``lp [T, V]``."""
    frames = lp.shape[0]
    ninf = jnp.full((beam_size,), -jnp.inf)
    start = {
        "prefix": jnp.full((beam_size, frames), pad_id, jnp.int32),
        "length": jnp.zeros((beam_size,), jnp.int32),
        "last": jnp.full((beam_size,), -1, jnp.int32),  # -1: empty prefix
        "p_b": ninf.at[0].set(0.0),
        "p_nb": ninf,
    }

    def step(beams, inputs):
        t, lp_t = inputs
        new = _extend(beams, lp_t, beam_size, blank_id)
        return jax.tree.map(lambda a, b: jnp.where(t < length, a, b), new, beams), None

    beams, _ = lax.scan(step, start, (jnp.arange(frames), lp))
    scores = jnp.logaddexp(beams["p_b"], beams["p_nb"])
    order = jnp.argsort(-scores)
    alive = scores[order] > -jnp.inf
    prefix = jnp.where(alive[:, None], beams["prefix"][order], pad_id)
    return prefix, jnp.where(alive, beams["length"][order], 0), scores[order]


def _extend(beams, lp_t, beam_size, blank_id):
    """One frame of prefix beam search: every stay and growth, merged, best ``beam_size``."""
    vocab = lp_t.shape[0]
    prefix, length, last = beams["prefix"], beams["length"], beams["last"]
    total = jnp.logaddexp(beams["p_b"], beams["p_nb"])
    lp_last = jnp.where(last >= 0, lp_t[jnp.maximum(last, 0)], -jnp.inf)
    stay_b = total + lp_t[blank_id]
    stay_nb = beams["p_nb"] + lp_last
    c = jnp.arange(vocab)[None, :]
    grow = jnp.where(c == last[:, None], beams["p_b"][:, None], total[:, None]) + lp_t[None]
    grow = jnp.where(c == blank_id, -jnp.inf, grow)  # [K, V]: prefix k grown by token c

    # child[q, k]: live prefix q is prefix k grown by one token (by last[q]).
    frames = prefix.shape[1]
    within = jnp.arange(frames)[None, None, :] < length[None, :, None]
    same_start = jnp.all((prefix[:, None, :] == prefix[None, :, :]) | ~within, axis=-1)
    child = (total > -jnp.inf)[:, None] & (length[:, None] == length[None, :] + 1) & same_start
    into_q = jnp.take_along_axis(grow, jnp.maximum(last, 0)[None, :], axis=1).T  # [q, k]
    stay_nb = jnp.logaddexp(stay_nb, jax.nn.logsumexp(jnp.where(child, into_q, -jnp.inf), axis=1))
    merged = jnp.any(child[:, :, None] & (c[None] == last[:, None, None]), axis=0)  # [k, c]
    grow = jnp.where(merged, -jnp.inf, grow)

    candidates = jnp.concatenate([jnp.logaddexp(stay_b, stay_nb), grow.reshape(-1)])
    _, pick = lax.top_k(candidates, beam_size)
    stays = pick < beam_size
    parent = jnp.where(stays, pick, (pick - beam_size) // vocab)
    token = jnp.where(stays, last[parent], (pick - beam_size) % vocab).astype(jnp.int32)
    column = jnp.where(stays, frames, length[parent])  # frames = write nothing
    rows = jnp.arange(beam_size)
    return {
        "prefix": prefix[parent].at[rows, column].set(token, mode="drop"),
        "length": length[parent] + (~stays),
        "last": token,
        "p_b": jnp.where(stays, stay_b[parent], -jnp.inf),
        "p_nb": jnp.where(stays, stay_nb[parent], grow.reshape(-1)[pick - beam_size]),
    }

"""Autoregressive search: greedy and beam search, model-agnostic and jit-compatible.

The model is seen only through ``tokens_to_logits(last_tokens, cache) -> (logits, new_cache)``:
given the last token of every row and the row's cache, it returns next-token logits
``[rows, vocab]`` and the updated cache. The cache is any pytree whose leaves have a leading
batch axis; beam search expands it to ``batch * beam`` rows (row ``b * beam + k`` is beam k of
example b) and, after every step, re-gathers it by parent beam so that each beam's cache
always describes its own prefix.

Scoring (GNMT, Wu et al. 2016): a hypothesis ``y`` of ``len`` tokens, counting the EOS, scores

    score(y) = sum_t log p(y_t | y_<t, x) / lp(len),    lp(len) = ((5 + len) / 6) ** alpha

with ``alpha = length_penalty`` (0 gives plain log-probability).

Beam search keeps ``beam`` live (unfinished) prefixes ranked by log-probability and the
``beam`` best finished hypotheses ranked by score. Each step scores every extension of every
live prefix, offers the EOS extension of every live prefix to the finished set (all ``beam``
of them, however improbable: ranking them among the other extensions could drop one that
belongs among the best finished hypotheses), and keeps the best ``beam`` non-EOS extensions
live.

Early stop, and why it is exact. Extending a prefix never raises its log-probability
(``log p <= 0``), so a live prefix with log-prob ``s`` at step ``i`` (``i`` tokens so far) can
at best finish with log-prob ``s`` at some length ``len`` in ``[i + 1, max_len]``. Its score is
then at most ``s / lp(len) <= s / max(lp(i + 1), lp(max_len))`` (``s <= 0``, and ``lp`` is
monotone in ``len``, increasing for ``alpha > 0``, decreasing for ``alpha < 0``, so its largest
value is at one end of the range). Live prefixes are ranked by ``s``, so the best live ``s``
bounds them all. An example is done when its finished set is full and its worst finished
score is at least that bound: no live prefix can then enter the finished set.

Cost. The search runs one decoder step per loop iteration, for every example, until every
example is done (or ``max_len``). An example decoded alone can cost more steps than its output
length: its finished set may fill before the bound allows a stop.

Output: ``sequences[b, k]`` holds the tokens after BOS up to and including EOS, then PAD.
Results are sorted best first. If fewer than ``beam`` hypotheses finished within ``max_len``
tokens, the empty slots are filled by the best live prefixes (``max_len`` tokens, no EOS,
scored with ``len = max_len``), ranked after every finished one; so when nothing finished at
all the live beams are returned. Slots that hold no hypothesis at all (only possible when the
search space has fewer than ``beam`` sequences) score ``-inf`` and hold PAD.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from attnlab.specials import BOS, EOS, PAD

TokensToLogits = Callable[[jax.Array, Any], tuple[jax.Array, Any]]

NEG_INF = -jnp.inf


def forbid_ids(logits: jax.Array, ids: tuple[int, ...]) -> jax.Array:
    """``logits`` [..., V] with ``-inf`` at the token ``ids``: what a decoder never emits."""
    return logits.at[..., jnp.array(ids)].set(NEG_INF)


def length_penalty_factor(length: jax.Array | int, alpha: float) -> jax.Array:
    """GNMT length normalizer ``lp(len) = ((5 + len) / 6) ** alpha``."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def _check(batch_size: int, beam_size: int, max_len: int) -> None:
    for name, value in (("batch_size", batch_size), ("beam_size", beam_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")


def expand_to_beams(tree: Any, beam_size: int) -> Any:
    """Repeat every leaf's batch rows ``beam_size`` times: ``[B, ...] -> [B * beam, ...]``."""
    return jax.tree.map(lambda x: jnp.repeat(x, beam_size, axis=0), tree)


def gather_beams(tree: Any, parents: jax.Array) -> Any:
    """Re-gather ``[B * beam, ...]`` leaves by ``parents [B, beam]`` (beam index per new beam)."""
    batch, beam = parents.shape
    rows = (jnp.arange(batch)[:, None] * beam + parents).reshape(-1)
    return jax.tree.map(lambda x: jnp.take(x, rows, axis=0), tree)


class _BeamState(NamedTuple):
    step: jax.Array  # tokens decoded so far (scalar int32)
    live_seqs: jax.Array  # [B, K, max_len]
    live_logp: jax.Array  # [B, K] sum of log-probs, -inf for empty slots
    last: jax.Array  # [B, K] last token of each live prefix (BOS at step 0)
    fin_seqs: jax.Array  # [B, K, max_len]
    fin_scores: jax.Array  # [B, K] length-normalized, -inf for empty slots
    fin_flags: jax.Array  # [B, K] bool, slot holds a finished hypothesis
    cache: Any  # leaves [B * K, ...]


def _top(values: jax.Array, k: int, *arrays: jax.Array) -> tuple[jax.Array, ...]:
    """Top ``k`` of ``values [B, N]`` along N, with ``arrays [B, N, ...]`` gathered alike."""
    top_values, idx = jax.lax.top_k(values, k)
    return (top_values,) + tuple(jnp.take_along_axis(a, _bcast(idx, a), axis=1) for a in arrays)


def _bcast(idx: jax.Array, a: jax.Array) -> jax.Array:
    return idx.reshape(idx.shape + (1,) * (a.ndim - 2))


def beam_search(
    tokens_to_logits: TokensToLogits,
    cache: Any,
    *,
    batch_size: int,
    beam_size: int,
    max_len: int,
    bos_id: int = BOS,
    eos_id: int = EOS,
    length_penalty: float = 0.6,
) -> tuple[jax.Array, jax.Array]:
    """Beam search; returns ``(sequences [B, beam, max_len], scores [B, beam])``, best first.

    See the module docstring for the scoring, the exact early stop and the output layout.
    """
    _check(batch_size, beam_size, max_len)
    B, K, alpha = batch_size, beam_size, length_penalty
    max_lp = length_penalty_factor(max_len, alpha)

    def done(s: _BeamState) -> jax.Array:  # [B]
        best_live = jnp.max(s.live_logp, axis=1)
        bound = best_live / jnp.maximum(length_penalty_factor(s.step + 1, alpha), max_lp)
        worst_fin = jnp.min(s.fin_scores, axis=1)
        return (jnp.all(s.fin_flags, axis=1) & (worst_fin >= bound)) | (best_live == NEG_INF)

    def cond(s: _BeamState) -> jax.Array:
        return (s.step < max_len) & ~jnp.all(done(s))

    def body(s: _BeamState) -> _BeamState:
        logits, cache = tokens_to_logits(s.last.reshape(B * K), s.cache)
        vocab = logits.shape[-1]
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(B, K, vocab)
        cand = s.live_logp[:, :, None] + logp  # [B, K, V]
        # Finished: every live prefix's EOS extension, merged into the finished set by score.
        eos_logp = cand[:, :, eos_id]
        new_fin = eos_logp > NEG_INF
        eos_seqs = s.live_seqs.at[:, :, s.step].set(eos_id)
        eos_score = jnp.where(new_fin, eos_logp / length_penalty_factor(s.step + 1, alpha), NEG_INF)
        # (top_k prefers lower indices on ties, so earlier finished hypotheses stay.)
        fin_scores, fin_seqs, fin_flags = _top(
            jnp.concatenate([s.fin_scores, eos_score], 1),
            K,
            jnp.concatenate([s.fin_seqs, eos_seqs], 1),
            jnp.concatenate([s.fin_flags, new_fin], 1),
        )
        # Live: the best K extensions that do not end in EOS, ranked by log-probability.
        cand = cand.at[:, :, eos_id].set(NEG_INF).reshape(B, K * vocab)
        live_logp, flat = jax.lax.top_k(cand, K)
        live_parent, live_last = flat // vocab, flat % vocab
        live_seqs = jnp.take_along_axis(s.live_seqs, live_parent[:, :, None], axis=1)
        live_seqs = live_seqs.at[:, :, s.step].set(live_last)
        live_seqs = jnp.where((live_logp > NEG_INF)[:, :, None], live_seqs, PAD)
        return _BeamState(
            step=s.step + 1,
            live_seqs=live_seqs,
            live_logp=live_logp,
            last=live_last,
            fin_seqs=fin_seqs,
            fin_scores=fin_scores,
            fin_flags=fin_flags,
            cache=gather_beams(cache, live_parent),
        )

    init = _BeamState(
        step=jnp.array(0, jnp.int32),
        live_seqs=jnp.full((B, K, max_len), PAD, jnp.int32),
        # Only beam 0 is live at the start; the others would duplicate it.
        live_logp=jnp.tile(jnp.array([0.0] + [NEG_INF] * (K - 1), jnp.float32), (B, 1)),
        last=jnp.full((B, K), bos_id, jnp.int32),
        fin_seqs=jnp.full((B, K, max_len), PAD, jnp.int32),
        fin_scores=jnp.full((B, K), NEG_INF, jnp.float32),
        fin_flags=jnp.zeros((B, K), bool),
        cache=expand_to_beams(cache, K),
    )
    s = jax.lax.while_loop(cond, body, init)

    # Fill empty finished slots with live prefixes (ranked after every finished hypothesis).
    live_scores = s.live_logp / length_penalty_factor(s.step, alpha)
    seqs = jnp.concatenate([s.fin_seqs, s.live_seqs], axis=1)
    scores = jnp.concatenate([s.fin_scores, live_scores], axis=1)
    finished = jnp.concatenate([s.fin_flags, jnp.zeros_like(s.fin_flags)], axis=1)
    by_score = jnp.argsort(-scores, axis=1, stable=True)
    scores, seqs, finished = (
        jnp.take_along_axis(a, _bcast(by_score, a), axis=1) for a in (scores, seqs, finished)
    )
    by_flag = jnp.argsort(~finished, axis=1, stable=True)[:, :K]
    seqs = jnp.take_along_axis(seqs, by_flag[:, :, None], axis=1)
    scores = jnp.take_along_axis(scores, by_flag, axis=1)
    seqs = jnp.where((scores > NEG_INF)[:, :, None], seqs, PAD)
    return seqs, scores


class _GreedyState(NamedTuple):
    step: jax.Array
    seqs: jax.Array  # [B, max_len]
    logp: jax.Array  # [B]
    last: jax.Array  # [B]
    length: jax.Array  # [B] tokens emitted, counting the EOS
    done: jax.Array  # [B] bool
    cache: Any


def greedy_search(
    tokens_to_logits: TokensToLogits,
    cache: Any,
    *,
    batch_size: int,
    max_len: int,
    bos_id: int = BOS,
    eos_id: int = EOS,
    length_penalty: float = 0.6,
) -> tuple[jax.Array, jax.Array]:
    """Greedy search; returns ``(sequences [B, max_len], scores [B])``.

    Takes the most probable token at every step until EOS or ``max_len`` tokens. Scores use the
    same GNMT normalization as ``beam_search`` (``len`` counts the EOS; ``max_len`` if none).
    The path does not depend on ``length_penalty``. It is not quite ``beam_search`` with
    ``beam_size=1``: one beam follows the best non-EOS token and keeps the best EOS extension
    seen along the way, so it returns an EOS that greedy passed up when that scores higher
    (and any finished hypothesis where greedy runs out of length). With ``length_penalty=0``
    the two agree whenever greedy's own hypothesis outscores every EOS it passed up, as for a
    confident model.
    """
    _check(batch_size, 1, max_len)
    B = batch_size

    def cond(s: _GreedyState) -> jax.Array:
        return (s.step < max_len) & ~jnp.all(s.done)

    def body(s: _GreedyState) -> _GreedyState:
        logits, cache = tokens_to_logits(s.last, s.cache)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        token = jnp.argmax(logp, axis=-1).astype(jnp.int32)
        token_logp = jnp.take_along_axis(logp, token[:, None], axis=1)[:, 0]
        token = jnp.where(s.done, PAD, token)
        return _GreedyState(
            step=s.step + 1,
            seqs=s.seqs.at[:, s.step].set(token),
            logp=s.logp + jnp.where(s.done, 0.0, token_logp),
            last=token,
            length=s.length + ~s.done,
            done=s.done | (token == eos_id),
            cache=cache,
        )

    init = _GreedyState(
        step=jnp.array(0, jnp.int32),
        seqs=jnp.full((B, max_len), PAD, jnp.int32),
        logp=jnp.zeros((B,), jnp.float32),
        last=jnp.full((B,), bos_id, jnp.int32),
        length=jnp.zeros((B,), jnp.int32),
        done=jnp.zeros((B,), bool),
        cache=cache,
    )
    s = jax.lax.while_loop(cond, body, init)
    return s.seqs, s.logp / length_penalty_factor(s.length, length_penalty)

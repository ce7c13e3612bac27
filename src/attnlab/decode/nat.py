"""NAT decoding strategies for ``NATSeq2Seq``, chosen by name.

A NAT target is the tokens followed by EOS, and its length ``L`` counts the EOS. Decoding a
row at length ``L`` feeds the decoder ``L`` MASK tokens, then PAD, and reads every position at
once. Positions ``0..L-2`` take the most probable token that can be a content token (never PAD,
BOS, EOS or MASK); position ``L-1`` is EOS. So the output tokens are ``L-1`` content tokens,
EOS at ``L-1``, then PAD, and a row's score is the mean log-prob (under the model) of its
``L`` tokens.

Strategies (``parse_strategy``):

- ``length_pred``: ``L`` = the most probable length under the length head.
- ``length_beam:k``: the ``k`` most probable lengths, decoded in parallel as ``k * B`` rows; the
  candidate with the best mean log-prob is kept, or, given ``rescorer``, the best by the
  rescorer (for an AT model: its teacher-forced log-prob, as Gu et al. 2018's noisy parallel
  decoding). ``length_beam:1`` is ``length_pred``. Given ``ref_lengths`` of shape ``[B, k]``
  (``length_beam_lengths``), it decodes those ``k`` lengths instead of the length head's.
- ``oracle_length``: ``L`` = the reference length (``ref_lengths``, counting the EOS): an upper
  bound that removes length prediction errors.
- ``eos_cut`` (recipe ``eos_canvas``): decode the model's fixed canvas of ``max_len`` MASK
  tokens, the canvas it was trained on (the ``max_len`` argument does not change it), take the
  most probable token at every position (anything but PAD, BOS and MASK, so there is no PAD
  hole before the EOS) and cut after the first EOS (PAD after it). Without an EOS the whole
  canvas is kept.
- ``ctc``, ``ctc_beam:K`` (recipe ``ctc``) and ``dag_greedy``, ``dag_lookahead``,
  ``dag_viterbi`` (recipe ``dag``): the canvas is the upsampled source, and the length comes
  from the alignment or the path; see ``attnlab.decode.nat_paths``.
- ``mask_predict:T`` (CMLM, Ghazvininejad et al. 2019): start from all MASK at length ``L``;
  iteration 0 predicts every position; iteration ``t = 1..T-1`` re-masks the
  ``n = floor(N * (T - t) / T)`` content positions with the lowest probability (``N = L - 1``
  content positions; the EOS is fixed) and re-predicts them given the others, updating the
  tokens and probabilities of the re-masked positions only. ``mask_predict:1`` is one
  parallel pass. Combine with a length strategy with ``+``: ``length_beam:5+mask_predict:10``,
  ``oracle_length+mask_predict:4`` (alone it uses ``length_pred``).

Each recipe supports its own strategies (``attnlab.nn.nat_recipes.RECIPES``): a model
refuses the others with one line, and ``mask_predict`` needs ``cmlm``.

Cost. A decode is one jitted call from the source ids to the chosen tokens (with a
``rescorer``, a second call scores the candidates). The decoder runs at the smallest width of
``compiled.widths(max_len)`` (8, 16, 32, ...) that holds every chosen length, picked inside
the call by ``lax.switch``: positions past a row's length are PAD, which the decoder masks,
so the width changes the cost, not the output. ``eos_cut`` needs the whole canvas. Sources
are cut to their used columns as in ``attnlab.decode.at``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnlab.decode.at import at_scorer
from attnlab.decode.compiled import jit_model, trim_source, widths
from attnlab.decode.nat_paths import ctc_candidates, dag_candidates
from attnlab.nn.nat_recipes import check_strategy
from attnlab.specials import BOS, EOS, MASK, PAD

VALID_FORMS = (
    "length_pred",
    "length_beam:K",
    "oracle_length",
    "eos_cut",
    "mask_predict:T",
    "<length_pred|length_beam:K|oracle_length>+mask_predict:T",
    "ctc",
    "ctc_beam:K",
    "dag_greedy",
    "dag_lookahead",
    "dag_viterbi",
)
_CONTENT_FORBIDDEN = (PAD, BOS, EOS, MASK)
_CANVAS_FORBIDDEN = (PAD, BOS, MASK)
_LENGTH_NAMES = ("length_pred", "length_beam", "oracle_length")


class NATStrategy(NamedTuple):
    """Parsed strategy: how lengths are chosen, how many lengths, refinement iterations."""

    length: str  # length_pred | length_beam | oracle_length | eos_cut | ctc | ctc_beam | dag_*
    beam: int = 1
    iterations: int = 1


class NATOutput(NamedTuple):
    tokens: jax.Array  # [B, T] content tokens, EOS, PAD
    lengths: jax.Array  # [B] counting the EOS
    scores: jax.Array  # [B] mean token log-prob (or the rescorer's score)


_PART = re.compile(
    r"(length_pred|oracle_length|eos_cut|ctc|dag_greedy|dag_lookahead|dag_viterbi)"
    r"|(length_beam|mask_predict|ctc_beam):([1-9][0-9]*)"
)


def parse_strategy(strategy: str) -> NATStrategy:
    """Parse a strategy name (see the module docstring); bad names raise ``ValueError``."""
    parts = str(strategy).split("+")
    length, beam, iterations = None, 1, None
    ok = len(parts) <= 2
    for part in parts:
        m = _PART.fullmatch(part)
        if m is None:
            ok = False
            break
        name, number = m.group(1) or m.group(2), m.group(3)
        if name == "mask_predict":
            ok, iterations = ok and iterations is None, int(number)
        else:
            ok, length, beam = ok and length is None, name, int(number or 1)
    if not ok or (iterations is not None and length not in (None, *_LENGTH_NAMES)):
        raise ValueError(
            f"unknown NAT strategy {strategy!r}; valid: {', '.join(VALID_FORMS)} (K, T >= 1)"
        )
    return NATStrategy(length or "length_pred", beam, iterations or 1)


def strategy_names(strategy: str) -> set[str]:
    """The strategy names a spelled strategy uses: ``"length_beam:3+mask_predict:4"`` ->
    ``{"length_beam", "mask_predict"}`` (checked against a recipe by ``check_strategy``)."""
    parse_strategy(strategy)
    return {part.split(":")[0] for part in str(strategy).split("+")}


def _allowed(logp: jax.Array, forbidden: tuple[int, ...]) -> jax.Array:
    return logp.at[..., jnp.array(forbidden)].set(-jnp.inf)


def _predict(model, enc, src, dec_tokens, lengths):
    """One parallel pass: (tokens [N, T], token log-probs [N, T]) with EOS at ``lengths - 1``."""
    logp = jax.nn.log_softmax(model.decode(dec_tokens, enc, src).astype(jnp.float32), axis=-1)
    pos = jnp.arange(dec_tokens.shape[1])[None, :]
    is_eos = pos == (lengths - 1)[:, None]
    tokens = jnp.where(is_eos, EOS, jnp.argmax(_allowed(logp, _CONTENT_FORBIDDEN), axis=-1))
    tokens = jnp.where(pos < lengths[:, None], tokens, PAD).astype(jnp.int32)
    token_logp = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
    return tokens, jnp.where(tokens != PAD, token_logp, 0.0)


def _mask_predict(model, enc, src, lengths, canvas: int, iterations: int):
    """CMLM mask-predict at the given lengths -> (tokens, token log-probs), see module doc."""
    pos = jnp.arange(canvas)[None, :]
    inside = pos < lengths[:, None]
    content = pos < (lengths - 1)[:, None]
    dec = jnp.where(inside, MASK, PAD).astype(jnp.int32)
    tokens, token_logp = _predict(model, enc, src, dec, lengths)
    num_content = jnp.maximum(lengths - 1, 0)
    for t in range(1, iterations):
        n = (num_content * (iterations - t)) // iterations  # [N]
        confidence = jnp.where(content, token_logp, jnp.inf)
        rank = jnp.argsort(jnp.argsort(confidence, axis=1, stable=True), axis=1)
        remask = content & (rank < n[:, None])
        new_tokens, new_logp = _predict(model, enc, src, jnp.where(remask, MASK, tokens), lengths)
        tokens = jnp.where(remask, new_tokens, tokens)
        token_logp = jnp.where(remask, new_logp, token_logp)
    return tokens, token_logp


def _mean(token_logp: jax.Array, lengths: jax.Array) -> jax.Array:
    return jnp.sum(token_logp, axis=1) / jnp.maximum(lengths, 1)


def _eos_cut(model, enc, src, canvas: int):
    dec = model.canvas_tokens(src)
    logp = jax.nn.log_softmax(model.decode(dec, enc, src).astype(jnp.float32), axis=-1)
    tokens = jnp.argmax(_allowed(logp, _CANVAS_FORBIDDEN), axis=-1).astype(jnp.int32)
    is_eos = tokens == EOS
    lengths = jnp.where(jnp.any(is_eos, axis=1), jnp.argmax(is_eos, axis=1) + 1, canvas)
    keep = jnp.arange(canvas)[None, :] < lengths[:, None]
    token_logp = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
    tokens = jnp.where(keep, tokens, PAD)
    token_logp = jnp.where(keep, token_logp, 0.0)
    return tokens[:, None], lengths[:, None], _mean(token_logp, lengths)[:, None]


def _top_lengths(model, enc, src, canvas: int, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` most probable lengths in ``1..canvas`` (a length counts the EOS, so >= 1),
    [B, k], most probable first, and which of them are possible at all (log-prob > -inf)."""
    length_logp, idx = jax.lax.top_k(model.length_log_probs(enc, src)[:, 1 : canvas + 1], k)
    return idx + 1, length_logp > -jnp.inf


def _length_beam_lengths(model, src, *, canvas: int, k: int) -> jax.Array:
    return _top_lengths(model, model.encode(src), src, canvas, k)[0]


def length_beam_lengths(
    model: nnx.Module, src: jax.Array, k: int, *, max_len: int | None = None
) -> np.ndarray:
    """The ``k`` lengths ``length_beam:k`` decodes for each row of ``src`` [B, S]: ``[B, k]``,
    most probable first, counting the EOS. Given back to ``nat_decoder``'s ``decode`` as
    ``ref_lengths``, they make any model of the same config do the same work
    (``attnlab.analysis.recorded`` times recorded decodes this way)."""
    canvas = int(max_len if max_len is not None else model.max_len)
    run = jit_model(_length_beam_lengths, model, canvas=canvas, k=int(k))
    return np.asarray(run(trim_source(src)))


def _candidates(model, src, ref_lengths, strategy: NATStrategy, canvas: int, trim: bool):
    """-> tokens [B, k, T], lengths [B, k], mean log-probs [B, k] for k candidate lengths, and
    which candidates are possible at all [B, k] (length log-prob > -inf; offset mode rules
    some lengths out)."""
    if strategy.length in ("ctc", "ctc_beam"):
        tokens, lengths, scores = ctc_candidates(model, src, strategy.beam)
        return tokens, lengths, scores, jnp.ones_like(lengths, bool)
    if strategy.length.startswith("dag_"):
        tokens, lengths, scores = dag_candidates(model, src, strategy.length)
        return tokens, lengths, scores, jnp.ones_like(lengths, bool)
    enc = model.encode(src)
    if strategy.length == "eos_cut":
        tokens, lengths, scores = _eos_cut(model, enc, src, model.max_len)
        return tokens, lengths, scores, jnp.ones_like(lengths, bool)
    batch, k = src.shape[0], strategy.beam
    if strategy.length == "oracle_length":
        lengths = ref_lengths[:, None]
        possible = jnp.ones_like(lengths, bool)
    elif ref_lengths.ndim == 2:  # length_beam at given lengths (nat_decoder's decode)
        lengths, possible = ref_lengths, jnp.ones_like(ref_lengths, bool)
    else:
        lengths, possible = _top_lengths(model, enc, src, canvas, k)
    rows = lengths.reshape(-1)
    enc, src = jnp.repeat(enc, k, axis=0), jnp.repeat(src, k, axis=0)

    def at_width(width: int) -> Callable[[], tuple[jax.Array, jax.Array]]:
        def run() -> tuple[jax.Array, jax.Array]:
            tokens, token_logp = _mask_predict(model, enc, src, rows, width, strategy.iterations)
            pad = ((0, 0), (0, canvas - width))
            return jnp.pad(tokens, pad, constant_values=PAD), jnp.pad(token_logp, pad)

        return run

    options = widths(canvas) if trim else (canvas,)
    if len(options) == 1:
        tokens, token_logp = at_width(canvas)()
    else:  # the narrowest width that holds every row's length
        branch = jnp.searchsorted(jnp.asarray(options), jnp.max(rows))
        tokens, token_logp = jax.lax.switch(branch, [at_width(w) for w in options])
    scores = _mean(token_logp, rows)
    return tokens.reshape(batch, k, canvas), lengths, scores.reshape(batch, k), possible


def _pick(tokens, lengths, scores) -> NATOutput:
    """The candidate of best score per row: [B, k, ...] -> NATOutput of [B, ...]."""
    best = jnp.argmax(scores, axis=1)

    def take(x: jax.Array) -> jax.Array:
        return jnp.take_along_axis(x, best.reshape((-1,) + (1,) * (x.ndim - 1)), axis=1)[:, 0]

    return NATOutput(take(tokens), take(lengths), take(scores))


def _decode(model, src, ref_lengths, *, strategy, canvas, trim, pick):
    """``_candidates``; with ``pick``, the best candidate of each row (a NATOutput)."""
    tokens, lengths, scores, possible = _candidates(model, src, ref_lengths, strategy, canvas, trim)
    scores = jnp.where(possible, scores, -jnp.inf)
    return _pick(tokens, lengths, scores) if pick else (tokens, lengths, scores, possible)


Rescorer = Callable[[jax.Array, jax.Array], jax.Array] | nnx.Module


def nat_decoder(
    model: nnx.Module,
    strategy: str,
    *,
    max_len: int | None = None,
    rescorer: Rescorer | None = None,
    trim: bool = True,
) -> Callable[..., NATOutput]:
    """Check ``strategy`` and split ``model`` once; return ``decode(src, ref_lengths=None)``.

    The returned function is ``nat_decode`` without the per-call ``nnx.split`` (milliseconds in
    Python, see ``attnlab.decode.at.at_searcher``); it holds the weights as they were when made.
    ``trim=False`` decodes the source at its given width and every length on the whole canvas
    (same output, more work).
    """
    parsed = parse_strategy(strategy)
    check_strategy(model.recipe, strategy_names(strategy), strategy)
    canvas = int(max_len if max_len is not None else model.max_len)
    if not 1 <= canvas <= model.max_len:
        raise ValueError(f"max_len must be in 1..{model.max_len} (the model's), got {canvas}")
    if rescorer is not None and parsed.length != "length_beam":
        raise ValueError(f"rescorer is only used by length_beam:K, not {strategy!r}")
    if parsed.length == "length_beam" and parsed.beam > canvas:
        raise ValueError(f"length_beam:{parsed.beam} asks for more lengths than max_len={canvas}")
    run = jit_model(
        _decode, model, strategy=parsed, canvas=canvas, trim=bool(trim), pick=rescorer is None
    )
    if isinstance(rescorer, nnx.Module):
        rescorer = at_scorer(rescorer)

    def decode(src: jax.Array, ref_lengths: jax.Array | None = None) -> NATOutput:
        src = trim_source(src) if trim else jnp.asarray(src, jnp.int32)
        ref = np.ones(src.shape[:1], np.int32)
        if parsed.length == "length_beam" and np.ndim(ref_lengths) == 2:
            ref = np.asarray(ref_lengths)
            if ref.shape != (src.shape[0], parsed.beam) or ref.min() < 1 or ref.max() > canvas:
                raise ValueError(
                    f"length_beam:{parsed.beam} given lengths must be [B, {parsed.beam}] in "
                    f"1..{canvas} (with the EOS), got shape {ref.shape}"
                )
        elif parsed.length == "oracle_length":  # otherwise ref_lengths is ignored
            if ref_lengths is None:
                raise ValueError(
                    "strategy 'oracle_length' needs ref_lengths (target lengths with EOS)"
                )
            ref = np.asarray(ref_lengths)
            if ref.shape != src.shape[:1] or ref.max() > canvas:
                raise ValueError(
                    f"ref_lengths must be [B] and <= {canvas} (with the EOS), got {ref}"
                )
            ref = np.maximum(ref, 1)  # empty (padding) rows decode to a lone EOS
        ref = ref.astype(np.int32)
        if rescorer is None:
            return run(src, ref)
        tokens, lengths, _, possible = run(src, ref)
        batch, k, _ = tokens.shape
        flat_src, flat_tokens = jnp.repeat(src, k, axis=0), tokens.reshape(batch * k, -1)
        scores = jnp.asarray(rescorer(flat_src, flat_tokens))
        scores = jnp.where(possible, scores.reshape(batch, k), -jnp.inf)
        return _pick(tokens, lengths, scores)

    return decode


def nat_decode(
    model: nnx.Module,
    src: jax.Array,
    strategy: str,
    *,
    ref_lengths: jax.Array | None = None,
    max_len: int | None = None,
    rescorer: Rescorer | None = None,
) -> NATOutput:
    """Decode ``src`` [B, S] with a ``NATSeq2Seq`` by ``strategy`` (see the module docstring).

    ``max_len`` is the canvas width ``T`` (default: the model's ``max_len``). ``ref_lengths`` [B]
    (counting the EOS) is required by ``oracle_length`` and ignored otherwise; rows of
    length 0 (batch padding) decode to a lone EOS. ``rescorer`` picks among
    ``length_beam`` candidates: an AT ``Seq2Seq`` (its teacher-forced log-prob) or a callable
    ``(src [N, S], tokens [N, T]) -> scores [N]``, higher is better. One call; see
    ``nat_decoder`` to decode many.
    """
    return nat_decoder(model, strategy, max_len=max_len, rescorer=rescorer)(src, ref_lengths)

"""AT decoding: turn a ``Seq2Seq`` model into ``tokens_to_logits`` and run greedy/beam search.

Two ways to compute the next-token logits, with identical results:

- cached (``use_cache=True``): ``model.init_cache`` encodes the source once and allocates the
  decoder's KV cache; each step feeds one new token per row to ``model.decode_step``. A step
  costs O(1) decoder positions (attention over the cache is O(t)).
- uncached (``use_cache=False``): the cache is only the encoder output and the prefix buffer;
  each step writes the new token into the prefix and re-runs the full causal decoder over the
  whole ``max_len`` buffer, reading the logits at the current position. The causal mask makes
  this exact; it costs O(max_len) decoder positions per step, the difference the benchmark
  shows.

PAD, BOS and MASK are never valid targets, so their logits are set to -inf before search: the
search (and ``at_log_prob``) use the model's distribution renormalized over the other tokens.

Everything is jitted once per (model structure, search settings, source width)
(``attnlab.decode.compiled.jit_model``): the structure and settings are static, the arrays
and the source are traced, so repeated calls with new weights or sources of the same shape do
not recompile. The whole search, from the source ids to the best tokens, is one jitted call.
Sources are cut to the columns that hold a token in some row (``compiled.trim_source``:
widths 8, 16, 32, ...), which changes the cost of a short word, not its output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from attnlab.choices import check_choice
from attnlab.decode.compiled import jit_model, trim_source
from attnlab.decode.search import beam_search, forbid_ids, greedy_search, length_penalty_factor
from attnlab.specials import BOS, EOS, MASK, PAD

DECODE_METHODS = ("greedy", "beam")
_FORBIDDEN = (PAD, BOS, MASK)


def cached_step(model: nnx.Module, src: jax.Array, max_len: int) -> tuple[Callable, Any]:
    """``(tokens_to_logits, cache)`` stepping ``model.decode_step`` over its KV cache."""

    def tokens_to_logits(tokens: jax.Array, cache: Any) -> tuple[jax.Array, Any]:
        logits, cache = model.decode_step(tokens, cache)
        return forbid_ids(logits, _FORBIDDEN), cache

    return tokens_to_logits, model.init_cache(src, max_len)


def uncached_step(model: nnx.Module, src: jax.Array, max_len: int) -> tuple[Callable, Any]:
    """``(tokens_to_logits, cache)`` re-running the full decoder on the prefix every step."""
    batch = src.shape[0]
    cache = {
        "enc": model.encode(src),
        "src": src,
        "prefix": jnp.full((batch, max_len), PAD, jnp.int32),
        "index": jnp.zeros((batch,), jnp.int32),
    }

    def tokens_to_logits(tokens: jax.Array, cache: Any) -> tuple[jax.Array, Any]:
        rows, index = jnp.arange(tokens.shape[0]), cache["index"]
        prefix = cache["prefix"].at[rows, index].set(tokens)
        logits = model.decode(prefix, cache["enc"], cache["src"])[rows, index]
        return forbid_ids(logits, _FORBIDDEN), {**cache, "prefix": prefix, "index": index + 1}

    return tokens_to_logits, cache


def _search(
    model: nnx.Module,
    src: jax.Array,
    *,
    method: str,
    beam_size: int,
    max_len: int,
    length_penalty: float,
    use_cache: bool,
) -> tuple[jax.Array, jax.Array]:
    make = cached_step if use_cache else uncached_step
    tokens_to_logits, cache = make(model, src, max_len)
    common = dict(
        batch_size=src.shape[0],
        max_len=max_len,
        bos_id=BOS,
        eos_id=EOS,
        length_penalty=length_penalty,
    )
    if method == "greedy":
        return greedy_search(tokens_to_logits, cache, **common)
    seqs, scores = beam_search(tokens_to_logits, cache, beam_size=beam_size, **common)
    return seqs[:, 0], scores[:, 0]


def at_searcher(
    model: nnx.Module,
    *,
    method: str = "greedy",
    beam_size: int = 4,
    max_len: int,
    length_penalty: float = 0.6,
    use_cache: bool = True,
    trim: bool = True,
) -> Callable[[Any], tuple[jax.Array, jax.Array]]:
    """Check the settings and split ``model`` once; return ``search(src)``.

    ``search`` returns ``(tokens, scores)`` as ``at_search`` does. Splitting an NNX model
    walks every variable in Python, which can cost more than the whole greedy decode of one
    word. Callers that decode many batches, and every latency
    measurement, keep the returned function. It holds the weights as they were when it was
    made. ``trim=False`` decodes the source at its given width (same output, more work).
    """
    check_choice("decode method", method, DECODE_METHODS)
    if method == "beam" and beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    limit = getattr(model, "max_len", None)  # positions beyond it would be silently clamped
    if limit is not None and not 1 <= max_len <= limit:
        raise ValueError(f"max_len must be in 1..{limit} (the model's), got {max_len}")
    run = jit_model(
        _search,
        model,
        method=method,
        beam_size=beam_size if method == "beam" else 1,
        max_len=int(max_len),
        length_penalty=float(length_penalty),
        use_cache=bool(use_cache),
    )

    def search(src: Any) -> tuple[jax.Array, jax.Array]:
        return run(trim_source(src) if trim else jnp.asarray(src, jnp.int32))

    return search


def at_search(
    model: nnx.Module,
    src: jax.Array,
    *,
    method: str = "greedy",
    beam_size: int = 4,
    max_len: int,
    length_penalty: float = 0.6,
    use_cache: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Best hypothesis and its GNMT score: ``(tokens [B, max_len], scores [B])``.

    ``tokens`` hold the tokens after BOS up to and including EOS, then PAD. ``beam_size`` is
    ignored for ``method="greedy"``. One call; see ``at_searcher`` to decode many.
    """
    return at_searcher(
        model,
        method=method,
        beam_size=beam_size,
        max_len=max_len,
        length_penalty=length_penalty,
        use_cache=use_cache,
    )(src)


def at_decode(
    model: nnx.Module,
    src: jax.Array,
    *,
    method: str = "greedy",
    beam_size: int = 4,
    max_len: int,
    length_penalty: float = 0.6,
    use_cache: bool = True,
) -> jax.Array:
    """Decode ``src`` [B, S] with a ``Seq2Seq`` model -> best tokens [B, max_len] (after BOS)."""
    tokens, _ = at_search(
        model,
        src,
        method=method,
        beam_size=beam_size,
        max_len=max_len,
        length_penalty=length_penalty,
        use_cache=use_cache,
    )
    return tokens


def _log_prob(model: nnx.Module, src: jax.Array, tokens: jax.Array) -> jax.Array:
    tgt_in = jnp.concatenate([jnp.full_like(tokens[:, :1], BOS), tokens[:, :-1]], axis=1)
    logits = model(src, tgt_in).astype(jnp.float32)
    logp = jax.nn.log_softmax(forbid_ids(logits, _FORBIDDEN), axis=-1)
    token_logp = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(tokens != PAD, token_logp, 0.0), axis=1)


def at_scorer(model: nnx.Module, *, length_penalty: float = 0.0) -> Callable:
    """Split ``model`` once; return ``score(src [B, S], tokens [B, T]) -> [B]``.

    The score is ``at_log_prob`` divided by the GNMT length penalty of the token count (EOS
    included), the normalization beam search ranks finished hypotheses by; ``0`` gives the
    plain sum. Made once, it costs one jitted call per use (no per-call ``nnx.split``).
    """
    run = jit_model(_log_prob, model)
    alpha = float(length_penalty)

    def score(src: Any, tokens: Any) -> jax.Array:
        tokens = jnp.asarray(tokens, jnp.int32)
        logp = run(jnp.asarray(src, jnp.int32), tokens)
        if alpha == 0.0:
            return logp
        return logp / length_penalty_factor(jnp.sum(tokens != PAD, axis=1), alpha)

    return score


def at_log_prob(model: nnx.Module, src: jax.Array, tokens: jax.Array) -> jax.Array:
    """Teacher-forced ``sum_t log p(y_t | y_<t, x)`` [B] of ``tokens`` [B, T] (EOS, then PAD).

    ``p`` is the distribution the search uses: PAD, BOS and MASK excluded, renormalized.
    """
    return at_scorer(model)(src, tokens)

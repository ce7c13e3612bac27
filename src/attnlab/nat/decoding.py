"""Decoding a ``NATSeq2Seq`` by a named strategy of its recipe.

A NAT output is content tokens, then EOS, then PAD; its length ``L`` counts the EOS, and its
score is the recipe's (for the length strategies, the mean log-prob of the ``L`` tokens). Each
recipe module documents its strategies: ``length_pred``, ``length_beam:K``, ``oracle_length``
(``vanilla``, ``cmlm``), ``mask_predict:T`` and ``<length strategy>+mask_predict:T``
(``cmlm``), ``eos_cut`` (``eos_canvas``), ``ctc`` and ``ctc_beam:K`` (``ctc``),
``dag_greedy``, ``dag_lookahead`` and ``dag_viterbi`` (``dag``). A model refuses the
strategies of other recipes with one line naming its own.

A strategy gives ``k`` candidates per row (``Recipe.candidates``); the one of best score is
kept, or, given a ``rescorer`` (``length_beam:K`` only), the best by the rescorer: an AT model
(its teacher-forced log-prob, Gu et al. 2018's noisy parallel decoding) or a callable
``(src [N, S], tokens [N, T]) -> scores [N]``, higher is better.

Cost. A decode is one jitted call from the source ids to the chosen tokens (with a
``rescorer``, a second call scores the candidates). Sources are cut to their used columns as
in ``attnlab.decode.at``; the length strategies decode at the narrowest width that holds the
chosen lengths (``attnlab.nat.vanilla``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnlab.decode.at import at_scorer
from attnlab.decode.compiled import jit_model, trim_source
from attnlab.nat.base import Candidates, Strategy


class NATOutput(NamedTuple):
    tokens: jax.Array  # [B, T] content tokens, EOS, PAD
    lengths: jax.Array  # [B] counting the EOS
    scores: jax.Array  # [B] the recipe's score (or the rescorer's)


def pick(tokens: jax.Array, lengths: jax.Array, scores: jax.Array) -> NATOutput:
    """The candidate of best score per row: [B, k, ...] -> NATOutput of [B, ...]."""
    best = jnp.argmax(scores, axis=1)

    def take(x: jax.Array) -> jax.Array:
        return jnp.take_along_axis(x, best.reshape((-1,) + (1,) * (x.ndim - 1)), axis=1)[:, 0]

    return NATOutput(take(tokens), take(lengths), take(scores))


def _decode(model, src, ref_lengths, *, strategy: Strategy, canvas: int, trim: bool, keep: bool):
    """The recipe's candidates; unless ``keep``, the best of each row (a NATOutput)."""
    out = model.recipe.candidates(model, src, ref_lengths, strategy, canvas=canvas, trim=trim)
    out = out._replace(scores=jnp.where(out.possible, out.scores, -jnp.inf))
    return out if keep else pick(out.tokens, out.lengths, out.scores)


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
    recipe = model.recipe
    parsed = recipe.parse_strategy(strategy)
    canvas = int(max_len if max_len is not None else model.max_len)
    if not 1 <= canvas <= model.max_len:
        raise ValueError(f"max_len must be in 1..{model.max_len} (the model's), got {canvas}")
    recipe.check_decode(parsed, canvas, rescorer is not None)
    needs_reference = recipe.needs_reference(parsed)
    run = jit_model(
        _decode, model, strategy=parsed, canvas=canvas, trim=bool(trim), keep=rescorer is not None
    )
    if isinstance(rescorer, nnx.Module):
        rescorer = at_scorer(rescorer)

    def decode(src: jax.Array, ref_lengths: jax.Array | None = None) -> NATOutput:
        src = trim_source(src) if trim else jnp.asarray(src, jnp.int32)
        ref = np.ones(src.shape[:1], np.int32)
        if needs_reference:  # otherwise ref_lengths is ignored
            if ref_lengths is None:
                raise ValueError(
                    f"strategy {strategy!r} needs ref_lengths (target lengths with EOS)"
                )
            ref = np.asarray(ref_lengths)
            if ref.shape != src.shape[:1] or ref.max() > canvas:
                raise ValueError(
                    f"ref_lengths must be [B] and <= {canvas} (with the EOS), got {ref}"
                )
            ref = np.maximum(ref, 1).astype(np.int32)  # empty (padding) rows: a lone EOS
        if rescorer is None:
            return run(src, ref)
        out: Candidates = run(src, ref)
        batch, k, _ = out.tokens.shape
        flat_src, flat_tokens = jnp.repeat(src, k, axis=0), out.tokens.reshape(batch * k, -1)
        scores = jnp.asarray(rescorer(flat_src, flat_tokens)).reshape(batch, k)
        return pick(out.tokens, out.lengths, jnp.where(out.possible, scores, -jnp.inf))

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
    length 0 (batch padding) decode to a lone EOS. One call; see ``nat_decoder`` to decode
    many.
    """
    return nat_decoder(model, strategy, max_len=max_len, rescorer=rescorer)(src, ref_lengths)

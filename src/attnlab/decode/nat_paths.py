"""Decoding the NAT recipes whose length comes from an alignment: ``ctc`` and ``dag``.

Both read the canvas of ``upsample * source_length`` positions (``NATSeq2Seq.canvas_tokens``)
in one decoder pass, then search it; every search is a pure function of ``attnlab.ops`` and
runs inside the decoder's ``jax.jit``.

- ``ctc``: the argmax label of each position, repeats merged, blanks dropped
  (``ops.ctc.ctc_greedy``); score = the log-prob of that frame labelling.
- ``ctc_beam:K``: CTC prefix beam search with ``K`` prefixes (``ops.ctc.ctc_prefix_beam_search``);
  the ``K`` prefixes are candidates, scored by their log-prob summed over alignments, and the
  best is kept.
- ``dag_greedy``, ``dag_lookahead``, ``dag_viterbi`` (Huang et al. 2022; Shao et al. 2022):
  ``ops.dag``'s decoders on the graph; ``dag_viterbi`` uses length normalization ``alpha = 1``
  (the per-token mean log-prob), the default ``decode_viterbibeta = 1`` of
  thu-coai/DA-Transformer. The output is cut after its first EOS. These are not scored
  (score 0).

PAD, BOS, MASK (and for CTC, EOS: the CTC labels never hold it) are never emitted. Every
output is laid out as the length strategies': content tokens, EOS, then PAD, one column wider
than the canvas so that the EOS always fits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnlab.ops.ctc import ctc_greedy, ctc_prefix_beam_search
from attnlab.ops.dag import dag_greedy, dag_lookahead, dag_viterbi
from attnlab.specials import BOS, EOS, MASK, PAD

_DAG_SEARCHES = {
    "dag_greedy": dag_greedy,
    "dag_lookahead": dag_lookahead,
    "dag_viterbi": dag_viterbi,
}


def _forbid(logp: jax.Array, ids: tuple[int, ...]) -> jax.Array:
    return logp.at[..., jnp.array(ids)].set(-jnp.inf)


def _end_with_eos(tokens: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Content ``tokens`` [..., T] of ``lengths`` -> [..., T + 1] with EOS after them."""
    pad = [(0, 0)] * (tokens.ndim - 1) + [(0, 1)]
    tokens = jnp.pad(tokens, pad, constant_values=PAD)
    pos = jnp.arange(tokens.shape[-1])
    tokens = jnp.where(pos == lengths[..., None], EOS, tokens)
    return tokens.astype(jnp.int32), (lengths + 1).astype(jnp.int32)


def ctc_candidates(model, src: jax.Array, beam: int):
    """-> tokens [B, K, W + 1], lengths [B, K] (with EOS), scores [B, K]; K = 1 for greedy."""
    dec = model.canvas_tokens(src)
    frames = jnp.sum(dec != PAD, axis=-1)
    logits = model.decode(dec, model.encode(src), src).astype(jnp.float32)
    logp = _forbid(jax.nn.log_softmax(logits, axis=-1), (PAD, BOS, EOS, MASK))
    if beam == 1:
        tokens, lengths = ctc_greedy(logp, frames, model.blank_id)
        inside = jnp.arange(dec.shape[1])[None, :] < frames[:, None]
        scores = jnp.sum(jnp.where(inside, jnp.max(logp, axis=-1), 0.0), axis=-1)
        tokens, lengths = tokens[:, None], lengths[:, None]
        scores = scores[:, None]
    else:
        tokens, lengths, scores = ctc_prefix_beam_search(logp, frames, beam, model.blank_id)
    tokens, lengths = _end_with_eos(tokens, lengths)
    return tokens, lengths, scores


def dag_candidates(model, src: jax.Array, search: str):
    """-> tokens [B, 1, L + 1], lengths [B, 1] (with EOS), scores [B, 1] (zeros)."""
    dec = model.canvas_tokens(src)
    graph_lengths = jnp.sum(dec != PAD, axis=-1)
    emit, trans = model.dag_logprobs(dec, model.encode(src), src)
    emit = _forbid(emit, (PAD, BOS, MASK))
    tokens, lengths = _DAG_SEARCHES[search](emit, trans, graph_lengths, pad_id=PAD)
    is_eos = (tokens == EOS) & (jnp.arange(tokens.shape[1])[None, :] < lengths[:, None])
    first_eos = jnp.where(jnp.any(is_eos, axis=1), jnp.argmax(is_eos, axis=1), lengths)
    content = jnp.arange(tokens.shape[1])[None, :] < first_eos[:, None]
    tokens, lengths = _end_with_eos(jnp.where(content, tokens, PAD), first_eos)
    zeros = jnp.zeros(lengths.shape, jnp.float32)
    return tokens[:, None], lengths[:, None], zeros[:, None]

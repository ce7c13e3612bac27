"""The ``dag`` NAT recipe: a DA-Transformer, a graph of vertices with transition links.

Huang et al. 2022, "Directed Acyclic Transformer for Non-Autoregressive Machine Translation".
The decoder reads ``L = lambda * source_length`` vertices (``lambda = model.upsample``, by
default 2: docs/nat_recipes.md; no length head) and gives each vertex a state ``h_i``.
Vertex ``i`` emits a token, ``emit[i] = log_softmax(W h_i)`` (the decoder's ordinary output
layer), and moves to a later vertex ``j`` with

    trans[i, j] = log_softmax_{i < j < L} (q_i . k_j / sqrt(d)),  q = W_q h, k = W_k h,

masked to later vertices of the vertex's own graph and normalized over them (DagLinks).
Training maximizes ``ops.dag.dag_log_likelihood`` of the target with its EOS: a path starts
at vertex 0 and ends at the last vertex, which so learns to emit EOS. The loss is the
negative log-likelihood summed over rows and divided by the target tokens (EOS counted);
rows with no path (a target longer than its graph) leave the loss and are counted in
``dag_impossible`` (a count, like ``ctc_impossible``).

Glancing (Huang et al. 2022 after Qian et al. 2021): the references are the target tokens
at the vertices of the most probable path (``ops.dag.dag_best_alignment``); the guess at
such a vertex is its argmax token. Revealed target tokens become the decoder input at their
vertices. The loss stays the graph likelihood.

Decoding (Huang et al. 2022; Shao et al. 2022): ``dag_greedy``, ``dag_lookahead`` and
``dag_viterbi`` run ``ops.dag``'s decoders on the graph (PAD, BOS and MASK never emitted);
``dag_viterbi`` uses length normalization ``alpha = 1`` (the per-token mean log-prob), the
default ``decode_viterbibeta = 1`` of thu-coai/DA-Transformer. The output is cut after its
first EOS and is not scored (score 0).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from attnlab.decode.search import forbid_ids
from attnlab.nat.base import (
    Candidates,
    Recipe,
    Stats,
    end_with_eos,
    one_candidate,
    source_canvas,
)
from attnlab.nat.glancing import glance
from attnlab.ops.dag import (
    dag_best_alignment,
    dag_greedy,
    dag_log_likelihood,
    dag_lookahead,
    dag_viterbi,
)
from attnlab.specials import BOS, EOS, MASK, PAD

# Masked transition scores: finite, so a row with no allowed vertex (the last one) gives a
# finite (unused) distribution instead of NaN, whose backward pass would poison the grads.
_MASKED = -1e9


class DagLinks(nnx.Module):
    """Vertex states [B, L, d] -> transition log-probs [B, L, L] (see the module doc)."""

    def __init__(self, d_model: int, *, rngs: nnx.Rngs) -> None:
        self.query = nnx.Linear(d_model, d_model, rngs=rngs)
        # No key bias: q.b is the same for every vertex of a row, which the softmax removes.
        self.key = nnx.Linear(d_model, d_model, use_bias=False, rngs=rngs)

    def __call__(self, states: jax.Array, graph_lengths: jax.Array) -> jax.Array:
        q = self.query(states).astype(jnp.float32)
        k = self.key(states).astype(jnp.float32)
        scores = jnp.einsum("bid,bjd->bij", q, k) / jnp.sqrt(jnp.float32(q.shape[-1]))
        i = jnp.arange(scores.shape[1])[:, None]
        j = jnp.arange(scores.shape[2])[None, :]
        allowed = (j > i)[None] & (j[None] < graph_lengths[:, None, None])
        return jax.nn.log_softmax(jnp.where(allowed, scores, _MASKED), axis=-1)


_SEARCHES = {"dag_greedy": dag_greedy, "dag_lookahead": dag_lookahead, "dag_viterbi": dag_viterbi}


def graph_logprobs(
    model: Any, dec_tokens: jax.Array, enc: jax.Array, src: jax.Array, *, train: bool = False
) -> tuple[jax.Array, jax.Array]:
    """(emission log-probs [B, L, V], transition log-probs [B, L, L]) of the graph whose
    vertices are the non-PAD ``dec_tokens``."""
    states = model.decoder.states(
        dec_tokens,
        context=enc,
        context_valid=src != PAD,
        token_vectors=model.decoder_inputs(dec_tokens, src),
        train=train,
    )
    emit = jax.nn.log_softmax(model.decoder.project(states).astype(jnp.float32), axis=-1)
    return emit, model.links(states, (dec_tokens != PAD).sum(axis=1))


class DAG(Recipe):
    name = "dag"
    default_upsample = 2
    glancing = True
    strategies = tuple(_SEARCHES)
    default_strategy = "dag_lookahead"

    def heads(self, cfg, *, rngs):
        return {"links": DagLinks(cfg.d_model, rngs=rngs)}

    def canvas(self, model, src):
        return source_canvas(src, model.upsample)

    def stats(self, model, enc, src, targets, valid, *, train, key, ratio, smoothing) -> Stats:
        """``loss`` = ``nll`` (per target token), ``dag_impossible`` (a count), and with
        glancing ``glanced`` (per row)."""
        dec = self.canvas(model, src)
        graph_lengths = jnp.sum(dec != PAD, axis=-1)
        target_lengths = jnp.sum(targets != PAD, axis=-1)
        rows = jnp.sum(valid.astype(jnp.float32))
        stats = {}
        if ratio is not None:
            first = graph_logprobs(model, dec, jax.lax.stop_gradient(enc), src, train=False)
            emit, trans = jax.lax.stop_gradient(first)
            vertices, _ = dag_best_alignment(emit, trans, targets, graph_lengths, target_lengths)
            at = jnp.maximum(vertices, 0)
            guess = jnp.take_along_axis(jnp.argmax(emit, axis=-1), at, axis=1)
            candidates = (vertices >= 0) & valid[:, None]
            reveal = glance(guess, targets, candidates, ratio, key)
            where_to = jnp.where(reveal, vertices, dec.shape[1])  # out of range: not written
            batch = jnp.arange(dec.shape[0])[:, None]
            dec = dec.at[batch, where_to].set(targets.astype(dec.dtype), mode="drop")
            stats["glanced"] = (jnp.sum(reveal), rows)
        emit, trans = graph_logprobs(model, dec, enc, src, train=train)
        ll = dag_log_likelihood(emit, trans, targets, graph_lengths, target_lengths)
        used = valid & jnp.isfinite(ll)
        total = -jnp.sum(jnp.where(used, ll, 0.0))
        tokens = jnp.sum(jnp.where(used, target_lengths, 0).astype(jnp.float32))
        impossible = jnp.sum(valid & ~jnp.isfinite(ll)).astype(jnp.float32)
        stats.update(
            {
                "loss": (total, tokens),
                "nll": (total, tokens),
                "dag_impossible": (impossible, jnp.float32(0)),
            }
        )
        return stats

    def candidates(self, model, src, ref_lengths, strategy, *, canvas, trim) -> Candidates:
        """tokens [B, 1, L + 1], lengths [B, 1] (with EOS), scores [B, 1] (zeros)."""
        dec = self.canvas(model, src)
        graph_lengths = jnp.sum(dec != PAD, axis=-1)
        emit, trans = graph_logprobs(model, dec, model.encode(src), src)
        emit = forbid_ids(emit, (PAD, BOS, MASK))
        tokens, lengths = _SEARCHES[strategy.name](emit, trans, graph_lengths, pad_id=PAD)
        is_eos = (tokens == EOS) & (jnp.arange(tokens.shape[1])[None, :] < lengths[:, None])
        first_eos = jnp.where(jnp.any(is_eos, axis=1), jnp.argmax(is_eos, axis=1), lengths)
        content = jnp.arange(tokens.shape[1])[None, :] < first_eos[:, None]
        tokens, lengths = end_with_eos(jnp.where(content, tokens, PAD), first_eos)
        return one_candidate(tokens, lengths, jnp.zeros(lengths.shape, jnp.float32))


RECIPE = DAG()

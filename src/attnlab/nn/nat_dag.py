"""The ``dag`` NAT recipe: the DA-Transformer's graph head, loss and glancing.

Huang et al. 2022, "Directed Acyclic Transformer for Non-Autoregressive Machine Translation".
The decoder reads ``L = lambda * source_length`` vertices (``lambda = model.upsample``) and
gives each vertex a state ``h_i``. Vertex ``i`` emits a token, ``emit[i] = log_softmax(W h_i)``
(the decoder's ordinary output layer), and moves to a later vertex ``j`` with

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
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from attnlab.nn.glancing import glance
from attnlab.ops.dag import dag_best_alignment, dag_log_likelihood
from attnlab.specials import PAD

# Masked transition scores: finite, so a row with no allowed vertex (the last one) gives a
# finite (unused) distribution instead of NaN, whose backward pass would poison the grads.
_MASKED = -1e9


class DagLinks(nnx.Module):
    """Vertex states [B, L, d] -> transition log-probs [B, L, L] (see the module doc)."""

    def __init__(self, d_model: int, *, rngs: nnx.Rngs) -> None:
        self.query = nnx.Linear(d_model, d_model, rngs=rngs)
        self.key = nnx.Linear(d_model, d_model, rngs=rngs)

    def __call__(self, states: jax.Array, graph_lengths: jax.Array) -> jax.Array:
        q = self.query(states).astype(jnp.float32)
        k = self.key(states).astype(jnp.float32)
        scores = jnp.einsum("bid,bjd->bij", q, k) / jnp.sqrt(jnp.float32(q.shape[-1]))
        i = jnp.arange(scores.shape[1])[:, None]
        j = jnp.arange(scores.shape[2])[None, :]
        allowed = (j > i)[None] & (j[None] < graph_lengths[:, None, None])
        return jax.nn.log_softmax(jnp.where(allowed, scores, _MASKED), axis=-1)


def dag_stats(
    model: Any,
    enc: jax.Array,
    src: jax.Array,
    targets: jax.Array,
    valid: jax.Array,
    *,
    train: bool,
    key: jax.Array | None,
    ratio: jax.Array | None,
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """``loss`` = ``nll`` (per target token), ``dag_impossible`` (a count), and with
    glancing ``glanced`` (per row)."""
    dec = model.canvas_tokens(src)
    graph_lengths = jnp.sum(dec != PAD, axis=-1)
    target_lengths = jnp.sum(targets != PAD, axis=-1)
    rows = jnp.sum(valid.astype(jnp.float32))
    stats = {}
    if ratio is not None:
        first = model.dag_logprobs(dec, jax.lax.stop_gradient(enc), src, train=False)
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
    emit, trans = model.dag_logprobs(dec, enc, src, train=train)
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

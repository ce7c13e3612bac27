"""The directed acyclic graph of a DA-Transformer: its likelihood, best path and decoders.

Huang et al. 2022, "Directed Acyclic Transformer for Non-Autoregressive Machine Translation"
(DA-Transformer); Shao et al. 2022, "Viterbi Decoding of Directed Acyclic Transformer for
Non-Autoregressive Machine Translation".

A graph has ``L`` vertices (``graph_length`` of them real, the rest padding). Vertex ``i``
emits a token with log-probs ``emit[i, :]`` and moves to a later vertex ``j > i`` with
log-prob ``trans[i, j]``. A path ``a = (a_1 < ... < a_m)`` starts at vertex 0 and ends at the
last vertex ``graph_length - 1``; it emits the sequence ``y_1..y_m`` with

    log P(y, a) = sum_i emit[a_i, y_i] + sum_{i<m} trans[a_i, a_(i+1)].

Conventions for every function here:
- ``emit_logprobs [B, L, V]``, ``trans_logprobs [B, L, L]``, ``graph_lengths [B]``.
- Only ``trans[i, j]`` with ``i < j < graph_length`` and ``emit[i]`` with
  ``i < graph_length`` are read; other entries may hold anything (-inf, NaN) and get a zero
  gradient. The log-probs are used as given: the model normalizes its transitions.
- Computation is in float32 (float64 if given), in log space; LOG_ZERO (finite) marks
  impossible moves, so gradients stay finite even for examples with no path.
- Decoders return ``tokens [B, L]`` (right-padded with ``pad_id``) and ``lengths [B]``; the
  output includes the tokens of the first and the last vertex.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from attnlab.ops.lattice import LOG_ZERO, NO_PATH, backtrack


def dag_log_likelihood(
    emit_logprobs: jax.Array,
    trans_logprobs: jax.Array,
    targets: jax.Array,
    graph_lengths: jax.Array,
    target_lengths: jax.Array,
) -> jax.Array:
    """``log sum_a P(y, a)`` over every path ``a`` of ``target_length`` vertices, ``[B]``.

    The training objective of Huang et al. 2022. With ``e[j, i] = emit[j, y_i]`` the forward
    variables are

        f_1(j) = e[0, 1] if j == 0 else log 0
        f_i(j) = e[j, i] + logsumexp_{k < j} (f_(i-1)(k) + trans[k, j])

    and the result is ``f_M(graph_length - 1)`` with ``M = target_length``: O(M L^2) per
    example. ``targets [B, M]`` are right-padded (entries at ``i >= target_length`` are
    ignored). The result is -inf where no path fits (``target_length`` outside
    ``1..graph_length``, or one vertex with ``target_length != 1``, or every path has
    probability 0); the gradient of such an entry is 0, never NaN. Each step of the recursion
    is rematerialized in the backward pass (``jax.checkpoint``), so memory is O(M B L).
    """
    e, trans = _target_emissions(
        emit_logprobs, trans_logprobs, targets, graph_lengths, target_lengths
    )

    @jax.checkpoint
    def step(f, e_i):
        f = jax.nn.logsumexp(f[:, :, None] + trans, axis=1) + e_i
        f = jnp.maximum(f, LOG_ZERO)
        return f, f

    f1 = _first_vertex(e[:, :, 0])
    _, rest = lax.scan(step, f1, jnp.moveaxis(e[:, :, 1:], 2, 0))
    forward = jnp.concatenate([f1[None], rest], axis=0)  # [M, B, L]
    value = _read(forward, target_lengths - 1, graph_lengths - 1)
    fits = (target_lengths >= 1) & (value > NO_PATH)
    return jnp.where(fits, value, -jnp.inf)


def dag_best_alignment(
    emit_logprobs: jax.Array,
    trans_logprobs: jax.Array,
    targets: jax.Array,
    graph_lengths: jax.Array,
    target_lengths: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The most probable path for the given target: ``argmax_a log P(y, a)``.

    The recursion of ``dag_log_likelihood`` with max for logsumexp, plus back-pointers
    (Viterbi). Glancing training on a DAG reveals ``y_i`` at vertex ``a_i`` of this path
    (Huang et al. 2022 train with glancing, after Qian et al. 2021). Returns
    ``vertices [B, M]`` int32, the vertex of each target token (-1 at ``i >= target_length``
    and for examples with no path), and ``scores [B]``, ``log P(y, a*)`` (-inf where no path
    fits). No gradient is meant to flow through it.
    """
    e, trans = _target_emissions(
        emit_logprobs, trans_logprobs, targets, graph_lengths, target_lengths
    )
    f1 = _first_vertex(e[:, :, 0])
    forward, pointers = _viterbi_forward(f1, jnp.moveaxis(e[:, :, 1:], 2, 0), trans)
    last = target_lengths - 1
    value = _read(forward, last, graph_lengths - 1)
    fits = (target_lengths >= 1) & (value > NO_PATH)
    vertices = backtrack(pointers, jnp.where(fits, last, -1), graph_lengths - 1)
    return vertices, jnp.where(fits, value, -jnp.inf)


def dag_greedy(
    emit_logprobs: jax.Array,
    trans_logprobs: jax.Array,
    graph_lengths: jax.Array,
    *,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Greedy decoding (Huang et al. 2022, inference).

    From vertex 0, repeat until the last vertex: emit ``argmax_v emit[i, v]``, then move to
    ``argmax_{i < j < graph_length} trans[i, j]``. Token and transition are chosen separately.
    """
    tokens = jnp.argmax(emit_logprobs, axis=-1)
    return _walk(tokens, trans_logprobs, graph_lengths, pad_id)


def dag_lookahead(
    emit_logprobs: jax.Array,
    trans_logprobs: jax.Array,
    graph_lengths: jax.Array,
    *,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Lookahead decoding (Huang et al. 2022, inference).

    As ``dag_greedy``, but the next vertex maximizes the transition and the next token jointly:
    ``j = argmax_{i < j < graph_length} (trans[i, j] + max_v emit[j, v])``; vertex ``j`` then
    emits ``argmax_v emit[j, v]``.
    """
    best_emit = jnp.max(emit_logprobs, axis=-1)
    tokens = jnp.argmax(emit_logprobs, axis=-1)
    return _walk(tokens, trans_logprobs + best_emit[:, None, :], graph_lengths, pad_id)


def dag_viterbi(
    emit_logprobs: jax.Array,
    trans_logprobs: jax.Array,
    graph_lengths: jax.Array,
    *,
    alpha: float = 1.0,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Joint Viterbi decoding with length normalization (Shao et al. 2022).

    Finds the output and path ``argmax_{m, a, y} log P(y, a) / m^alpha`` over paths of ``m``
    vertices from vertex 0 to the last vertex. For a fixed ``m`` the best tokens are the
    per-vertex argmax, so with ``s(j) = max_v emit[j, v]``

        g_1(j) = s(0) if j == 0 else log 0
        g_m(j) = s(j) + max_{k < j} (g_(m-1)(k) + trans[k, j])

    gives the best path of every length at once, ``g_m(graph_length - 1)``, in O(L^3). The
    chosen length maximizes ``g_m(graph_length - 1) / m^alpha``. Log-probs are negative, so a
    larger ``alpha`` favours longer outputs; ``alpha = 0`` takes the single most probable path
    of any length. ``alpha = 1`` (the per-token average) is Shao et al.'s default length
    penalty beta = 1 (``decode_viterbibeta`` in thu-coai/DA-Transformer).
    """
    emit = _float(emit_logprobs)
    best_emit = _mask_vertices(jnp.max(emit, axis=-1), graph_lengths)
    tokens = jnp.argmax(emit, axis=-1).astype(jnp.int32)
    trans = _mask_edges(_float(trans_logprobs), graph_lengths)
    num_vertices = emit.shape[1]
    g1 = _first_vertex(best_emit)
    steps = jnp.broadcast_to(best_emit[None], (num_vertices - 1, *best_emit.shape))
    forward, pointers = _viterbi_forward(g1, steps, trans)
    batch = jnp.arange(emit.shape[0])
    end = forward[
        :, batch, jnp.maximum(graph_lengths - 1, 0)
    ]  # [L, B]: best path of m = 1..L vertices
    m = jnp.arange(1, num_vertices + 1, dtype=emit.dtype)[:, None]
    normalized = jnp.where(end > NO_PATH, end / m**alpha, -jnp.inf)
    found = (graph_lengths >= 1) & jnp.any(end > NO_PATH, axis=0)
    lengths = jnp.where(found, jnp.argmax(normalized, axis=0) + 1, 0)
    vertices = backtrack(pointers, lengths - 1, graph_lengths - 1)
    out = jnp.take_along_axis(tokens, jnp.maximum(vertices, 0), axis=1)
    return jnp.where(vertices >= 0, out, pad_id), lengths.astype(jnp.int32)


def _walk(tokens, scores, graph_lengths, pad_id):
    """Follow ``next[i] = argmax_j scores[i, j]`` (over ``i < j < graph_length``) from 0."""
    num_vertices = tokens.shape[1]
    # Invalid moves get -inf, strictly below any allowed one (clipped at LOG_ZERO), so the
    # argmax always moves forward inside the graph and the walk ends within L steps.
    allowed = _mask_edges(_float(scores), graph_lengths, fill=-jnp.inf)
    after = jnp.argmax(allowed, axis=-1)  # [B, L]
    last = graph_lengths - 1

    def step(carry, _):
        here, done = carry
        token = jnp.take_along_axis(tokens, here[:, None], axis=1)[:, 0]
        out = jnp.where(done, pad_id, token)
        stop = done | (here == last)
        there = jnp.take_along_axis(after, here[:, None], axis=1)[:, 0]
        return (jnp.where(stop, here, there), stop), (out, ~done)

    start = (jnp.zeros_like(graph_lengths), graph_lengths < 1)
    _, (out, emitted) = lax.scan(step, start, None, length=num_vertices)
    return out.T.astype(jnp.int32), emitted.sum(axis=0).astype(jnp.int32)


def _viterbi_forward(first, steps, trans):
    """Max-product recursion: all states ``[S, B, L]`` and back-pointers ``[S, B, L]``."""

    def step(g, e_i):
        scores = g[:, :, None] + trans
        g = jnp.maximum(jnp.max(scores, axis=1) + e_i, LOG_ZERO)
        return g, (g, jnp.argmax(scores, axis=1).astype(jnp.int32))

    _, (rest, pointers) = lax.scan(step, first, steps)
    forward = jnp.concatenate([first[None], rest], axis=0)
    pointers = jnp.concatenate([jnp.zeros_like(pointers[:1]), pointers], axis=0)
    return forward, pointers


def _target_emissions(emit_logprobs, trans_logprobs, targets, graph_lengths, target_lengths):
    """``e[b, j, i] = emit[b, j, y_i]`` [B, L, M] and the masked transitions [B, L, L]."""
    emit = _float(emit_logprobs)
    batch, num_vertices, _ = emit.shape
    index = jnp.broadcast_to(targets[:, None, :], (batch, num_vertices, targets.shape[1]))
    e = jnp.take_along_axis(emit, index.astype(jnp.int32), axis=2)
    in_target = jnp.arange(targets.shape[1])[None, None, :] < target_lengths[:, None, None]
    e = _mask_vertices(jnp.where(in_target, e, LOG_ZERO), graph_lengths)
    return e, _mask_edges(_float(trans_logprobs), graph_lengths)


def _first_vertex(e):
    """Paths of one vertex start at vertex 0: ``e`` at vertex 0, log 0 elsewhere. [B, L]."""
    return jnp.where(jnp.arange(e.shape[1])[None, :] == 0, e, LOG_ZERO)


def _mask_edges(trans, graph_lengths, fill=LOG_ZERO):
    """``trans[b, i, j]`` clipped at LOG_ZERO where ``i < j < graph_length``, ``fill`` elsewhere."""
    num_vertices = trans.shape[-1]
    i = jnp.arange(num_vertices)[:, None]
    j = jnp.arange(num_vertices)[None, :]
    forward = (i < j)[None] & (j[None] < graph_lengths[:, None, None])
    return jnp.where(forward, jnp.maximum(jnp.where(forward, trans, 0.0), LOG_ZERO), fill)


def _mask_vertices(x, graph_lengths):
    """``x [B, L, ...]`` at real vertices (``j < graph_length``), LOG_ZERO elsewhere."""
    j = jnp.arange(x.shape[1]).reshape((1, -1) + (1,) * (x.ndim - 2))
    lengths = graph_lengths.reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.maximum(jnp.where(j < lengths, x, LOG_ZERO), LOG_ZERO)


def _read(forward, step, state):
    """``forward[step[b], b, state[b]]`` with indices clipped into range."""
    num_steps, batch, num_states = forward.shape
    step = jnp.clip(step, 0, num_steps - 1)
    state = jnp.clip(state, 0, num_states - 1)
    return forward[step, jnp.arange(batch), state]


def _float(x):
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))

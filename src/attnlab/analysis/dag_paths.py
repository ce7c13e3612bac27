"""How peaked a trained DA-Transformer's graph is along its greedy path: where the next token
is near-certain, greedy, lookahead and Viterbi decoding (``attnlab.ops.dag``) have little to
disagree about, however spread the transitions over vertices are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax.numpy as jnp
import numpy as np

from attnlab.nat.dag import graph_logprobs
from attnlab.specials import PAD


def greedy_path_confidence(
    emit_logprobs: np.ndarray, trans_logprobs: np.ndarray, graph_lengths: np.ndarray
) -> tuple[list[float], list[float], list[float]]:
    """Along the greedy paths of a batch (``emit_logprobs [B, L, V]``, ``trans_logprobs
    [B, L, L]``, ``graph_lengths [B]``; rows with an empty graph are skipped): the
    probability of each transition taken, of each next token (the transitions to every
    vertex whose most probable token is the taken vertex's), and of each emitted token."""
    emit = np.exp(np.asarray(emit_logprobs, np.float64))
    trans = np.exp(np.asarray(trans_logprobs, np.float64))
    best = emit.argmax(axis=-1)
    taken, next_token, emitted = [], [], []
    for b, length in enumerate(np.asarray(graph_lengths)):
        here = 0
        while 0 <= here < length:
            emitted.append(float(emit[b, here].max()))
            if here == length - 1:
                break
            after = here + 1 + int(np.argmax(trans[b, here, here + 1 : length]))
            taken.append(float(trans[b, here, after]))
            same = best[b, here + 1 : length] == best[b, after]
            next_token.append(float(trans[b, here, here + 1 : length][same].sum()))
            here = after
    return taken, next_token, emitted


def dag_confidence(model: Any, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
    """``greedy_path_confidence`` over the valid rows of ``batches``, summarized: the mean
    probability of the transition taken and of the next token, the share of steps where each
    is at least 0.9, and the mean probability of the emitted token."""
    taken, next_token, emitted = paths = [], [], []
    for batch in batches:
        valid = np.flatnonzero(np.asarray(batch["valid"], bool))
        src = jnp.asarray(np.asarray(batch["inputs"])[valid])
        dec = model.canvas_tokens(src)
        emit, trans = graph_logprobs(model, dec, model.encode(src), src)
        found = greedy_path_confidence(emit, trans, np.asarray(jnp.sum(dec != PAD, axis=-1)))
        for kept, new in zip(paths, found, strict=True):
            kept += new
    if not taken:
        raise ValueError("no DAG path with a transition in these batches")
    return {
        "transition_mean": float(np.mean(taken)),
        "transition_at_least_0.9": float(np.mean(np.asarray(taken) >= 0.9)),
        "next_token_mean": float(np.mean(next_token)),
        "next_token_at_least_0.9": float(np.mean(np.asarray(next_token) >= 0.9)),
        "emission_mean": float(np.mean(emitted)),
        "steps": len(taken),
    }

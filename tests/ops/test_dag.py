"""Claims about the DA-Transformer graph (ops/dag.py), each against brute force over paths.

Every function is exercised under ``jax.jit``.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from attnlab.ops import dag

L, V = 6, 3  # tiny graphs: at most 2^4 paths per (start, end), V^6 token sequences

# Jitted once: every test batch below has the same shapes, so each compiles a single time.
log_likelihood = jax.jit(dag.dag_log_likelihood)
best_alignment = jax.jit(dag.dag_best_alignment)
viterbi = jax.jit(dag.dag_viterbi, static_argnames=("alpha", "pad_id"))


def random_graph(seed: int, graph_lengths, junk: float = -np.inf):
    """log_softmax emissions [B, L, V] and transitions [B, L, L] normalized over i < j < G.

    Entries the contract says are ignored (j <= i, j >= G, rows i >= G - 1 and emissions of
    vertices >= G) hold ``junk``.
    """
    rng = np.random.default_rng(seed)
    batch = len(graph_lengths)
    emit = rng.normal(size=(batch, L, V)) * 2.0
    emit = emit - np.log(np.exp(emit).sum(-1, keepdims=True))
    trans = np.full((batch, L, L), junk)
    for b, g in enumerate(graph_lengths):
        emit[b, g:] = junk
        for i in range(g - 1):
            row = rng.normal(size=g - i - 1) * 2.0
            trans[b, i, i + 1 : g] = row - np.log(np.exp(row).sum())
    return emit, trans


def paths(g: int, m: int):
    """Every strictly increasing vertex sequence of m vertices from 0 to g - 1."""
    if m == 1:
        return [(0,)] if g == 1 else []
    if m < 1 or g < m:
        return []
    return [(0, *mid, g - 1) for mid in itertools.combinations(range(1, g - 1), m - 2)]


def path_score(emit, trans, path, tokens) -> float:
    score = sum(emit[a, y] for a, y in zip(path, tokens))
    return score + sum(trans[a, b] for a, b in zip(path[:-1], path[1:]))


def brute_log_likelihood(emit, trans, target, g) -> float:
    scores = [path_score(emit, trans, p, target) for p in paths(g, len(target))]
    return float(np.logaddexp.reduce(scores)) if scores else -np.inf


# A batch mixing graph lengths 1..L and every target length, including ones that cannot fit.
CASES = [(g, m) for g in range(1, L + 1) for m in range(0, min(g + 2, L) + 1)]


def batch_of_cases(seed: int, cases):
    rng = np.random.default_rng(seed + 7)
    graph_lengths = np.array([g for g, _ in cases])
    target_lengths = np.array([m for _, m in cases])
    targets = rng.integers(0, V, size=(len(cases), L))
    return graph_lengths, target_lengths, targets


@given(st.integers(0, 2**16))
def test_log_likelihood_is_the_sum_over_every_path_in_a_mixed_batch(seed):
    graph_lengths, target_lengths, targets = batch_of_cases(seed, CASES)
    emit, trans = random_graph(seed, graph_lengths)
    got = np.asarray(log_likelihood(emit, trans, targets, graph_lengths, target_lengths))
    for b, (g, m) in enumerate(CASES):
        want = brute_log_likelihood(emit[b], trans[b], targets[b, :m], g)
        if np.isfinite(want):
            np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-5, err_msg=f"{g=} {m=}")
        else:
            assert got[b] == -np.inf, (g, m, got[b])


def test_no_path_is_minus_infinity():
    cases = [(3, 4), (3, 0), (3, 1), (1, 2), (5, 6)]
    graph_lengths, target_lengths, targets = batch_of_cases(0, cases)
    emit, trans = random_graph(0, graph_lengths)
    got = log_likelihood(emit, trans, targets, graph_lengths, target_lengths)
    assert np.all(np.asarray(got) == -np.inf)


def test_one_vertex_graph_emits_its_one_token():
    emit, trans = random_graph(3, [1])
    got = log_likelihood(emit, trans, np.array([[2]]), np.array([1]), np.array([1]))
    np.testing.assert_allclose(got, emit[:, 0, 2], rtol=1e-6)


def masked_loss(emit, trans, targets, graph_lengths, target_lengths):
    ll = dag.dag_log_likelihood(emit, trans, targets, graph_lengths, target_lengths)
    return -jnp.sum(jnp.where(jnp.isfinite(ll), ll, 0.0))


masked_loss_grad = jax.jit(jax.grad(masked_loss, argnums=(0, 1)))


@given(st.integers(0, 2**16))
def test_gradient_is_finite_and_counts_expected_emissions_and_moves(seed):
    # d ll / d emit[j, y_i] is the posterior probability that vertex j emits y_i, so the
    # gradient sums to target_length over emissions and target_length - 1 over transitions;
    # an example with no path contributes nothing (and no NaN).
    graph_lengths, target_lengths, targets = batch_of_cases(seed, CASES)
    emit, trans = random_graph(seed, graph_lengths)
    grad_emit, grad_trans = masked_loss_grad(
        jnp.asarray(emit, jnp.float32),
        jnp.asarray(trans, jnp.float32),
        targets,
        graph_lengths,
        target_lengths,
    )
    assert np.all(np.isfinite(grad_emit)) and np.all(np.isfinite(grad_trans))
    fits = np.array(
        [
            np.isfinite(brute_log_likelihood(emit[b], trans[b], targets[b, :m], g))
            for b, (g, m) in enumerate(CASES)
        ]
    )
    np.testing.assert_allclose(-grad_emit.sum((1, 2)), np.where(fits, target_lengths, 0), atol=1e-4)
    np.testing.assert_allclose(
        -grad_trans.sum((1, 2)), np.where(fits, target_lengths - 1, 0), atol=1e-4
    )


def test_gradient_of_the_raw_sum_is_finite_even_with_no_path():
    cases = [(4, 3), (3, 5), (2, 1)]
    graph_lengths, target_lengths, targets = batch_of_cases(1, cases)
    emit, trans = random_graph(1, graph_lengths)
    fn = lambda e, t: dag.dag_log_likelihood(e, t, targets, graph_lengths, target_lengths).sum()
    grads = jax.jit(jax.grad(fn, argnums=(0, 1)))(emit, trans)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_ignored_entries_may_be_nan_without_changing_value_or_gradient():
    graph_lengths, target_lengths, targets = batch_of_cases(2, CASES)
    emit, trans = random_graph(2, graph_lengths)
    emit_nan, trans_nan = random_graph(2, graph_lengths, junk=np.nan)
    args = (targets, graph_lengths, target_lengths)
    np.testing.assert_array_equal(
        log_likelihood(emit, trans, *args), log_likelihood(emit_nan, trans_nan, *args)
    )
    grads = masked_loss_grad(emit_nan, trans_nan, *args)
    assert all(np.all(np.isfinite(g)) for g in grads)


@given(st.integers(0, 2**16))
def test_best_alignment_is_the_brute_force_best_path(seed):
    graph_lengths, target_lengths, targets = batch_of_cases(seed, CASES)
    emit, trans = random_graph(seed, graph_lengths)
    vertices, scores = best_alignment(emit, trans, targets, graph_lengths, target_lengths)
    vertices, scores = np.asarray(vertices), np.asarray(scores)
    for b, (g, m) in enumerate(CASES):
        candidates = paths(g, m)
        if not candidates:
            assert scores[b] == -np.inf and np.all(vertices[b] == -1)
            continue
        best = max(candidates, key=lambda p: path_score(emit[b], trans[b], p, targets[b, :m]))
        assert tuple(vertices[b, :m]) == best and np.all(vertices[b, m:] == -1)
        want = path_score(emit[b], trans[b], best, targets[b, :m])
        np.testing.assert_allclose(scores[b], want, rtol=1e-5, atol=1e-5)


def brute_viterbi(emit, trans, g, alpha):
    """Best (tokens) by score / m^alpha over every path and every token sequence on it."""
    best, best_tokens = -np.inf, ()
    for m in range(1, g + 1):
        for p in paths(g, m):
            for tokens in itertools.product(range(V), repeat=m):
                score = path_score(emit, trans, p, tokens) / m**alpha
                if score > best:
                    best, best_tokens = score, tokens
    return best_tokens


@given(st.integers(0, 2**16), st.sampled_from([0.0, 1.0, 2.0]))
def test_viterbi_is_the_brute_force_best_normalized_output(seed, alpha):
    graph_lengths = np.array([1, 2, 4, 5, 6])
    emit, trans = random_graph(seed, graph_lengths, junk=np.nan)
    tokens, lengths = map(np.asarray, viterbi(emit, trans, graph_lengths, alpha=alpha, pad_id=-7))
    for b, g in enumerate(graph_lengths):
        want = brute_viterbi(emit[b], trans[b], g, alpha)
        assert lengths[b] == len(want)
        assert tuple(tokens[b, : len(want)]) == want and np.all(tokens[b, len(want) :] == -7)


def walk_reference(emit, trans, g, lookahead):
    """A plain loop: emit the argmax token, move to the best later vertex, stop at g - 1."""
    out, i = [], 0
    while True:
        out.append(int(np.argmax(emit[i])))
        if i == g - 1:
            return out
        scores = trans[i, i + 1 : g] + (emit[i + 1 : g].max(-1) if lookahead else 0.0)
        i = i + 1 + int(np.argmax(scores))


@given(st.integers(0, 2**16), st.booleans())
def test_greedy_and_lookahead_follow_the_loop_definition(seed, lookahead):
    graph_lengths = np.array([1, 2, 3, 6, 6, 5])
    emit, trans = random_graph(seed, graph_lengths, junk=np.nan)
    decoder = dag.dag_lookahead if lookahead else dag.dag_greedy
    tokens, lengths = map(np.asarray, jax.jit(decoder)(emit, trans, graph_lengths))
    for b, g in enumerate(graph_lengths):
        want = walk_reference(emit[b], trans[b], g, lookahead)
        assert lengths[b] == len(want) and tuple(tokens[b, : len(want)]) == tuple(want)
        assert np.all(tokens[b, len(want) :] == 0)


def test_lookahead_can_differ_from_greedy():
    # From vertex 0, the likeliest move is to vertex 1, but vertex 1 has a flat emission while
    # vertex 2 is sure of its token: lookahead takes 0 -> 2, greedy 0 -> 1 -> 2.
    emit = np.log(np.array([[[0.9, 0.1], [0.5, 0.5], [0.01, 0.99]]]))
    trans = np.full((1, 3, 3), -np.inf)
    trans[0, 0, 1:] = np.log([0.6, 0.4])
    trans[0, 1, 2] = 0.0
    greedy = jax.jit(dag.dag_greedy)(emit, trans, np.array([3]))
    lookahead = jax.jit(dag.dag_lookahead)(emit, trans, np.array([3]))
    assert int(greedy[1][0]) == 3 and int(lookahead[1][0]) == 2
    assert list(np.asarray(lookahead[0][0, :2])) == [0, 1]

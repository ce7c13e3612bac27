"""How certain a DAG's greedy path is: against a hand-built graph, against ops.dag.dag_greedy's
own walk, and on a tiny trained-shape model end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnlab.analysis.at_vs_nat import dag_paths
from attnlab.analysis.dag_paths import dag_confidence, greedy_path_confidence
from attnlab.analysis.report import error_lines
from attnlab.nat.dag import graph_logprobs
from attnlab.nn.config import model_config
from attnlab.ops import dag
from attnlab.train.models import build_model


def test_a_hand_built_graph():
    # 4 vertices, tokens 0/1: vertices 1 and 2 both emit token 1, so the 0.6/0.4 split of the
    # first transition is over the same next token.
    emit = np.log(np.array([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.5, 0.5]]]))
    trans = np.full((1, 4, 4), 1e-9)
    trans[0, 0, 1:] = [0.6, 0.4, 1e-9]
    trans[0, 1, 2:] = [0.25, 0.75]
    trans[0, 2, 3] = 1.0
    taken, next_token, emitted = greedy_path_confidence(emit, np.log(trans), np.array([4]))
    # path 0 -> 1 -> 3
    np.testing.assert_allclose(taken, [0.6, 0.75])
    np.testing.assert_allclose(next_token, [1.0, 0.75], atol=1e-8)  # 0->{1,2}: both token 1
    np.testing.assert_allclose(emitted, [0.9, 0.8, 0.5])


def test_an_empty_graph_is_skipped_and_a_one_vertex_graph_has_no_transition():
    emit = np.log(np.full((2, 3, 2), 0.5))
    trans = np.log(np.full((2, 3, 3), 1 / 3))
    taken, next_token, emitted = greedy_path_confidence(emit, trans, np.array([0, 1]))
    assert taken == [] and next_token == [] and emitted == [0.5]


@pytest.mark.parametrize("seed", range(5))
def test_the_path_is_dag_greedys_path(seed):
    """As many emitted tokens as ops.dag.dag_greedy outputs, on random graphs."""
    rng = np.random.default_rng(seed)
    b, n, v = 4, 9, 5
    emit = jax.nn.log_softmax(jnp.asarray(rng.normal(size=(b, n, v))), axis=-1)
    trans = jax.nn.log_softmax(jnp.asarray(rng.normal(size=(b, n, n)) * 3), axis=-1)
    lengths = jnp.asarray(rng.integers(1, n + 1, size=b))
    _, out_lengths = dag.dag_greedy(emit, trans, lengths, pad_id=-1)
    taken, next_token, emitted = greedy_path_confidence(
        np.asarray(emit), np.asarray(trans), np.asarray(lengths)
    )
    assert len(emitted) == int(out_lengths.sum())
    assert len(taken) == len(next_token) == int(out_lengths.sum()) - b
    assert all(t <= s + 1e-9 for t, s in zip(taken, next_token, strict=True))


def _tiny_dag():
    """The default model sizes (2+2 layers, d_model 64), a DAG over 12 tokens."""
    cfg = model_config(name="nat", nat_recipe="dag", length_mode="none", dropout=0.0)
    cfg.update(vocab_size=12, target_vocab_size=12, max_len=8, upsample=2)
    return build_model(cfg, rngs=nnx.Rngs(0))


SRC = np.array([[5, 6, 7, 0], [8, 9, 0, 0], [5, 5, 5, 5]], dtype=np.int32)


def test_dag_confidence_summarizes_a_tiny_model_over_valid_rows():
    model, src = _tiny_dag(), SRC
    valid = np.array([True, True, False])
    summary = dag_confidence(model, [{"inputs": src, "valid": valid}])
    dec = np.asarray(model.canvas_tokens(jnp.asarray(src[:2])))
    emit, trans = graph_logprobs(
        model, jnp.asarray(dec), model.encode(jnp.asarray(src[:2])), jnp.asarray(src[:2])
    )
    taken, next_token, emitted = greedy_path_confidence(emit, trans, (dec != 0).sum(-1))
    assert summary["steps"] == len(taken) and 2 <= len(taken) <= (6 - 1) + (4 - 1)
    assert summary["transition_mean"] == pytest.approx(np.mean(taken))
    assert summary["next_token_mean"] == pytest.approx(np.mean(next_token))
    assert summary["emission_mean"] == pytest.approx(np.mean(emitted))
    assert summary["transition_mean"] <= summary["next_token_mean"] + 1e-9


def test_the_report_line_names_each_dag_model_and_skips_the_others():
    model = _tiny_dag()
    batch = {"inputs": SRC, "valid": np.array([True, True, True])}
    rows = [{"model": "at"}, {"model": "nat_dag"}, {"model": "nat_dag"}]
    found = dag_paths({"at": object(), "nat_dag": model}, [batch, batch], rows, max_examples=2)
    assert list(found) == ["nat_dag"]
    assert found["nat_dag"]["examples"] == 3  # whole batches, up to the first past the limit
    assert found["nat_dag"] == {**dag_confidence(model, [batch]), "examples": 3}
    lines = [line for line in error_lines({"systems": [], "dag_paths": found}) if "`" in line]
    assert len(lines) == 1 and lines[0].startswith("- `nat_dag` along its greedy path (")
    assert "over 3 test examples" in lines[0]

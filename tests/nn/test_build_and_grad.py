"""Claim: every option builds, and its model runs forward and backward inside ``jax.jit``.

The train step is the functional one the trainer uses: ``nnx.split`` into (graphdef, params,
rest), merge inside a jitted ``jax.value_and_grad``, with dropout and BatchNorm in training
mode. Every parameter must receive a finite, nonzero gradient (it is wired in), and dropout
must draw from the RNG streams kept in the state.

An XLA compile of a tiny train step takes seconds on the shared CPU, so instead of one model
per option value and model type, the eight cases below form a covering design: every value
of attention, norm, norm_position, position, input, length_mode and decoder_input appears at
least once, every model type appears twice, and the pairs the configs reject
(linear+alibi, conv+rotary/alibi) are avoided.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from nn_testing import tiny_model, tokens

from attnlab.nn.config import (
    ATTENTIONS,
    DECODER_INPUTS,
    INPUTS,
    LENGTH_MODES,
    NORM_POSITIONS,
    NORMS,
    POSITIONS,
)
from attnlab.specials import MASK

CASES = [
    ("seq2seq", dict(attention="softmax", norm="layer", norm_position="pre",
                     position="sinusoidal", input="embedding", tie_embeddings=False)),
    ("nat", dict(attention="relu", norm="batch", norm_position="post", position="learned",
                 input="one_hot", length_mode="offset", decoder_input="mask")),
    ("tagger", dict(attention="relu_over_length", norm="rms", norm_position="pre",
                    position="rotary", input="embedding")),
    ("classifier", dict(attention="sigmoid", norm="none", norm_position="post",
                        position="alibi", input="one_hot")),
    ("seq2seq", dict(attention="linear", norm="batch", norm_position="post", position="rotary",
                     input="one_hot")),
    ("nat", dict(attention="chunked", norm="rms", norm_position="pre", position="alibi",
                 input="embedding", length_mode="absolute", decoder_input="copy_source")),
    ("tagger", dict(attention="local", norm="layer", norm_position="post", position="none",
                    input="embedding")),
    ("classifier", dict(attention="conv", norm="batch", norm_position="pre",
                        position="learned", input="embedding")),
    ("seq2seq", dict(attention="sigmoid_minus_log_length", norm="rms", norm_position="post",
                     position="alibi", input="embedding")),
]  # fmt: skip


@pytest.mark.parametrize(
    "key, values",
    [
        ("attention", ATTENTIONS),
        ("norm", NORMS),
        ("norm_position", NORM_POSITIONS),
        ("position", POSITIONS),
        ("input", INPUTS),
        # "none" (no length head) belongs to the recipes of tests/nn/test_nat_recipes.py.
        ("length_mode", tuple(m for m in LENGTH_MODES if m != "none")),
        ("decoder_input", DECODER_INPUTS),
    ],
)
def test_the_cases_cover_every_option_value(key, values):
    assert {o[key] for _, o in CASES if key in o} == set(values)


def _xent(logits, labels):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, labels[..., None], axis=-1).mean()


def _loss(model, name, batch):
    src, tgt = batch["src"], batch["tgt"]
    if name == "seq2seq":
        return _xent(model(src, tgt, train=True), tgt)
    if name == "nat":
        dec = jnp.where(tgt != 0, MASK, 0)
        logits, length_logits = model(src, dec, train=True)
        classes = model.length_classes((tgt != 0).sum(1), (src != 0).sum(1))
        return _xent(logits, tgt) + _xent(length_logits, classes)
    if name == "tagger":
        return _xent(model(src, train=True), batch["tags"])
    return _xent(model(src, train=True), batch["label"])


@pytest.mark.parametrize("name, overrides", CASES, ids=[f"{n}-{o['attention']}" for n, o in CASES])
def test_forward_and_backward_under_jit(name, overrides):
    model = tiny_model(name=name, dropout=0.1, **overrides)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    # Optimization level 0 halves the compile time; the claim is about tracing and shapes.
    @partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def train_step(params, rest, batch):
        def loss_fn(params):
            m = nnx.merge(graphdef, params, rest, copy=True)
            return _loss(m, name, batch), nnx.state(m, nnx.Not(nnx.Param))

        (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return loss, grads, new_rest

    src = tokens(0, [6, 4], 6)
    batch = {
        "src": src,
        "tgt": tokens(1, [5, 3], 5),
        "tags": src % 3,
        "label": np.array([0, 2], np.int32),
    }
    loss, grads, new_rest = train_step(params, rest, batch)
    assert np.isfinite(float(loss))
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), path
        assert np.abs(g).max() > 0, f"no gradient reaches {jax.tree_util.keystr(path)}"
    # Dropout drew from the RNG streams held in the state that the trainer checkpoints.
    counts = [np.asarray(c) for c in jax.tree.leaves(rest.filter(nnx.RngCount))]
    new_counts = [np.asarray(c) for c in jax.tree.leaves(new_rest.filter(nnx.RngCount))]
    assert counts and any(n > c for c, n in zip(counts, new_counts))

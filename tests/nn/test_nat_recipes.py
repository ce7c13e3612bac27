"""Claims about the NAT recipes: they train, they check their options, glancing reveals what
GLAT says, eos_canvas trains on what it decodes, impossible alignments are counted."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from nn_testing import tiny_model, tokens

from attnlab.nat import RECIPES, check_glancing
from attnlab.nat.ctc import blank_id
from attnlab.nat.dag import graph_logprobs
from attnlab.nat.decoding import nat_decode
from attnlab.nat.model import NATSeq2Seq
from attnlab.ops.ctc import ctc_best_alignment
from attnlab.ops.dag import dag_best_alignment
from attnlab.specials import EOS, MASK, PAD

HEADLESS = ("eos_canvas", "ctc", "dag")


def recipe_model(recipe, seed=0, **overrides):
    length_mode = "none" if recipe in HEADLESS else "offset"
    return tiny_model(seed, name="nat", nat_recipe=recipe, length_mode=length_mode, **overrides)


def copy_batch(seed, lengths, width):
    """The copy task: target = source + EOS, right-padded to ``width`` columns."""
    src = tokens(seed, lengths, width)
    tgt = np.zeros((len(lengths), width + 1), np.int32)
    for row, n in enumerate(lengths):
        tgt[row, :n], tgt[row, n] = src[row, :n], EOS
    valid = jnp.ones(len(lengths), bool)
    return {"inputs": jnp.asarray(src), "targets": jnp.asarray(tgt), "valid": valid}


def loss_of(model, batch, ratio=None, key=0):
    stats = model.recipe.loss(model, batch, train=True, key=jax.random.key(key), ratio=ratio)
    loss = stats["loss"][0] / jnp.maximum(stats["loss"][1], 1.0)
    if "length_loss" in stats:
        loss = loss + 0.1 * stats["length_loss"][0] / stats["length_loss"][1]
    return loss, stats


def test_incompatible_options_fail_with_one_line_naming_the_valid_ones():
    cases = [
        (dict(nat_recipe="ctc", length_mode="offset"),
         "model.length_mode 'offset' does not apply to nat_recipe 'ctc'; valid: none"),
        (dict(nat_recipe="cmlm", length_mode="none"),
         "model.length_mode 'none' does not apply to nat_recipe 'cmlm'; valid: absolute, offset"),
        (dict(nat_recipe="vanilla", upsample=2), "model.upsample 2 does not apply to nat_recipe "
         "'vanilla'; valid: 0 (it applies to ctc, dag)"),
        (dict(nat_recipe="dag", length_mode="none", upsample=-1),
         "model.upsample -1 does not apply to nat_recipe 'dag'; valid: 0 or more"),
    ]  # fmt: skip
    for overrides, message in cases:
        with pytest.raises(ValueError) as err:
            tiny_model(name="nat", **overrides)
        assert str(err.value) == message
    with pytest.raises(ValueError) as err:
        check_glancing(RECIPES["cmlm"], True)
    assert (
        str(err.value) == "glancing does not apply to nat_recipe 'cmlm'; valid: vanilla, ctc, dag"
    )
    check_glancing(RECIPES["eos_canvas"], False)  # no glancing is always fine


def _copy_batch(seed):
    """32 random copy examples of 1..8 tokens, built inside jit."""
    lengths = jax.random.randint(jax.random.key(seed), (32,), 1, 9)
    values = jax.random.randint(jax.random.key(seed + 1), (32, 8), 5, 12)
    src = jnp.where(jnp.arange(8)[None] < lengths[:, None], values, PAD)
    tgt = jnp.pad(src, ((0, 0), (0, 1)))
    tgt = jnp.where(jnp.arange(9)[None] == lengths[:, None], EOS, tgt)
    return {"inputs": src, "targets": tgt, "valid": jnp.ones(32, bool)}


MARKED = {"decoder_input": "copy_source", "mark_copies": True}


@pytest.mark.parametrize(
    ("recipe", "options"),
    [(r, {}) for r in RECIPES] + [pytest.param("ctc", MARKED, id="ctc-copy_marks")],
)
def test_every_recipe_trains_under_jit_and_glancing_at_ratio_zero_changes_nothing(recipe, options):
    """One jitted Adam step: every parameter gets a finite, nonzero gradient (the copy marks
    too, where on); where glancing applies, the loss and gradients at ratio 0 equal those
    without glancing; and over 60 steps the loss of the copy task falls by 40% or more."""
    model = recipe_model(recipe, d_model=32, d_ff=64, dropout=0.1, **options)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(3e-3)
    glancing = RECIPES[recipe].glancing

    @jax.jit
    def step(params, rest, opt, seed):
        batch = _copy_batch(seed)

        def loss_fn(params, ratio):
            m = nnx.merge(graphdef, params, rest, copy=True)
            loss = loss_of(m, batch, ratio, key=seed)[0]
            return loss, nnx.state(m, nnx.Not(nnx.Param))

        (loss, new_rest), g = jax.value_and_grad(loss_fn, has_aux=True)(params, None)
        zero = jax.value_and_grad(loss_fn, has_aux=True)(params, jnp.float32(0.0))
        updates, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, updates), new_rest, opt, loss, g, zero

    opt = tx.init(params)
    losses = []
    for seed in range(60):
        params, new_rest, opt, loss, g, ((zero_loss, _), zero_g) = step(params, rest, opt, seed)
        rest = new_rest
        losses.append(float(loss))
        if seed == 0:
            for path, leaf in jax.tree_util.tree_flatten_with_path(g)[0]:
                assert np.all(np.isfinite(leaf)) and np.any(leaf != 0), jax.tree_util.keystr(path)
            if glancing:
                np.testing.assert_allclose(zero_loss, loss, rtol=1e-6)
                for a, b in zip(jax.tree.leaves(zero_g), jax.tree.leaves(g), strict=True):
                    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses[::10]


def _recorded_inputs(monkeypatch):
    """Every decoder-token array the model embeds and its vectors, in call order (jitted or
    not: a ``jax.debug.callback`` hands them to the host)."""
    calls = []
    real = NATSeq2Seq.decoder_inputs

    def spy(self, dec_tokens, src):
        out = real(self, dec_tokens, src)
        record = lambda d, v: calls.append((np.asarray(d), np.asarray(v)))  # noqa: E731
        jax.debug.callback(record, dec_tokens, out, ordered=True)
        return out

    monkeypatch.setattr(NATSeq2Seq, "decoder_inputs", spy)
    return calls


@pytest.mark.parametrize("recipe", ["vanilla", "ctc", "dag"])
def test_glancing_reveals_ceil_ratio_times_errors_references(monkeypatch, recipe):
    model = recipe_model(recipe)
    batch = copy_batch(2, [5, 3, 7, 1], 7)
    src, tgt = batch["inputs"], np.asarray(batch["targets"])
    ratio = 0.5
    calls = _recorded_inputs(monkeypatch)
    _, stats = jax.jit(lambda: loss_of(model, batch, jnp.float32(ratio)))()
    jax.effects_barrier()
    (first, _), (second, _) = calls
    enc = model.encode(src)
    revealed = second != first
    if recipe == "vanilla":  # references: the gold tokens at their positions
        guess = np.asarray(model.decode(jnp.asarray(first), enc, src)).argmax(-1)
        refs, where = tgt, tgt != PAD
        errors = ((guess != refs) & where).sum(1)
        np.testing.assert_array_equal(second[revealed], tgt[revealed])
    elif recipe == "ctc":  # references: the labels of the best CTC alignment
        logp = jax.nn.log_softmax(model.decode(jnp.asarray(first), enc, src), axis=-1)
        labels = np.where(tgt == EOS, PAD, tgt)
        frames, lengths = (first != PAD).sum(1), (labels != PAD).sum(1)
        refs = np.asarray(ctc_best_alignment(logp, frames, labels, lengths, blank_id(model))[0])
        errors = ((np.asarray(logp).argmax(-1) != refs) & (first != PAD)).sum(1)
        np.testing.assert_array_equal(second[revealed], refs[revealed])
    else:  # references: the target tokens at the vertices of the best path
        emit, trans = graph_logprobs(model, jnp.asarray(first), enc, src)
        vertices = np.asarray(
            dag_best_alignment(emit, trans, tgt, (first != PAD).sum(1), (tgt != 0).sum(1))[0]
        )
        guess = np.take_along_axis(np.asarray(emit).argmax(-1), np.maximum(vertices, 0), 1)
        errors = ((guess != tgt) & (vertices >= 0)).sum(1)
        for row in range(len(tgt)):
            on_path = {int(v): int(t) for v, t in zip(vertices[row], tgt[row]) if v >= 0}
            for v in np.flatnonzero(revealed[row]):
                assert second[row, v] == on_path[v]
    want = [math.ceil(np.float32(ratio) * np.float32(e)) for e in errors]
    np.testing.assert_array_equal(revealed.sum(1), want)
    assert errors.sum() > 0 and float(stats["glanced"][0]) == sum(want)
    assert np.all(first[first != PAD] == MASK)


def test_eos_canvas_trains_on_the_canvas_and_inputs_it_decodes(monkeypatch):
    model = recipe_model("eos_canvas", decoder_input="copy_source")
    calls = _recorded_inputs(monkeypatch)
    for width in (7, 9):  # two length buckets, narrower than the canvas
        batch = copy_batch(3, [5, 2, 7], width)
        jax.jit(lambda b: model.recipe.loss(model, b, train=True, key=jax.random.key(0)))(batch)
    src = copy_batch(3, [5, 2, 7], 7)["inputs"]
    nat_decode(model, src, "eos_cut")  # jitted
    nat_decode(model, src, "eos_cut", max_len=4)
    jax.effects_barrier()
    assert len(calls) == 4
    for dec, vectors in calls:
        assert dec.shape == (3, model.max_len) and np.all(dec == MASK)
        np.testing.assert_array_equal(vectors, calls[0][1])


@pytest.mark.parametrize("recipe", ["ctc", "dag"])
def test_targets_that_cannot_fit_the_canvas_are_counted_and_the_loss_stays_finite(recipe):
    model = recipe_model(recipe, upsample=1)
    src = jnp.asarray(tokens(4, [2, 4], 4))
    tgt = jnp.asarray([[5, 6, 7, 8, EOS], [5, 6, EOS, 0, 0]], jnp.int32)
    batch = {"inputs": src, "targets": tgt, "valid": jnp.ones(2, bool)}
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(params):
        return loss_of(nnx.merge(graphdef, params, rest), batch)

    (loss, stats), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
    assert float(stats[f"{recipe}_impossible"][0]) == 1.0  # a count: row 0 only
    assert np.isfinite(float(loss)) and 0 < float(loss) < 100
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(grads))
    assert float(stats["loss"][1]) == (2.0 if recipe == "ctc" else 3.0)  # row 1's tokens only

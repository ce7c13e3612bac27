"""A new NAT recipe is one definition and one ``register`` call: the recipe below lives only
in this file, and it trains through the normal entry, decodes, resumes from its checkpoint,
and refuses a strategy that is not its own in one line naming its own."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnlab.nat import RECIPES, register
from attnlab.nat.base import Recipe, one_candidate
from attnlab.nat.decoding import nat_decode
from attnlab.ops.losses import token_stats
from attnlab.specials import EOS, MASK, PAD
from attnlab.train import loop, restore_model, train_and_evaluate
from attnlab.train.config import load_config_file

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
SYNTHETIC = CONFIGS / "synthetic.py:nat,copy,eos_canvas,quick"


class SourceLength(Recipe):
    """For the copy task: the output is as long as the source plus its EOS. The canvas is
    ``max_len`` wide, MASK at the first ``source_length + 1`` positions; every such position
    is trained by cross-entropy, and ``argmax`` reads it, the EOS last."""

    name = "source_length"
    strategies = ("argmax",)
    default_strategy = "argmax"

    def canvas(self, model, src):
        used = (src != PAD).sum(axis=1) + 1
        inside = jnp.arange(model.max_len)[None, :] < used[:, None]
        return jnp.where(inside, MASK, PAD).astype(jnp.int32)

    def stats(self, model, enc, src, targets, valid, *, train, key, ratio, smoothing):
        dec = self.canvas(model, src)
        targets = jnp.pad(targets, ((0, 0), (0, model.max_len - targets.shape[1])))
        logits = model.decode(dec, enc, src, train=train)
        return token_stats(logits, targets, (dec != PAD) & valid[:, None], smoothing)

    def candidates(self, model, src, ref_lengths, strategy, *, canvas, trim):
        dec = self.canvas(model, src)
        logp = jax.nn.log_softmax(model.decode(dec, model.encode(src), src), axis=-1)
        lengths = (dec != PAD).sum(axis=1)
        pos = jnp.arange(dec.shape[1])[None, :]
        tokens = jnp.argmax(logp.at[..., jnp.array([PAD, EOS, MASK])].set(-jnp.inf), axis=-1)
        tokens = jnp.where(pos == lengths[:, None] - 1, EOS, tokens)
        tokens = jnp.where(pos < lengths[:, None], tokens, PAD).astype(jnp.int32)
        scores = jnp.zeros(lengths.shape, jnp.float32)
        return one_candidate(tokens, lengths, scores)


@pytest.fixture(scope="module")
def recipe():
    registered = register(SourceLength())
    yield registered
    RECIPES.pop(registered.name)  # the other tests see the five recipes of src/ only


def quick(tmp_path_factory, **overrides):
    config = load_config_file(SYNTHETIC)
    config.model.update(nat_recipe="source_length", length_mode="none")
    config.data.data_dir = str(tmp_path_factory.getbasetemp() / "tfds")
    steps = dict(log_every_steps=3, eval_every_steps=6, checkpoint_every_steps=3)
    config.update(**steps, eval_decode_examples=16, max_to_keep=5, **overrides)
    return config


def count_batches(monkeypatch) -> list[int]:
    """The number of training batches the next runs fetch, one count per run."""
    real = loop.make_train_iterator
    counts = []

    def make(data_cfg, **kwargs):
        iterator = real(data_cfg, **kwargs)
        counts.append(0)
        original_next = type(iterator).__next__

        class Counted(type(iterator)):
            def __next__(self):
                counts[-1] += 1
                return original_next(self)

        iterator.__class__ = Counted
        return iterator

    monkeypatch.setattr(loop, "make_train_iterator", make)
    return counts


def states(model):
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in
            jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))}  # fmt: skip


def test_a_recipe_defined_here_trains_decodes_resumes_and_refuses_other_strategies(
    recipe, tmp_path_factory, compilation_cache_dir, monkeypatch
):
    straight, resumed = tmp_path_factory.mktemp("straight"), tmp_path_factory.mktemp("resumed")
    counts = count_batches(monkeypatch)
    result = train_and_evaluate(quick(tmp_path_factory, num_train_steps=6), straight)
    assert result["step"] == 6 and 0.0 <= result["eval_wer"] <= 1.0
    train_and_evaluate(quick(tmp_path_factory, num_train_steps=3), resumed)
    train_and_evaluate(quick(tmp_path_factory, num_train_steps=6), resumed)
    assert counts[1:] == [3, 3]  # the second run of `resumed` took steps 4..6 only
    model, config, *_ = restore_model(resumed)
    assert model.recipe is recipe and config.nat_strategy == ""
    reference = states(restore_model(straight)[0])
    got = states(model)
    assert got.keys() == reference.keys()
    for key in got:
        np.testing.assert_array_equal(got[key], reference[key], err_msg=key)

    src = jnp.asarray([[5, 6, 7, 0], [8, 0, 0, 0]], jnp.int32)
    out = nat_decode(model, src, "argmax")
    np.testing.assert_array_equal(out.lengths, [4, 2])
    for row, n in zip(np.asarray(out.tokens), [4, 2], strict=True):
        assert (
            row[n - 1] == EOS
            and np.all(row[n:] == PAD)
            and not np.isin(row[: n - 1], [PAD, EOS, MASK]).any()
        )

    with pytest.raises(ValueError) as err:
        nat_decode(model, src, "length_pred")
    assert str(err.value) == (
        "NAT strategy 'length_pred' does not apply to nat_recipe 'source_length'; valid: argmax"
    )
    with pytest.raises(ValueError) as err:
        train_and_evaluate(
            quick(tmp_path_factory, nat_strategy="ctc"), tmp_path_factory.mktemp("x")
        )
    assert "\n" not in str(err.value) and str(err.value).endswith("valid: argmax")

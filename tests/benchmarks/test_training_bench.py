"""The training benchmark compares like with like: the PyTorch reference of
``benchmarks/training.py`` is our Seq2Seq (same parameters, same function) and takes the same
optimizer step (the CPU cotangent buffer of the train step is tested in tests/train/test_steps.py).

Tiny config (``g2p.py:at,quick``: d_model 32, 1+1 layers, batch 32). Skipped without torch,
which only the ``bench`` extra installs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import common, torch_reference, training  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    config = common.g2p_config("at,quick")
    config.model.dropout = 0.0  # so that both frameworks compute the same step exactly
    graphdef, state, optimizer = training.create_train_state(config)
    batch = common.synthetic_batch(0, config.batch_size, 8, common.G2P_VOCAB)
    return config, graphdef, state, optimizer, batch


def test_reference_has_our_parameters_and_computes_our_loss(tiny):
    config, graphdef, state, _, batch = tiny
    torch.manual_seed(0)
    reference = torch_reference.TorchSeq2Seq(config.model)
    ours = training.param_count(state["params"])
    assert ours == reference.num_params()
    # The one difference the count leaves out: torch's key biases, held at zero like ours.
    key_biases = [
        a.in_proj_bias[config.model.d_model : 2 * config.model.d_model]
        for a in reference.attentions
    ]
    assert len(key_biases) == 3 and all(float(b.abs().max()) == 0.0 for b in key_biases)
    # Independent initialisations give different losses; copied weights give the same one.
    diff = torch_reference.loss_difference(
        graphdef, state, reference, batch, config.label_smoothing
    )
    assert diff < 1e-5
    assert 0.5 < float(
        torch_reference.torch_loss(torch.zeros(2, 3, 44), torch.ones(2, 3).long(), 0.1)
    )


def test_reference_takes_our_optimizer_step(tiny):
    config, graphdef, state, optimizer, batch = tiny
    reference = torch_reference.TorchSeq2Seq(config.model)
    torch_reference.copy_params(state["params"].to_pure_dict(), reference)
    torch_metrics = torch_reference.torch_trainer(reference, config)(
        torch.from_numpy(batch["inputs"]).long(), torch.from_numpy(batch["targets"]).long()
    )
    step = training.make_train_step(graphdef, optimizer, config)
    state = jax.tree.map(jnp.copy, state)  # the step donates its input
    new_state, metrics = step(state, {k: jnp.asarray(v) for k, v in batch.items()}, 1)
    assert float(metrics["loss"]) == pytest.approx(torch_metrics["loss"], rel=1e-5)
    assert float(metrics["grad_norm"]) == pytest.approx(torch_metrics["grad_norm"], rel=1e-4)
    # After the update (clipping, AdamW, first scheduled rate) the weights still agree.
    moved = jax.tree.map(jnp.copy, new_state["params"]).to_pure_dict()
    table = reference.tgt_embed.weight.detach().numpy()
    ours = np.asarray(moved["decoder"]["embedder"]["tokens"]["embed"]["embedding"])
    before = np.asarray(tiny[2]["params"]["decoder"]["embedder"]["tokens"]["embed"]["embedding"])
    assert np.abs(ours - before).max() > 1e-5  # the step moved them
    np.testing.assert_allclose(ours, table, atol=1e-6)
    d = config.model.d_model
    assert all(float(a.in_proj_bias[d : 2 * d].abs().max()) == 0.0 for a in reference.attentions)

"""The CPU cotangent buffer of the train step changes the compiled program, never the numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.nn.config import model_config
from attnlab.train import steps
from attnlab.train.config import base_config
from attnlab.train.resolve import create_train_state


def test_cotangent_buffer_is_the_identity_with_the_same_gradient():
    x = jax.random.normal(jax.random.key(0), (3, 5, 4))

    def f(x, buffered):
        h = steps.buffer_cotangent(x) if buffered else x
        return jnp.sum(jnp.sin(h) * h + h * h)

    np.testing.assert_array_equal(steps.buffer_cotangent(x), x)
    grads = [jax.jit(jax.grad(f), static_argnums=1)(x, b) for b in (False, True)]
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)
    assert "while" in str(jax.make_jaxpr(jax.grad(f), static_argnums=1)(x, True))


@pytest.fixture(scope="module")
def tiny():
    config = base_config()
    config.model = model_config(
        vocab_size=12,
        target_vocab_size=12,
        d_model=16,
        num_heads=2,
        d_ff=32,
        num_encoder_layers=2,
        num_decoder_layers=2,
        dropout=0.0,
        max_len=8,
    )
    rng = np.random.default_rng(0)
    batch = {
        "inputs": rng.integers(5, 12, (4, 6)).astype(np.int32),
        "targets": np.concatenate([rng.integers(5, 12, (4, 5)), np.full((4, 1), 2)], 1),
        "valid": np.ones(4, bool),
    }
    return config, {
        k: jnp.asarray(v, jnp.int32 if k != "valid" else bool) for k, v in batch.items()
    }


def _step(config, batch, monkeypatch, buffered):
    if not buffered:
        monkeypatch.setattr(steps, "buffer_residual_gradients", lambda model: None)
    graphdef, state, optimizer = create_train_state(config)
    train_step = steps.make_train_step(graphdef, optimizer, config)
    program = str(jax.make_jaxpr(train_step)(state, batch, jnp.int32(1)))
    new_state, metrics = train_step(state, batch, jnp.int32(1))
    return program, new_state, metrics


def test_the_train_step_buffers_every_residual_stream_on_cpu_with_the_same_result(
    tiny, monkeypatch
):
    config, batch = tiny
    program, state, metrics = _step(config, batch, monkeypatch, buffered=True)
    plain_program, plain_state, plain_metrics = _step(config, batch, monkeypatch, buffered=False)
    assert jax.default_backend() == "cpu"
    # 2 encoder layers x 2 sub-layers + 2 decoder layers x 3 sub-layers, one loop each.
    assert program.count("while[") == 10 and "while[" not in plain_program
    np.testing.assert_allclose(metrics["grad_norm"], plain_metrics["grad_norm"], rtol=1e-6)
    for ours, plain in zip(
        jax.tree.leaves(state["params"]), jax.tree.leaves(plain_state["params"])
    ):
        np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=1e-7)

"""The learning-rate schedules and the optimizer match their closed forms and optax."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attnlab.train.config import base_config
from attnlab.train.optim import decay_mask, learning_rate_schedule, make_optimizer


def _config(**kw):
    config = base_config()
    config.update({"learning_rate": 2e-3, "warmup_steps": 10, "num_train_steps": 50, **kw})
    return config


def _reference(name, s, lr=2e-3, w=10, n=50):
    if s < w:
        return lr * s / w
    if name == "rsqrt":
        return lr * math.sqrt(w / s)
    if name == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (s - w) / (n - w))))
    return lr


@pytest.mark.parametrize("name", ["rsqrt", "cosine", "constant"])
def test_schedule_matches_closed_form_at_every_step(name):
    schedule = jax.jit(learning_rate_schedule(_config(schedule=name)))
    got = np.array([schedule(c) for c in range(60)])
    want = np.array([_reference(name, c + 1) for c in range(60)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=2e-9)  # float32 cos near 0


def test_warmup_rises_linearly_and_peaks_at_the_learning_rate():
    schedule = learning_rate_schedule(_config(schedule="rsqrt"))
    rates = np.array([schedule(c) for c in range(20)])
    assert np.all(np.diff(rates[:10]) > 0)
    assert rates.max() == pytest.approx(2e-3)
    assert int(np.argmax(rates)) == 9  # 1-based step 10 = warmup_steps


def test_no_warmup_starts_at_the_peak_for_cosine():
    schedule = learning_rate_schedule(_config(schedule="cosine", warmup_steps=0))
    assert float(schedule(0)) == pytest.approx(2e-3 * 0.5 * (1 + math.cos(math.pi / 50)))


def test_optimizer_equals_optax_clip_then_adamw():
    config = _config(schedule="constant", warmup_steps=0, weight_decay=0.1, grad_clip=0.5)
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros((2,))}
    grads = {"w": jnp.full((3, 2), 2.0), "b": jnp.ones((2,))}
    ours = make_optimizer(config)
    ref = optax.chain(
        optax.clip_by_global_norm(0.5),
        optax.adamw(
            2e-3, b1=0.9, b2=0.98, eps=1e-9, weight_decay=0.1, mask={"w": True, "b": False}
        ),
    )
    u1, _ = ours.update(grads, ours.init(params), params)
    u2, _ = ref.update(grads, ref.init(params), params)
    for k in params:
        np.testing.assert_allclose(u1[k], u2[k], rtol=1e-6)


def test_weight_decay_skips_vectors():
    mask = decay_mask({"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2), "scale": jnp.ones(2)})
    assert mask == {"kernel": True, "bias": False, "scale": False}

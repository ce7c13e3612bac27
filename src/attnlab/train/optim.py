"""The optimizer: AdamW, a learning-rate schedule with warmup, and global-norm clipping.

Schedules take optax's update count ``c`` (0 for the first update) and use the 1-based step
``s = c + 1``, peak rate ``lr`` and ``w`` warmup steps:

- warmup (every schedule):  ``lr * s / w``                      for ``s < w``
- ``rsqrt`` ("Attention Is All You Need", eq. 3 up to scale):  ``lr * sqrt(w / max(s, w))``
- ``cosine``:  ``lr * (1 + cos(pi * min(1, (s - w) / (N - w)))) / 2`` for ``N`` total steps
- ``constant``:  ``lr``
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from attnlab.choices import check_choice
from attnlab.train.config import SCHEDULES


def learning_rate_schedule(config: ml_collections.ConfigDict) -> Callable[[jax.Array], jax.Array]:
    """The schedule named by ``config.schedule``, as a function of optax's update count."""
    peak = float(config.learning_rate)
    warmup = int(config.warmup_steps)
    total = int(config.num_train_steps)
    name = check_choice("schedule", config.schedule, SCHEDULES)

    def schedule(count: jax.Array) -> jax.Array:
        s = jnp.asarray(count, jnp.float32) + 1.0
        if name == "rsqrt":
            decayed = peak * jnp.sqrt(warmup / jnp.maximum(s, warmup))
        elif name == "cosine":
            progress = jnp.clip((s - warmup) / max(total - warmup, 1), 0.0, 1.0)
            decayed = peak * 0.5 * (1.0 + jnp.cos(math.pi * progress))
        else:  # constant
            decayed = jnp.full_like(s, peak)
        if warmup == 0:
            return decayed
        return jnp.where(s < warmup, peak * s / warmup, decayed)

    return schedule


def decay_mask(params: object) -> object:
    """Weight decay applies to matrices (kernels, embeddings), not to biases or norm scales."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Global-norm clipping (if ``grad_clip > 0``), then AdamW on the scheduled rate."""
    adamw = optax.adamw(
        learning_rate_schedule(config),
        b1=config.adam_b1,
        b2=config.adam_b2,
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
        mask=decay_mask,
    )
    if config.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip), adamw)
    return adamw

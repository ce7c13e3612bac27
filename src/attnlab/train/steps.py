"""The train and eval steps: pure functions of the state pytree, jitted once.

The model is split once, ``graphdef, params, rest = nnx.split(model, nnx.Param, ...)``. The
train state is the plain dict ``{"params", "rest", "opt"}``: parameters, the other module
state (BatchNorm statistics, dropout RNG streams) and the optax state. The graphdef is closed
over (static), so each step compiles once and the state is what optax, orbax and
``jax.sharding`` see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx

from attnlab.train.losses import Stats, compute_stats, mean

TrainState = dict[str, Any]


def init_state(model: nnx.Module, optimizer: optax.GradientTransformation):
    """Split ``model`` into (graphdef, train state) with a fresh optimizer state."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, {"params": params, "rest": rest, "opt": optimizer.init(params)}


def merge_model(graphdef: Any, state: TrainState) -> nnx.Module:
    """The module that ``state`` describes."""
    return nnx.merge(graphdef, state["params"], state["rest"])


def make_train_step(
    graphdef: Any,
    optimizer: optax.GradientTransformation,
    config: ml_collections.ConfigDict,
    *,
    state_sharding: jax.sharding.Sharding | None = None,
) -> Callable[[TrainState, Mapping[str, jax.Array], jax.Array], tuple[TrainState, dict]]:
    """``train_step(state, batch, step) -> (new_state, metrics)``, jitted, state donated.

    ``step`` is the 1-based step being taken; with ``config.seed`` it gives the key of any
    randomness the loss needs (NAT ``uniform`` masking), so a resumed run draws the same keys.
    ``metrics`` holds per-step means and the global norms of the gradient and of the new
    parameters, so the host can tell a finite loss with an exploded update from a good step.
    """

    def train_step(state: TrainState, batch: Mapping[str, jax.Array], step: jax.Array):
        key = jax.random.fold_in(jax.random.key(config.seed), step)

        def loss_fn(params):
            model = nnx.merge(graphdef, params, state["rest"], copy=True)
            loss, stats = compute_stats(model, batch, config, train=True, key=key)
            _, _, new_rest = nnx.split(model, nnx.Param, ...)
            return loss, (stats, new_rest)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (stats, new_rest)), grads = grad_fn(state["params"])
        updates, new_opt = optimizer.update(grads, state["opt"], state["params"])
        new_params = optax.apply_updates(state["params"], updates)
        metrics = {name: mean(stat) for name, stat in stats.items()}
        metrics["loss"] = loss
        metrics["grad_norm"] = optax.global_norm(grads)
        metrics["param_norm"] = optax.global_norm(new_params)
        return {"params": new_params, "rest": new_rest, "opt": new_opt}, metrics

    shardings = {} if state_sharding is None else {"out_shardings": (state_sharding, None)}
    return jax.jit(train_step, donate_argnums=0, **shardings)


def make_eval_step(
    graphdef: Any, config: ml_collections.ConfigDict
) -> Callable[[TrainState, Mapping[str, jax.Array]], Stats]:
    """``eval_step(state, batch) -> stats``: teacher-forced (sum, count) pairs, no smoothing."""

    def eval_step(state: TrainState, batch: Mapping[str, jax.Array]) -> Stats:
        model = merge_model(graphdef, state)
        _, stats = compute_stats(model, batch, config, train=False)
        return stats

    return jax.jit(eval_step)


def add_stats(total: dict[str, list[float]] | None, stats: Stats) -> dict[str, list[float]]:
    """Accumulate (sum, count) pairs on the host, in float64."""
    stats = jax.device_get(stats)
    total = {} if total is None else total
    for name, (s, c) in stats.items():
        acc = total.setdefault(name, [0.0, 0.0])
        acc[0] += float(s)
        acc[1] += float(c)
    return total


def stat_means(total: Mapping[str, list[float]]) -> dict[str, float]:
    """``sum / count`` of every accumulated statistic."""
    return {name: s / max(c, 1.0) for name, (s, c) in total.items()}


def is_finite(value: Any) -> bool:
    """True if every element of ``value`` is finite."""
    return bool(np.all(np.isfinite(np.asarray(value))))

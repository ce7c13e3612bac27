"""The train and eval steps: pure functions of the state pytree, jitted once.

The model is split once, ``graphdef, params, rest = nnx.split(model, nnx.Param, ...)``. The
train state is the plain dict ``{"params", "rest", "opt"}``: parameters, the other module
state (BatchNorm statistics, dropout RNG streams) and the optax state. The graphdef is closed
over (static), so each step compiles once and the state is what optax, orbax and
``jax.sharding`` see.

On CPU the train step routes the residual stream of every layer through ``buffer_cotangent``,
a compiler workaround that changes the speed of the backward pass and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from attnlab.train.losses import Stats, compute_stats, mean

TrainState = dict[str, Any]


@jax.custom_vjp
def _buffered(x: jax.Array) -> jax.Array:
    return x


def _buffered_bwd(_, g: jax.Array) -> tuple[jax.Array]:
    # A loop the compiler cannot unroll (its trip count, 1 unless g starts with a NaN or Inf,
    # is data), whose body is an exact identity: fusion stops at the loop, so g is one buffer.
    once = jnp.isfinite(g.reshape(-1)[0]).astype(jnp.int32)
    return (jax.lax.fori_loop(0, once, lambda _, c: c * once.astype(c.dtype), g),)


_buffered.defvjp(lambda x: (x, None), _buffered_bwd)


def buffer_cotangent(x: jax.Array) -> jax.Array:
    """The identity, whose gradient is computed once into a buffer: a CPU speed fix only.

    The gradient of the residual stream is a running sum over every later sub-layer, all of
    it elementwise, and XLA:CPU fuses that whole sum into each of its consumers (the
    transposes that feed weight gradients, the LayerNorm-backward reductions), recomputing
    it there: O(layers^2) work. ``lax.optimization_barrier`` would not stop it: XLA:CPU
    removes barriers before fusion. The measured speed-up (0.854x the step):
    docs/training_profile.md.
    """
    return x if x.size == 0 else _buffered(x)


def buffer_residual_gradients(model: nnx.Module) -> None:
    """On the CPU backend, put ``buffer_cotangent`` on the residual stream of every layer
    (``residual_hook``); elsewhere (GPU, TPU) leave the model as it is."""
    if jax.default_backend() == "cpu":
        model.set_attributes(residual_hook=buffer_cotangent, raise_if_not_found=False)


def use_compute_dtype(model: nnx.Module, compute_dtype: str) -> None:
    """Run ``model``'s layers in ``compute_dtype`` (mixed precision); parameters stay float32.

    flax's ``Linear``, ``Embed``, ``Conv`` and ``BatchNorm`` cast their float32 parameters and
    inputs to their ``dtype`` for the computation, so with ``bfloat16`` every matmul and the
    activations it makes are bfloat16 while the parameters (and the gradients, which arrive
    through the casts) stay float32. Our norms compute in the dtype of what they are given,
    promoted by their float32 scale; the loss is computed in float32 (``ops.losses``).
    """
    if compute_dtype != "float32":
        model.set_attributes(dtype=jnp.dtype(compute_dtype), raise_if_not_found=False)


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
    randomness the loss needs (CMLM masking, glancing positions), so a resumed run draws the
    same keys; it also sets the glancing ratio.
    ``metrics`` holds per-step means and the global norms of the gradient and of the new
    parameters, so the host can tell a finite loss with an exploded update from a good step.
    """

    def train_step(state: TrainState, batch: Mapping[str, jax.Array], step: jax.Array):
        key = jax.random.fold_in(jax.random.key(config.seed), step)

        def loss_fn(params):
            model = nnx.merge(graphdef, params, state["rest"], copy=True)
            buffer_residual_gradients(model)
            use_compute_dtype(model, config.get("compute_dtype", "float32"))
            loss, stats = compute_stats(model, batch, config, train=True, key=key, step=step)
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
        use_compute_dtype(model, config.get("compute_dtype", "float32"))
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

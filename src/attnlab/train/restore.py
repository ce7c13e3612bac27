"""``restore(workdir)``: a trained model back from its workdir, for decoding.

The one way a finished (or running) training comes back: ``attnlab.load`` and
``experiments/predict.py`` (through ``restore``), the AT-vs-NAT experiment (with checkpoint
averaging), the benchmarks and the tests (through ``restore_model``, the same without the
step). Nothing is written: a read-only ``Checkpointer`` leaves an
unreadable step where it is. Each refusal names its problem in one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging
from flax import nnx

from attnlab.train.checkpoint import Checkpointer
from attnlab.train.resolve import train_state_template
from attnlab.train.steps import merge_model
from attnlab.train.workdir import CONFIG_FILE, with_defaults


def _training_config(workdir: Path) -> dict | None:
    """``workdir``'s ``config.json`` if it is a training run's (it has model and data)."""
    try:
        raw = json.loads((workdir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict) or "data" not in raw:
        return None
    return raw


def _trained_config(workdir: Path) -> ml_collections.ConfigDict:
    if not workdir.is_dir():
        raise FileNotFoundError(f"workdir {workdir} does not exist")
    raw = _training_config(workdir)
    if raw is None:
        # An experiment's directory (make demo's runs/demo) holds one training workdir a model.
        inside = sorted(str(d) for d in workdir.iterdir() if d.is_dir() and _training_config(d))
        if inside:
            raise FileNotFoundError(
                f"{workdir} is not a training workdir; it holds: {', '.join(inside)}"
            )
        raise FileNotFoundError(
            f"{workdir} is not a training workdir: no readable {CONFIG_FILE} with model and data "
            "(experiments/train.py writes one)"
        )
    return ml_collections.ConfigDict(with_defaults(raw))


def _mean(*leaves: jax.Array) -> jax.Array:
    """The mean of floating-point leaves (in float32); an integer leaf comes from the first."""
    if len(leaves) == 1 or not jnp.issubdtype(leaves[0].dtype, jnp.floating):
        return leaves[0]
    total = sum(leaf.astype(jnp.float32) for leaf in leaves)
    return (total / len(leaves)).astype(leaves[0].dtype)


def restore(
    workdir: str | os.PathLike, *, step: int | None = None, average_last: int = 1
) -> tuple[nnx.Module, ml_collections.ConfigDict, int]:
    """``(model, the config that trained it, step)``: the newest readable checkpoint, or ``step``.

    ``average_last=N`` averages the floating-point weights (and running statistics) of the
    last N readable checkpoints up to that one, as Vaswani et al. (2017) did with their last
    5; integer leaves come from the newest, and ``step`` is the newest's. Fewer than N
    readable: the ones there are, with a warning.
    """
    workdir = Path(workdir)
    if average_last < 1:
        raise ValueError(f"average_last must be at least 1; got {average_last}")
    config = _trained_config(workdir)
    directory = workdir / "checkpoints"
    steps = sorted(int(p.name) for p in directory.glob("*") if p.name.isdigit())
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {directory}: train first, or wait for a save")
    if step is not None and step not in steps:
        raise FileNotFoundError(
            f"no checkpoint of step {step} in {directory}; valid: {', '.join(map(str, steps))}"
        )
    graphdef, template = train_state_template(config)  # shapes only: nothing compiles
    ckpt = Checkpointer(directory, max_to_keep=len(steps), read_only=True)
    states, newest = [], None
    try:
        for candidate in reversed([s for s in steps if step is None or s <= step]):
            if len(states) == average_last:
                break
            restored = ckpt.restore(
                template, model_config=config.model.to_dict(), only_step=candidate
            )
            if restored is None and candidate == step:
                raise FileNotFoundError(f"checkpoint of step {step} in {directory} is unreadable")
            if restored is not None:
                states.append(restored[0])
                newest = int(restored[1]["step"]) if newest is None else newest
    finally:
        ckpt.close()
    if not states:
        raise FileNotFoundError(f"no readable checkpoint in {directory}")
    if len(states) < average_last:
        logging.warning("averaging %d checkpoints, not %d: no more", len(states), average_last)
    averaged = {key: jax.tree.map(_mean, *(s[key] for s in states)) for key in ("params", "rest")}
    return merge_model(graphdef, averaged), config, newest


def restore_model(
    workdir: str | os.PathLike, *, step: int | None = None, average_last: int = 1
) -> tuple[nnx.Module, ml_collections.ConfigDict]:
    """``restore`` without the step: ``(model, the config that trained it)``."""
    model, config, _ = restore(workdir, step=step, average_last=average_last)
    return model, config

"""From a task config to a runnable one: the checks, the dataset's sizes; then the model.

``attnlab.train.config.check_config`` fills in every default and makes every check that
needs no data. ``fit_to_data`` then sets the vocabulary and label sizes and the length bound
from the dataset and makes the checks that need it: the model fits the task (``seq2seq``/
``nat`` on sequence pairs, ``tagger`` on tagging, ``classifier`` on classification) and the
batch fits the training split. ``resolve_config`` is the two in a row; its result is what
``DIR/config.json`` records.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx

from attnlab.data import dataset_info
from attnlab.nat import get_recipe
from attnlab.train.config import check_config
from attnlab.train.models import build_model
from attnlab.train.optim import make_optimizer
from attnlab.train.steps import init_state

TASK_OF_MODEL = {
    "seq2seq": "seq2seq",
    "nat": "seq2seq",
    "tagger": "tagging",
    "classifier": "classification",
}


def resolve_config(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, Any]:
    """(the resolved config, the dataset's ``DatasetInfo``) of a task config."""
    return fit_to_data(check_config(config))


def fit_to_data(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, Any]:
    """(``config`` with the dataset's sizes set, its ``DatasetInfo``) of a checked config
    (``check_config``'s), after the checks that need the data: one-line ValueErrors."""
    model = config.model
    info = dataset_info(config.data)
    if info.task != TASK_OF_MODEL[model.name]:
        valid = [m for m, t in TASK_OF_MODEL.items() if t == info.task]
        raise ValueError(
            f"model.name {model.name!r} cannot train on the {info.task} dataset "
            f"{config.data.name!r}; valid: {', '.join(valid)}"
        )
    train_size = int(info.split_sizes.get("train", 0))
    if config.batch_size > train_size:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the {train_size} training examples "
            f"of {config.data.name!r}; valid: 1 to {train_size}"
        )
    # Positions and NAT length classes must cover the data's length bound. An eos_canvas
    # NAT's fixed canvas is max_len wide in training and decoding: exactly that bound, not a
    # wider default (G2P: 32, not 64; a wider canvas only costs time).
    needed = max(int(info.max_len), int(info.max_target_len))
    fixed_canvas = model.name == "nat" and get_recipe(model.nat_recipe).fixed_canvas
    if model.max_len < needed or fixed_canvas:
        model.max_len = needed
    model.vocab_size = len(info.src_vocab)
    if info.task == "seq2seq":
        model.target_vocab_size = len(info.tgt_vocab)
    else:
        model.num_classes = int(info.num_classes)
    return config, info


def build(config: ml_collections.ConfigDict) -> tuple[nnx.Module, optax.GradientTransformation]:
    """The model (built eagerly from ``config.seed``) and the optimizer of a resolved config."""
    return build_model(config.model, rngs=nnx.Rngs(config.seed)), make_optimizer(config)


def _state_factory(config: ml_collections.ConfigDict):
    """``(graphdef, optimizer, create)``: ``create()`` makes the train state from the seed."""
    optimizer = make_optimizer(config)

    def create() -> dict[str, Any]:
        model = build_model(config.model, rngs=nnx.Rngs(config.seed))
        return init_state(model, optimizer)[1]

    abstract_model = nnx.eval_shape(lambda: build_model(config.model, rngs=nnx.Rngs(config.seed)))
    return nnx.split(abstract_model, nnx.Param, ...)[0], optimizer, create


def create_train_state(
    config: ml_collections.ConfigDict, sharding: Any = None
) -> tuple[Any, dict[str, Any], optax.GradientTransformation]:
    """``(graphdef, train state, optimizer)`` of a resolved config, initialised from its seed.

    The model and optimizer state are created inside one ``jax.jit`` (placed by ``sharding``:
    one sharding, a pytree of them, or a function from the abstract state to either):
    one compile instead of one per initialiser op, and no unsharded copy on the host.
    """
    graphdef, optimizer, create = _state_factory(config)
    if callable(sharding) and not isinstance(sharding, jax.sharding.Sharding):
        sharding = sharding(jax.eval_shape(create))
    state = jax.jit(create, out_shardings=sharding)()
    return graphdef, state, optimizer


def train_state_template(config: ml_collections.ConfigDict) -> tuple[Any, dict[str, Any]]:
    """``(graphdef, a template of the train state)`` to restore a checkpoint into, computed
    from shapes only (nothing compiles, nothing is allocated): each array is a
    ``jax.ShapeDtypeStruct`` on this process's first device, and each RNG key a placeholder
    key of the default implementation (the one ``nnx.Rngs`` makes), which the restore
    overwrites."""
    graphdef, _, create = _state_factory(config)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def leaf(x: jax.ShapeDtypeStruct) -> Any:
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.eval_shape(jax.random.key_data, x)
            return jax.random.wrap_key_data(np.zeros(data.shape, data.dtype))
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device)

    return graphdef, jax.tree.map(leaf, jax.eval_shape(create))

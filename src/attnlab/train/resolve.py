"""From a task config to a runnable one: defaults, dataset sizes, checks; then the model.

``check_config`` makes every check that needs no data (the sweep runner makes them for every
run before any starts). ``resolve_config`` then fills every model key missing from
``config.model`` with its default, sets the vocabulary and label sizes from the dataset, and
checks that the model fits the task (``seq2seq``/``nat`` on sequence pairs, ``tagger`` on
tagging, ``classifier`` on classification). The result is what ``DIR/config.json`` records.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx

from attnlab.data import data_config, dataset_info
from attnlab.nat import check_options, get_recipe
from attnlab.nn.config import model_config, validate
from attnlab.train.config import base_config, validate_config
from attnlab.train.models import build_model
from attnlab.train.optim import make_optimizer
from attnlab.train.steps import init_state

TASK_OF_MODEL = {
    "seq2seq": "seq2seq",
    "nat": "seq2seq",
    "tagger": "tagging",
    "classifier": "classification",
}


def _check_keys(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict) -> None:
    unknown = sorted(set(config.keys()) - set(reference.keys()))
    if unknown:
        raise ValueError(
            f"unknown config key {unknown[0]!r}; valid: {', '.join(sorted(reference.keys()))}"
        )


def check_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` with every key's default filled in, after every check that needs no data.

    Keys, training values, model choices, the NAT recipe with its options and strategy
    (``check_nat``) and the data keys: the first
    problem is a one-line ValueError.
    """
    config = ml_collections.ConfigDict(config.to_dict())
    _check_keys(config, base_config())
    merged = base_config()
    merged.update(config)
    config = merged
    validate_config(config)
    config.model = model_config(**config.model.to_dict())
    validate(config.model)
    check_nat(config, config.model)
    config.data = data_config(**config.data.to_dict())
    return config


def resolve_config(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, Any]:
    """Return (the resolved config, the dataset's ``DatasetInfo``)."""
    config = check_config(config)  # every check that needs no data runs before the data is built
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
    validate(model)
    check_nat(config, model)
    config.model = model
    return config, info


def check_nat(config: ml_collections.ConfigDict, model: ml_collections.ConfigDict) -> None:
    """A NAT's recipe against its options: length mode and upsample (the model), glancing,
    and the decoding strategy (one-line ValueErrors naming the valid choices). It fills in
    ``model.upsample`` when 0, so that ``config.json`` records the factor used."""
    if model.name == "nat":
        check_options(model, glancing=bool(config.glancing), strategy=config.nat_strategy)


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

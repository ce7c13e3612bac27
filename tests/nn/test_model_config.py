"""Claims about model configs: every key has a default, and bad choices fail loudly."""

import pytest
from flax import nnx
from nn_testing import tiny_config

from attnlab.nat import RECIPES
from attnlab.nn import model_config
from attnlab.nn.config import (
    ATTENTIONS,
    DECODER_INPUTS,
    INPUTS,
    LENGTH_MODES,
    MODEL_NAMES,
    NORM_POSITIONS,
    NORMS,
    POSITIONS,
)
from attnlab.train.models import build_model

INTERFACE_KEYS = {
    "name", "vocab_size", "target_vocab_size", "num_classes", "d_model", "num_heads", "d_ff",
    "num_encoder_layers", "num_decoder_layers", "dropout", "attention_dropout", "attention",
    "norm", "norm_position", "position", "input", "max_len", "conv_kernel", "local_window",
    "chunk_size", "norm_eps", "bn_momentum", "tie_embeddings", "length_mode", "decoder_input",
    "pooling", "nat_recipe", "upsample", "mark_copies",
}  # fmt: skip


def test_model_config_has_every_documented_key():
    assert set(model_config().keys()) == INTERFACE_KEYS
    assert model_config(d_model=8).d_model == 8


def test_unknown_config_key_is_rejected():
    with pytest.raises(ValueError, match="d_modle"):
        model_config(d_modle=8)


@pytest.mark.parametrize(
    "key, choices",
    [
        ("name", MODEL_NAMES),
        ("attention", ATTENTIONS),
        ("norm", NORMS),
        ("norm_position", NORM_POSITIONS),
        ("position", POSITIONS),
        ("input", INPUTS),
        ("length_mode", LENGTH_MODES),
        ("decoder_input", DECODER_INPUTS),
        ("nat_recipe", tuple(RECIPES)),  # checked by the NAT, from the registry
        ("pooling", ("mean",)),
    ],
)
def test_unknown_choice_names_key_value_and_every_valid_value(key, choices):
    cfg = tiny_config(**{key: "bogus"}, **({"name": "nat"} if key == "nat_recipe" else {}))
    with pytest.raises(ValueError) as err:
        build_model(cfg, rngs=nnx.Rngs(0))
    message = str(err.value)
    assert f"model.{key}" in message and "'bogus'" in message
    for choice in choices:
        assert choice in message


@pytest.mark.parametrize(
    "overrides",
    [
        dict(attention="linear", position="alibi"),
        dict(attention="conv", position="rotary"),
        dict(attention="conv", position="alibi"),
        dict(attention_dropout=0.1),
        dict(d_model=18, num_heads=4),
    ],
)
def test_combinations_that_cannot_work_are_rejected(overrides):
    with pytest.raises(ValueError):
        build_model(tiny_config(**overrides), rngs=nnx.Rngs(0))

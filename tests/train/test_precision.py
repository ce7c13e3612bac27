"""``config.compute_dtype``: bfloat16 matmuls and activations, float32 state and loss."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_testing import quick_config

from attnlab.train import train_and_evaluate
from attnlab.train.config import check_training
from attnlab.train.resolve import create_train_state, resolve_config
from attnlab.train.steps import make_eval_step, make_train_step

SPEC = "synthetic.py:at,quick"
STEPS = 100
RUN = {
    "num_train_steps": STEPS,
    "log_every_steps": 10,
    "eval_every_steps": STEPS,
    "checkpoint_every_steps": STEPS,
    "eval_decode_examples": 0,
}
# The stated tolerance: the bfloat16 run's logged losses (means over 10 steps) stay within 1% of
# the float32 run's over the first 100 steps. Measured on CPU: at most 0.017% apart (XLA:CPU
# rounds bfloat16 matmul results, summed in float32, to 8 mantissa bits; relative 2^-9).
TOLERANCE = 0.01


def _losses(workdir, data_dir, dtype) -> np.ndarray:
    from attnlab.train.writers import read_metrics

    train_and_evaluate(quick_config(SPEC, data_dir, compute_dtype=dtype, **RUN), workdir)
    return np.array([r["loss"] for r in read_metrics(workdir) if "loss" in r])


def test_bfloat16_loss_falls_and_tracks_float32(data_dir, tmp_path):
    f32 = _losses(tmp_path / "f32", data_dir, "float32")
    bf16 = _losses(tmp_path / "bf16", data_dir, "bfloat16")
    assert len(f32) == len(bf16) == STEPS // 10
    assert bf16[-1] < 0.8 * bf16[0]  # it learns
    np.testing.assert_allclose(bf16, f32, rtol=TOLERANCE)
    assert not np.array_equal(bf16, f32)  # the dtype did change the computation


def _dot_operand_types(lowered_text: str) -> list[tuple[bool, list[str]]]:
    """``(batched, [operand dtypes])`` of every StableHLO ``dot_general``."""
    # "%r = stablehlo.dot_general %a, %b, ... : (tensor<..xT>, tensor<..xT>) -> ..."
    return [
        (
            "batching_dims" in line,
            re.findall(r"tensor<[^>]*x(\w+)>", line.split(" : (")[1].split(") ->")[0]),
        )
        for line in lowered_text.splitlines()
        if "stablehlo.dot_general" in line
    ]


def test_bfloat16_matmuls_with_float32_parameters_and_optimizer_state(data_dir):
    config = resolve_config(quick_config(SPEC, data_dir, compute_dtype="bfloat16"))[0]
    graphdef, state, optimizer = create_train_state(config)
    batch = {
        "inputs": jnp.ones((4, 8), jnp.int32),
        "targets": jnp.ones((4, 8), jnp.int32),
        "valid": jnp.ones((4,), bool),
    }
    # The forward pass: every matmul (projections, attention scores and sums) is bfloat16.
    forward = _dot_operand_types(make_eval_step(graphdef, config).lower(state, batch).as_text())
    assert len(forward) > 10 and all(types == ["bf16", "bf16"] for _, types in forward)
    # Training: every weight matmul, forward and backward, is bfloat16. (The backward of the
    # attention scores is float32: ops.attention accumulates scores in float32, so their
    # cotangents are float32.)
    step = make_train_step(graphdef, optimizer, config)
    train = _dot_operand_types(step.lower(state, batch, jnp.int32(1)).as_text())
    weights = [types for batched, types in train if not batched]
    assert len(weights) > 10 and all(types == ["bf16", "bf16"] for types in weights)
    new_state, metrics = step(state, batch, jnp.int32(1))
    floats = [x for x in jax.tree.leaves(new_state) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.float32 for x in floats)
    assert metrics["loss"].dtype == jnp.float32


def test_unknown_compute_dtype_and_sharding_are_one_line_errors(data_dir):
    config = quick_config(SPEC, data_dir)
    merged = resolve_config(config)[0]
    merged.compute_dtype = "float16"
    with pytest.raises(ValueError, match="compute_dtype 'float16'; valid: float32, bfloat16"):
        check_training(merged)
    merged.compute_dtype, merged.sharding = "float32", "zero"
    with pytest.raises(ValueError, match="sharding 'zero'; valid: replicate, fsdp"):
        check_training(merged)


def test_the_gpu_variant_of_at_vs_nat_is_sized_for_one_gpu_in_bfloat16():
    from train_testing import ROOT

    from attnlab.train.config import load_config_file

    config = load_config_file(ROOT / "experiments/configs/at_vs_nat.py:gpu")
    cpu = load_config_file(ROOT / "experiments/configs/at_vs_nat.py:g2p")
    for name in ("at", "nat", "nat_eos", "nat_kd"):
        model = config[name]
        assert model.compute_dtype == "bfloat16" and cpu[name].compute_dtype == "float32"
        assert model.batch_size >= 4 * cpu[name].batch_size
        assert model.model.d_model > cpu[name].model.d_model

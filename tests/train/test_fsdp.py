"""``config.sharding``: fsdp and replicate train the same model; checkpoints cross modes.

One subprocess with 4 forced CPU devices trains ``synthetic.py:at,quick`` under each mode and
reports how the state lay on the devices; this process (1 device) then reads both
checkpoints and resumes the fsdp one under ``replicate``.
"""

import json
import logging
import os
import subprocess
import sys
import textwrap

import jax
import pytest
from jax.sharding import PartitionSpec as P
from train_testing import (
    assert_close_arrays,
    checkpoint_arrays,
    forced_devices_flags,
    quick_config,
)

from attnlab.train import train_and_evaluate
from attnlab.train.sharding import fsdp_spec, make_mesh, state_shardings

SPEC = "synthetic.py:at,quick"
STEPS = 10
OVERRIDES = {"num_train_steps": STEPS, "eval_every_steps": STEPS, "eval_decode_examples": 0}

SCRIPT = """
import json, sys
import jax
sys.path.insert(0, {tests!r})
from train_testing import quick_config
from attnlab.train import train_and_evaluate
from attnlab.train.resolve import create_train_state, resolve_config
from attnlab.train.sharding import bytes_per_device, make_mesh, state_shardings

out = {{}}
for mode in ("replicate", "fsdp"):
    config = quick_config({spec!r}, {data_dir!r}, sharding=mode, **{overrides!r})
    train_and_evaluate(config, {root!r} + "/" + mode)
    resolved = resolve_config(config)[0]
    mesh = make_mesh()
    state = create_train_state(resolved, lambda a: state_shardings(a, mesh, mode))[1]
    split = [x for x in jax.tree.leaves(state) if not x.sharding.is_fully_replicated]
    out[mode] = {{"bytes": bytes_per_device(state), "split": len(split)}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def four_devices(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    tests = os.path.dirname(os.path.abspath(__file__))
    code = SCRIPT.format(
        tests=tests, spec=SPEC, data_dir=data_dir, overrides=OVERRIDES, root=str(root)
    )
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": forced_devices_flags(4),
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root, json.loads(done.stdout.strip().splitlines()[-1])


def test_fsdp_spec_splits_the_largest_divisible_dimension():
    assert fsdp_spec((32, 64), 4) == P(None, "data")
    assert fsdp_spec((64, 32), 4) == P("data")
    assert fsdp_spec((6, 12), 4) == P(None, "data")  # 12 is divisible, 6 is not
    assert fsdp_spec((5, 7), 4) == P()
    assert fsdp_spec((), 4) == P()
    assert fsdp_spec((64, 64), 1) == P()
    with pytest.raises(ValueError, match="valid: replicate, fsdp"):
        state_shardings({}, make_mesh(), "zero3")


def test_fsdp_and_replicate_train_the_same_parameters(four_devices):
    root, _ = four_devices
    # Every array of the train state: parameters, RNG state and Adam moments, none left out.
    assert_close_arrays(checkpoint_arrays(root / "fsdp"), checkpoint_arrays(root / "replicate"))


def test_fsdp_holds_a_quarter_of_the_state_per_device(four_devices):
    _, report = four_devices
    assert report["replicate"]["split"] == 0 and report["fsdp"]["split"] > 10
    # Only the few arrays with no dimension divisible by 4 stay whole.
    assert report["fsdp"]["bytes"] < 0.3 * report["replicate"]["bytes"]


def test_an_fsdp_checkpoint_from_four_devices_resumes_under_replicate_on_one(
    four_devices, data_dir, caplog
):
    root, _ = four_devices
    assert jax.device_count() == 1
    config = quick_config(SPEC, data_dir, sharding="replicate", **OVERRIDES)
    config.num_train_steps = STEPS + 4
    with caplog.at_level(logging.WARNING):
        result = train_and_evaluate(config, root / "fsdp")
    assert result["step"] == STEPS + 4 and not result["preempted"]
    noisy = [r.getMessage() for r in caplog.records if "shard" in r.getMessage().lower()]
    assert noisy == []

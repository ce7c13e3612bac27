r"""Bytes of train state per device under ``config.sharding = replicate | fsdp``.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu \
        python benchmarks/state_memory.py --config=experiments/configs/g2p.py:at

Issue 18. Builds the train state (parameters, AdamW moments, the rest) of the config's model on
every device, placed as the training loop places it, and prints one JSON line per mode: the
most bytes one device holds, and the bytes of one full copy. Nothing is trained; the data is
read only for its vocabulary sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import jax  # noqa: E402

from attnlab.train.config import SHARDINGS, load_config_file  # noqa: E402
from attnlab.train.resolve import create_train_state, resolve_config  # noqa: E402
from attnlab.train.sharding import bytes_per_device, make_mesh, state_shardings  # noqa: E402


def measure(spec: str) -> list[dict]:
    config = resolve_config(load_config_file(spec))[0]
    mesh = make_mesh()
    rows = []
    for mode in SHARDINGS:
        state = create_train_state(config, lambda a, m=mode: state_shardings(a, mesh, m))[1]
        full = sum(x.nbytes for x in jax.tree.leaves(state))
        rows.append(
            {
                "config": spec,
                "sharding": mode,
                "devices": mesh.size,
                "bytes_per_device": bytes_per_device(state),
                "bytes_full_state": full,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "experiments/configs/g2p.py:at"))
    for row in measure(parser.parse_args().config):
        print(json.dumps(row))


if __name__ == "__main__":
    main()

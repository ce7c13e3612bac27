r"""Train any attnlab model on any attnlab dataset.

    python experiments/train.py --config=experiments/configs/g2p.py:at --workdir=runs/g2p_at \
        [--config.learning_rate=3e-4 ...]

Running the same command again resumes from the latest checkpoint in the workdir. SIGTERM
saves a checkpoint and exits 0. Multi-host: pass --coordinator_address, --num_processes and
--process_id on every host. A bad flag, variant, key or value exits with status 2 and one
line naming it and the valid choices; a diverged loss exits with status 1.
"""

from __future__ import annotations

import importlib.util
import logging as std_logging
import sys
from collections.abc import Sequence

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Task config file and variant, e.g. experiments/configs/g2p.py:at,quick."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, config.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for multi-host jax.distributed."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")
flags.mark_flags_as_required(["config", "workdir"])

_PROG = "train.py"


def _fail(message: str, code: int = 2) -> None:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return text
    if any(line.startswith("Traceback") for line in lines):  # an error inside the config file
        last = lines[-1]
        head, sep, tail = last.partition(": ")
        return tail if sep and head.isidentifier() else last
    return lines[0] if len(lines) == 1 else lines[-1]


def _unknown_override(argv: Sequence[str]) -> str:
    """Name the first ``--config.a.b=...`` whose key the config file does not have."""
    spec = next(a.split("=", 1)[1] for a in argv if a.startswith("--config="))
    path, _, variant = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_config_file", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(variant or None)
    for arg in argv[1:]:
        if not arg.startswith("--config."):
            continue
        path = arg[len("--config.") :].split("=", 1)[0].split(".")
        node = config
        for depth, key in enumerate(path):
            keys = list(node.keys()) if hasattr(node, "keys") else []
            if key not in keys:
                where = ".".join(path[:depth])
                scope = f"{where} keys" if where else "keys"
                return f"unknown config key {'.'.join(path)!r}; valid {scope}: {', '.join(keys)}"
            node = node[key]
    return "unknown config key in the overrides"


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing that reports any problem as one line instead of a traceback."""
    try:
        rest = flags.FLAGS(argv)
        config = _CONFIG.value
        config.keys()  # a config file that failed to load raises here
    except (AttributeError, KeyError):
        _fail(_unknown_override(argv))
    except flags.Error as err:
        _fail(_last_line(str(err)))
    except Exception as err:  # noqa: BLE001 - config file errors surface in several types
        _fail(_last_line(str(err)))
    if len(rest) > 1:
        _fail(f"unexpected arguments {rest[1:]}; give everything as --flag=value")
    return rest


class _QuietLibraries(std_logging.Filter):
    """Keep orbax's per-save INFO chatter out of the progress log (warnings still show)."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def main(argv: Sequence[str]) -> None:
    del argv
    logging.get_absl_handler().addFilter(_QuietLibraries())
    from attnlab.train import NonFiniteLossError, train_and_evaluate
    from attnlab.train.sharding import initialize_distributed

    initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    try:
        result = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except NonFiniteLossError as err:
        _fail(str(err), code=1)
    except ValueError as err:  # bad config values; --verbosity=1 shows the traceback
        logging.debug("traceback of the error below", exc_info=True)
        _fail(_last_line(str(err)))
    logging.info("final: %s", result)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)

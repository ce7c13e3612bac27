r"""Train any attnlab model on any attnlab dataset.

    python experiments/train.py --config=experiments/configs/g2p.py:at --workdir=runs/g2p_at \
        [--config.learning_rate=3e-4 ...]

Running the same command again resumes from the latest checkpoint in the workdir; a config
that differs from the one the workdir was trained with (beyond the keys listed in
``attnlab.train.config.RESUMABLE_KEYS``) is refused. SIGTERM and Ctrl-C save a checkpoint and
exit 0. Several processes: pass --coordinator_address, --num_processes and --process_id to
every process; under SLURM, ``srun`` is enough (each task finds the others through JAX's
cluster detection; explicit flags win). docs/cluster.md has every command. A bad flag, variant, key, value or workdir exits with status 2 and one line naming it
and the valid choices; a diverged loss exits with status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Task config file and variant, e.g. experiments/configs/g2p.py:at,quick."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, config.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (several processes; srun needs none)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")
flags.mark_flags_as_required(["config", "workdir"])

PROG = "train.py"


def main(argv: Sequence[str]) -> None:
    del argv
    from attnlab.train import NonFiniteLossError, train_and_evaluate
    from attnlab.train.cli import (
        exit_interrupted,
        fail,
        join_processes,
        quiet_libraries,
        slurm_step_tasks,
    )
    from attnlab.train.preemption import Interrupted, entry_point_signals

    quiet_libraries()
    processes = _NUM_PROCESSES.value or (1 if _COORDINATOR.value else slurm_step_tasks()) or 1
    try:
        with entry_point_signals(abort_setup=processes == 1):
            join_processes(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
            result = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
            _report(result)
    except Interrupted as err:  # SIGTERM or Ctrl-C before the training loop: nothing to save
        exit_interrupted(PROG, err, "during set-up", "no step was trained, nothing lost")
    except NonFiniteLossError as err:
        fail(PROG, err, code=1)
    except ValueError as err:  # a bad config value or set-up; --verbosity=1: the traceback
        logging.debug("traceback of the error below", exc_info=True)
        fail(PROG, err)


def _report(result: dict) -> None:
    from attnlab.train.writers import summary_line

    if result["preempted"]:
        print(
            f"{PROG}: stopped at step {result['step']} on {result['signal']}; checkpoint saved "
            f"in {_WORKDIR.value}; run the same command to resume",
            file=sys.stderr,
        )
    else:
        logging.info("final: %s", summary_line(result))


def _parse_flags(argv: list[str]) -> list[str]:
    from attnlab.train.cli import parse_flags

    return parse_flags(argv, _CONFIG, prog=PROG)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)

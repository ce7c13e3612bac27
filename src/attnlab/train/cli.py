"""Shared pieces of the ``experiments/*.py`` entry points: one-line errors, quiet logs.

Every entry point parses absl flags with ``parse_flags`` (``app.run(main, flags_parser=...)``),
so an unknown flag, config variant, config key or flag value ends the process with status 2
and one line, ``<prog>: error: <what> ...; valid: ...``, never a traceback.

``join_processes`` joins a multi-process run: the coordinator flags when given, else the
tasks of the ``srun`` step this process belongs to, found by JAX's own cluster detection.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from absl import flags, logging

from attnlab.train.config import load_config_file
from attnlab.train.sharding import initialize_distributed


def one_line(text: str) -> str:
    """The informative line of an error message (the last one of an embedded traceback)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return str(text)
    if any(line.startswith("Traceback") for line in lines):  # raised inside a config file
        head, sep, tail = lines[-1].partition(": ")
        return tail if sep and head.isidentifier() else lines[-1]
    return lines[-1]


def fail(prog: str, error: Exception | str, code: int = 2) -> NoReturn:
    """Print ``<prog>: error: <one line>`` to stderr and exit with ``code``."""
    print(f"{prog}: error: {one_line(str(error))}", file=sys.stderr)
    sys.exit(code)


def exit_now(code: int) -> NoReturn:
    """Flush and exit without the interpreter's shutdown: after a signal has interrupted jax
    mid-compile, that shutdown can crash (a segmentation fault, exit status 139, measured on
    jax 0.10 here), turning a clean stop into a crash. For aborts where nothing is left to save."""
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exit_interrupted(prog: str, err: KeyboardInterrupt, where: str, after: str) -> NoReturn:
    """After a signal outside training, where nothing is left unsaved: one line, "stopped
    <where> on <signal>; <after>", and exit at once. Status 0 for SIGTERM (a scheduler's stop,
    like a preempted training), 130 for Ctrl-C (the shell's status for an interrupt), as
    ``error:``. Python's own ``KeyboardInterrupt`` is a Ctrl-C."""
    name = getattr(err, "signal_name", "Ctrl-C")
    ctrl_c = name == "Ctrl-C"
    print(
        f"{prog}: {'error: ' if ctrl_c else ''}stopped {where} on {name}; {after}", file=sys.stderr
    )
    exit_now(130 if ctrl_c else 0)


def slurm_step_tasks() -> int:
    """The number of tasks of the ``srun`` step this process is one of; 0 outside a step.

    A batch script itself (the sbatch step) has ``SLURM_NTASKS`` of the whole job but no
    ``SLURM_STEP_NODELIST``: there it is 0, so a trainer started there directly is one
    process. The variables are those that ``jax.distributed``'s SLURM detection reads.
    """
    needed = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID")
    if not all(name in os.environ for name in (*needed, "SLURM_LOCALID")):
        return 0
    return int(os.environ["SLURM_NTASKS"])


def _slurm_task_devices() -> list[int] | None:
    """With ``--gpus-per-task``, SLURM shows each task only its own GPUs: use all of them.

    Otherwise None: JAX then gives task ``SLURM_LOCALID`` the GPU of that index, right when
    every task of a node sees all the node's GPUs (``--gpus-per-node`` with one task a GPU).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if os.environ.get("SLURM_GPUS_PER_TASK") and visible:
        return list(range(len(visible.split(","))))
    return None


def join_processes(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> int:
    """Join this process's multi-process run, if it has one; returns the number of processes.

    Explicit flags win. Without ``--coordinator_address``, an ``srun`` step of several tasks
    is one run (``jax.distributed.initialize()`` detects its coordinator, size and index;
    ``--num_processes``/``--process_id`` still override them). Anything else: one process.
    """
    import jax

    if coordinator_address:
        initialize_distributed(coordinator_address, num_processes, process_id)
        return num_processes or 1
    if slurm_step_tasks() <= 1:
        return 1
    # CPU devices of different processes talk through gloo (XLA:CPU has no default).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        num_processes=num_processes, process_id=process_id, local_device_ids=_slurm_task_devices()
    )
    return jax.process_count()


def unknown_override(argv: Sequence[str], flag_name: str = "config") -> str | None:
    """Name the first ``--config.a.b=...`` whose key the config file lacks, with the valid keys."""
    prefix = f"--{flag_name}."
    try:
        spec = next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{flag_name}="))
        config = load_config_file(spec)
    except Exception:  # noqa: BLE001 - the caller falls back to the original message
        return None
    for arg in argv[1:]:
        if not arg.startswith(prefix):
            continue
        path = arg[len(prefix) :].split("=", 1)[0].split(".")
        node = config
        for depth, key in enumerate(path):
            keys = list(node.keys()) if hasattr(node, "keys") else []
            if key not in keys:
                where = ".".join(path[:depth])
                scope = f"{where} keys" if where else "keys"
                return f"unknown config key {'.'.join(path)!r}; valid {scope}: {', '.join(keys)}"
            node = node[key]
    return None


def parse_flags(argv: list[str], config_flag: Any | None, *, prog: str) -> list[str]:
    """absl flag parsing that turns every problem into ``fail(prog, ...)`` (status 2).

    ``config_flag`` is the entry point's ``config_flags`` flag, or None when it has none.
    """
    try:
        rest = flags.FLAGS(argv)
        if config_flag is not None:
            config_flag.value.keys()  # a config file that failed to load raises here
    except flags.UnrecognizedFlagError as err:
        own = sorted(f"--{f.name}" for f in flags.FLAGS.get_flags_for_module(sys.argv[0]))
        fail(prog, f"unknown flag --{err.flagname}; valid: {', '.join(own)} (--helpfull for all)")
    except (AttributeError, KeyError) as err:  # ml_collections: an override names no key
        hint = None if config_flag is None else unknown_override(argv, config_flag.name)
        fail(prog, hint or err)
    except Exception as err:  # noqa: BLE001 - flag and config-file errors come in many types
        fail(prog, err)
    if len(rest) > 1:
        fail(prog, f"unexpected arguments {rest[1:]}; give everything as --flag=value")
    return rest


class _QuietLibraries(std_logging.Filter):
    """Keep orbax's chatter out of the progress log: its INFO lines, and its warning that a
    checkpoint directory opened read-only (on purpose) is read-only. Other warnings show.
    Also jax's INFO line that it found no TPU (``Unable to initialize backend 'tpu'``), which
    every run without ``JAX_PLATFORMS`` printed on a machine without one."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.levelno < std_logging.WARNING and record.getMessage().startswith(
            "Unable to initialize backend 'tpu'"
        ):
            return False
        if "/orbax/" not in record.pathname:
            return True
        return record.levelno >= std_logging.WARNING and "is read only" not in record.getMessage()


def quiet_libraries() -> None:
    """Filter library INFO chatter from the absl log handler (call inside ``main``)."""
    logging.get_absl_handler().addFilter(_QuietLibraries())

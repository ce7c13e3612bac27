r"""Run an ablation sweep: every setting and seed as its own resumable training run.

    python experiments/ablate.py --sweep=norm_batch --workdir=runs/ablations/norm_batch
    python experiments/ablate.py --sweep=position --workdir=/tmp/position --quick --seeds=1

Sweeps (experiments/configs/ablations.py; ``--sweeps_file`` names another file that defines
``SWEEPS``): norm_batch, attention_scores, heads, position, attention_vs_cnn, input, address. Each run is a job that trains ``experiments/train.py`` in
``DIR/<run-name>/seed<k>``; running the same command again skips finished runs, watches the
jobs still queued or running, and resumes the others from their checkpoints. Results:
``DIR/results.csv``, ``DIR/report.md``, ``DIR/<sweep>.png``. docs/cluster.md has more.

- ``--launcher=local`` (default): the jobs run on this machine; ``--parallel=N`` runs N at
  once, each pinned to its own 1/N of the CPUs (``--nopin_cpus`` lets them share all).
- ``--launcher=slurm``: each run is a SLURM job (submitit, one job array), with
  ``--slurm_partition`` (default: the cluster's default), ``--slurm_time_min`` (a job that
  reaches it saves, and is requeued), ``--slurm_cpus_per_task``, ``--slurm_gpus_per_task``
  and ``--slurm_max_parallel``. Jobs write their SLURM logs to ``DIR/slurm/``. A preempted
  or requeued job resumes from its checkpoint.
- ``--axis=model.norm=layer,rms`` replaces the values of one of the sweep's axes.
- ``--set=num_train_steps=100`` overrides a config key in every run.
- ``--groups=reverse`` keeps only the named grids of the sweep.

An unknown sweep, axis, group or key, or a value the model does not accept, exits with status 2
and one line naming it and the valid choices, before any run starts. Exit status 1: some run
failed or the sweep was stopped (re-run to resume; SLURM jobs keep running meanwhile).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from absl import app, flags, logging

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep name, e.g. norm_batch.")
_SWEEPS_FILE = flags.DEFINE_string(
    "sweeps_file", None, "File defining SWEEPS (default: experiments/configs/ablations.py)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory: one subdirectory per run.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per setting (0, 1, ...).")
_QUICK = flags.DEFINE_boolean("quick", False, "Tiny configs (each task's quick variant).")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs trained at the same time.")
_PIN_CPUS = flags.DEFINE_boolean(
    "pin_cpus", True, "With --parallel=N, pin each run to its own 1/N of the CPUs."
)
_LAUNCHER = flags.DEFINE_enum("launcher", "local", ["local", "slurm"], "Where the runs train.")
_PARTITION = flags.DEFINE_string(
    "slurm_partition", None, "SLURM partition (default: the cluster's)."
)
_TIME_MIN = flags.DEFINE_integer("slurm_time_min", 60, "SLURM time limit of a job, in minutes.")
_CPUS = flags.DEFINE_integer("slurm_cpus_per_task", None, "CPUs of each SLURM job.")
_GPUS = flags.DEFINE_integer("slurm_gpus_per_task", None, "GPUs of each SLURM job.")
_MAX_PARALLEL = flags.DEFINE_integer(
    "slurm_max_parallel", None, "SLURM jobs of the sweep running at once (default: no limit)."
)
_AXIS = flags.DEFINE_multi_string("axis", [], "KEY=V1,V2,...: new values for a sweep axis.")
_SET = flags.DEFINE_multi_string("set", [], "KEY=VALUE: a config override for every run.")
_GROUPS = flags.DEFINE_list("groups", [], "Only these grids of the sweep (comma-separated).")
flags.mark_flags_as_required(["sweep", "workdir"])

_PROG = "ablate.py"
_HERE = Path(__file__).resolve().parent


def _fail(message: str, code: int = 2) -> None:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key:
            _fail(f"--{flag}={text!r} is not KEY=VALUE")
        out[key] = value
    return out


def main(argv: Sequence[str]) -> None:
    del argv
    from attnlab.sweeps.spec import get_sweep, load_sweeps, parse_value

    try:
        sweeps = load_sweeps(_SWEEPS_FILE.value or _HERE / "configs" / "ablations.py")
        sweep = get_sweep(sweeps, _SWEEP.value)
    except ValueError as err:
        _fail(str(err))
    axes = {
        k: [parse_value(v) for v in vals.split(",")]
        for k, vals in _pairs(_AXIS.value, "axis").items()
    }
    sets = {k: parse_value(v) for k, v in _pairs(_SET.value, "set").items()}
    workdir = Path(_WORKDIR.value)
    command = shlex.join(["python", *sys.argv])
    configs_dir = _HERE / "configs"
    try:
        from attnlab.sweeps.jobs import RunSpec, check_launches
        from attnlab.sweeps.spec import expand

        launcher = _launcher(workdir, sweep.name)
        runs, configs = expand(
            sweep,
            configs_dir=configs_dir,
            seeds=_SEEDS.value,
            quick=_QUICK.value,
            axes=axes,
            sets=sets,
            groups=_GROUPS.value,
        )
        _check_sweep_file(workdir, sweep.name)
        check_launches(runs, workdir)
        _prepare_data(configs.values())
    except ValueError as err:
        _fail(str(err).splitlines()[0])
    from attnlab.sweeps.launch import SweepLockedError, run_sweep
    from attnlab.sweeps.report import write_results

    specs = [
        RunSpec.of(
            run,
            sweep_dir=workdir,
            train_script=_HERE / "train.py",
            configs_dir=configs_dir,
            steps=int(configs[run.relpath].num_train_steps),
        )
        for run in runs
    ]
    logging.info("sweep %s: %d runs in %s (%s)", sweep.name, len(runs), workdir, launcher.name)
    try:
        outcome = run_sweep(
            specs,
            launcher,
            sweep_dir=workdir,
            on_done=lambda: write_results(sweep, runs, workdir, command=command),
        )
    except SweepLockedError as err:
        _fail(str(err))
    paths = write_results(sweep, runs, workdir, command=command)
    logging.info("results: %s", ", ".join(str(p) for p in paths if p))
    if outcome.failed:
        _fail(f"{len(outcome.failed)} runs failed: {', '.join(outcome.failed)}", code=1)
    if outcome.stopped:
        _fail("stopped; run the same command again to resume", code=1)


def _launcher(workdir: Path, name: str):
    """The launcher the flags ask for; a flag of the other launcher is an error."""
    from attnlab.sweeps.launch import SLURM_DIR, LocalLauncher, SlurmLauncher

    slurm_flags = ("slurm_partition", "slurm_time_min", "slurm_cpus_per_task")
    slurm_flags += ("slurm_gpus_per_task", "slurm_max_parallel")
    if _LAUNCHER.value == "local":
        given = [f"--{f}" for f in slurm_flags if flags.FLAGS[f].present]
        if given:
            verb = "needs" if len(given) == 1 else "need"
            raise ValueError(f"{', '.join(given)} {verb} --launcher=slurm")
        return LocalLauncher(_PARALLEL.value, pin_cpus=_PIN_CPUS.value)
    given = [f"--{f}" for f in ("parallel", "pin_cpus") if flags.FLAGS[f].present]
    if given:
        raise ValueError(
            f"{', '.join(given)} is for --launcher=local; with slurm use --slurm_max_parallel"
        )
    for flag, value in (
        ("slurm_time_min", _TIME_MIN.value),
        ("slurm_max_parallel", _MAX_PARALLEL.value),
    ):
        if value is not None and value < 1:
            raise ValueError(f"--{flag} must be >= 1, got {value}")
    return SlurmLauncher(
        workdir / SLURM_DIR,
        _MAX_PARALLEL.value,
        name=f"ablate-{name}",
        timeout_min=_TIME_MIN.value,
        slurm_partition=_PARTITION.value,
        cpus_per_task=_CPUS.value,
        slurm_gpus_per_task=_GPUS.value,
    )


def _check_sweep_file(workdir: Path, name: str) -> None:
    """One sweep per workdir: its name is recorded in ``DIR/sweep.json``."""
    path = workdir / "sweep.json"
    if path.exists():
        recorded = json.loads(path.read_text())["sweep"]
        if recorded != name:
            raise ValueError(
                f"{workdir} holds sweep {recorded!r}, not {name!r}; use another --workdir"
            )
        return
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sweep": name}) + "\n")


def _prepare_data(configs) -> None:
    """Resolve each distinct config once, as the trainer will: builds the datasets here, one at
    a time (parallel runs never race to build one), and checks the model fits the task."""
    from attnlab.train.resolve import resolve_config

    seen = set()
    for config in configs:
        key = json.dumps(
            {k: v for k, v in config.to_dict().items() if k != "seed"}, sort_keys=True, default=str
        )
        if key not in seen:
            seen.add(key)
            resolve_config(config)


def _parse_flags(argv: list[str]) -> list[str]:
    from attnlab.train.cli import parse_flags

    return parse_flags(argv, None, prog=_PROG)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)

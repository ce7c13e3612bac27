r"""Run an ablation sweep: every setting and seed as its own resumable training run.

    python experiments/ablate.py --sweep=norm_batch --workdir=runs/ablations/norm_batch
    python experiments/ablate.py --sweep=position --workdir=/tmp/position --quick --seeds=1

Sweeps (src/attnlab/sweeps/definitions.py): norm_batch, attention_scores, heads, position,
attention_vs_cnn, input, address. Each run trains in ``DIR/<run-name>/seed<k>`` as a subprocess of
``experiments/train.py``; running the same command again skips finished runs and resumes the
others from their checkpoints. Results: ``DIR/results.csv``, ``DIR/report.md``,
``DIR/<sweep>.png``.

- ``--parallel=N`` runs N subprocesses at once (for machines with more devices or cores),
  each pinned to its own 1/N of the CPUs (``--nopin_cpus`` lets them share all of them).
- ``--axis=model.norm=layer,rms`` replaces the values of one of the sweep's axes.
- ``--set=num_train_steps=100`` overrides a config key in every run.
- ``--groups=reverse`` keeps only the named grids of the sweep.

An unknown sweep, axis, group or key, or a value the model does not accept, exits with status 2
and one line naming it and the valid choices, before any run starts. Exit status 1: some run
failed or the sweep was stopped (re-run to resume).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from absl import app, flags, logging

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep name, e.g. norm_batch.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory: one subdirectory per run.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per setting (0, 1, ...).")
_QUICK = flags.DEFINE_boolean("quick", False, "Tiny configs (each task's quick variant).")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs trained at the same time.")
_PIN_CPUS = flags.DEFINE_boolean(
    "pin_cpus", True, "With --parallel=N, pin each run to its own 1/N of the CPUs."
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
    from attnlab.sweeps.definitions import get_sweep
    from attnlab.sweeps.spec import parse_value

    try:
        sweep = get_sweep(_SWEEP.value)
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
        from attnlab.sweeps.runner import SweepRunner, check_launches
        from attnlab.sweeps.spec import expand

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
        runner = SweepRunner(
            runs,
            {path: int(c.num_train_steps) for path, c in configs.items()},
            workdir=workdir,
            configs_dir=configs_dir,
            train_script=_HERE / "train.py",
            parallel=_PARALLEL.value,
            pin_cpus=_PIN_CPUS.value,
        )
    except ValueError as err:
        _fail(str(err).splitlines()[0])
    from attnlab.sweeps.report import write_results

    logging.info("sweep %s: %d runs in %s", sweep.name, len(runs), workdir)
    runner.on_done = lambda: write_results(sweep, runs, workdir, command=command)
    outcome = runner.run()
    paths = write_results(sweep, runs, workdir, command=command)
    logging.info("results: %s", ", ".join(str(p) for p in paths if p))
    if outcome.failed:
        _fail(f"{len(outcome.failed)} runs failed: {', '.join(outcome.failed)}", code=1)
    if outcome.stopped:
        _fail("stopped; run the same command again to resume", code=1)


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


if __name__ == "__main__":
    app.run(main)

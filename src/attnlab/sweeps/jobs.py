"""One run of a sweep as a job: the run contract that both launchers (``launch.py``) share.

``run_spec(spec)`` trains one run to its end in ``spec.run_dir`` (``experiments/train.py``
resumes from the run's latest checkpoint) and records how it ended: ``done.json`` (finished or
diverged: never started again) or ``attempt.json`` (stopped or failed). A job runs it on this
machine (``python -m attnlab.sweeps.jobs SPEC``) or on SLURM (``SweepJob``, through submitit).
docs/cluster.md lists the run's files and what a signal or a requeue does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import submitit
from flax import nnx

from attnlab.sweeps.spec import Run
from attnlab.train.models import build_model
from attnlab.train.workdir import read_trained_config, write_text_atomic
from attnlab.train.writers import TIMING_KEYS, read_metrics

DONE, LAUNCH, LOG, ATTEMPT = "done.json", "launch.json", "train.log", "attempt.json"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything a job needs to train one run: plain values (JSON and pickle alike)."""

    relpath: str  # <run-name>/seed<k>, relative to the sweep's directory
    run_dir: str
    command: Sequence[str]  # train.py's command line, --workdir included
    identity: Sequence[str]  # Run.identity(): the task config and every override
    record: dict[str, Any]  # run, seed, group and settings, for done.json
    total_steps: int
    cpus: Sequence[int] = ()  # pin the trainer to these CPUs (local launcher)
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # added to the trainer's

    @classmethod
    def of(cls, run: Run, *, sweep_dir: Path, train_script: Path, configs_dir: Path, steps: int):
        run_dir = Path(sweep_dir) / run.relpath
        command = [sys.executable, str(train_script), *run.config_args(configs_dir)]
        return cls(
            relpath=run.relpath,
            run_dir=str(run_dir),
            command=(*command, f"--workdir={run_dir}"),
            identity=tuple(run.identity()),
            record={
                "run": run.name,
                "seed": run.seed,
                "group": run.group,
                "settings": run.settings,
            },
            total_steps=steps,
        )


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def check_launches(runs: list[Run], sweep_dir: Path) -> None:
    """Refuse a run directory that an earlier sweep started with other settings."""
    for run in runs:
        launch = read_json(sweep_dir / run.relpath / LAUNCH)
        if launch is not None and launch["identity"] != run.identity():
            old = [x for x in launch["identity"] if x not in run.identity()]
            raise ValueError(
                f"{sweep_dir / run.relpath} was started with other settings ({', '.join(old)}); "
                "use another --workdir or remove that run"
            )


def final_metrics(run_dir: Path, total_steps: int) -> dict[str, Any] | None:
    """The final train and eval metrics of a run that reached ``total_steps``, else None; its
    rates are medians over the logging windows (compiling and evaluating do not skew them)."""
    records = read_metrics(run_dir)
    last = [r for r in records if r.get("step") == total_steps]
    train = [r for r in last if "loss" in r]
    evals = [r for r in last if any(k.startswith("eval_") for k in r)]
    if not train or not evals:
        return None
    metrics = {k: v for k, v in {**train[-1], **evals[-1]}.items() if k not in TIMING_KEYS}
    for key in ("steps_per_sec", "tokens_per_sec"):
        if rates := [r[key] for r in records if key in r]:
            metrics[key] = statistics.median(rates)
    return metrics


def count_params(run_dir: Path) -> int:
    """Trainable parameters of the model in ``run_dir/config.json`` (shapes only, no data)."""
    config = read_trained_config(run_dir)
    abstract = nnx.eval_shape(lambda: build_model(config.model, rngs=nnx.Rngs(0)))
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


def last_line(path: Path) -> str:
    """The last non-empty line of a log, without absl's prefix."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    except FileNotFoundError:
        return ""
    line = ([ln for ln in lines if ln] or [""])[-1]
    return line.split("] ", 1)[1] if line[:1] in "IWEF" and "] " in line else line


class _Trainer:
    """The trainer subprocess of this job, and the one SIGTERM it may get (a second one could
    cut its last save short)."""

    process: subprocess.Popen | None = None
    requested = signalled = False

    @classmethod
    def stop(cls, *_: Any) -> None:
        cls.requested = True
        if cls.process is not None and cls.process.poll() is None and not cls.signalled:
            cls.process.send_signal(signal.SIGTERM)
            cls.signalled = True


def run_spec(spec: RunSpec) -> dict[str, Any]:
    """Train the run of ``spec`` to its end, resuming its checkpoint; the record it wrote
    (``done.json``: finished or diverged; ``attempt.json``: stopped or failed)."""
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (done := read_json(run_dir / DONE)) is not None:  # ended meanwhile (a job started twice)
        return done
    if read_json(run_dir / LAUNCH) is None:
        command = shlex.join(spec.command[1:])
        write_json(run_dir / LAUNCH, {"identity": list(spec.identity), "command": command})
    if spec.cpus and hasattr(os, "sched_setaffinity"):  # the trainer inherits it
        os.sched_setaffinity(0, spec.cpus)
    _Trainer.process, _Trainer.requested, _Trainer.signalled = None, False, False
    forwarded = (signal.SIGTERM, signal.SIGINT)
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.signal(s, _Trainer.stop) for s in forwarded} if main_thread else {}
    started = time.monotonic()
    try:
        with (run_dir / LOG).open("a") as log:
            # SLURM may signal every process of the job: the trainer ignores submitit's time-limit
            # warning (SIGUSR2 would kill it); the job answers it for both (SweepJob.checkpoint).
            usr2 = lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN)
            env = {**os.environ, **spec.env}
            _Trainer.process = subprocess.Popen(
                spec.command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=usr2
            )
            if _Trainer.requested:  # a signal came while it started
                _Trainer.stop()
            # Polled, not wait(): a blocking wait holds the Popen's lock, and the handler of
            # submitit's time-limit signal (SweepJob.checkpoint) must wait for the trainer too.
            while (code := _Trainer.process.poll()) is None:
                time.sleep(0.2)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return _record(spec, code, time.monotonic() - started, stopped=_Trainer.signalled)


def _record(spec: RunSpec, code: int, seconds: float, *, stopped: bool) -> dict[str, Any]:
    run_dir = Path(spec.run_dir)
    record = {**spec.record, "command": shlex.join(spec.command[1:]), "wall_seconds": seconds}
    metrics = final_metrics(run_dir, spec.total_steps) if code == 0 else None
    last = last_line(run_dir / LOG)
    if metrics is not None:
        record.update(status="finished", metrics=metrics, params=count_params(run_dir))
    elif code == 1 and "NaN/Inf" in last:
        record.update(status="diverged", message=last)
    elif code == 0 and (stopped or "checkpoint saved" in last):
        record.update(status="stopped", message=last)
    else:
        why = f"exit {code}: {last}" if code else "it stopped before its last step"
        record.update(status="failed", message=why)
    ended = record["status"] in ("finished", "diverged")
    write_json(run_dir / (DONE if ended else ATTEMPT), record)
    return record


class SweepJob(submitit.helpers.Checkpointable):
    """What a SLURM job runs (through submitit): ``run_spec``, requeued with the same spec
    after its time-limit warning."""

    def __call__(self, spec: RunSpec) -> dict[str, Any]:
        return run_spec(spec)

    def checkpoint(self, spec: RunSpec) -> submitit.helpers.DelayedSubmission:
        """In submitit's signal handler: the trainer saves and exits; then the job is requeued."""
        _Trainer.stop()
        while _Trainer.process is not None and _Trainer.process.poll() is None:
            time.sleep(0.1)
        return super().checkpoint(spec)


if __name__ == "__main__":  # the local launcher's job: python -m attnlab.sweeps.jobs '<spec>'
    run_spec(RunSpec(**json.loads(sys.argv[1])))

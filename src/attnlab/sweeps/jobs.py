"""One run of a sweep, as a job: the contract that both launchers (``launch.py``) share.

``run_spec(spec)`` trains one run to its end in ``spec.run_dir``: it starts
``experiments/train.py`` (which resumes from the run's latest checkpoint), waits for it, and
records the outcome. A job runs it on this machine (``python -m attnlab.sweeps.jobs SPEC``,
the local launcher) or on a SLURM node (``SweepJob``, submitted by submitit). Its files:

- ``launch.json``: the run's task config and overrides (and its command), written before its
  first start. A later sweep that gives the same directory other overrides is refused before
  anything runs (``check_launches``).
- ``train.log``: the trainer's output, appended on every start.
- ``done.json``: written once the run has trained every step and evaluated (read from its
  ``metrics.jsonl``), with the final metrics, steps/s and parameter count; or once it
  diverged (``train.py`` stops on a NaN loss), which is a result too. A run with
  ``done.json`` is never started again.
- ``attempt.json``: how the last start ended otherwise: ``stopped`` (a signal; the trainer
  saved a checkpoint) or ``failed`` (with the trainer's last line).

Signals: SIGTERM or SIGINT to the job reaches the trainer once (a second one could cut its
last save short); it saves a checkpoint and exits. On SLURM, submitit's warning before the
time limit (SIGUSR2) does the same through ``SweepJob.checkpoint``, and submitit requeues the
job; a preempted or requeued job (SIGTERM) starts again from the start: the trainer resumes.
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
from pathlib import Path
from typing import Any

import submitit

from attnlab.sweeps.spec import Run
from attnlab.train.models import build_model
from attnlab.train.workdir import read_trained_config
from attnlab.train.writers import TIMING_KEYS, read_metrics

DONE, LAUNCH, LOG, ATTEMPT = "done.json", "launch.json", "train.log", "attempt.json"
_FORWARDED = (signal.SIGTERM, signal.SIGINT)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything a job needs to train one run: plain values (JSON and pickle alike)."""

    relpath: str  # <run-name>/seed<k>, relative to the sweep's directory
    run_dir: str
    command: tuple[str, ...]  # train.py's command line, --workdir included
    identity: tuple[str, ...]  # Run.identity(): the task config and every override
    record: dict[str, Any]  # run, seed and group, for done.json
    settings: dict[str, Any]
    total_steps: int
    cpus: tuple[int, ...] = ()  # pin the trainer to these CPUs (local launcher)
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
            settings=dict(run.settings),
            record={"run": run.name, "seed": run.seed, "group": run.group},
            total_steps=steps,
        )


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


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
    """The final train and eval metrics of a run that reached ``total_steps``, else None.

    ``steps_per_sec`` and ``tokens_per_sec`` are medians over the run's logging windows, so
    compilation and evaluation pauses do not skew them.
    """
    records = read_metrics(run_dir)
    last = [r for r in records if r.get("step") == total_steps]
    train = [r for r in last if "loss" in r]
    evals = [r for r in last if any(k.startswith("eval_") for k in r)]
    if not train or not evals:
        return None
    metrics = {**train[-1], **evals[-1]}
    metrics = {k: v for k, v in metrics.items() if k not in TIMING_KEYS}
    for key in ("steps_per_sec", "tokens_per_sec"):
        rates = [r[key] for r in records if key in r]
        if rates:
            metrics[key] = statistics.median(rates)
    return metrics


def count_params(run_dir: Path) -> int:
    """Trainable parameters of the model in ``run_dir/config.json`` (shapes only, no data)."""
    import jax
    from flax import nnx

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
    lines = [ln for ln in lines if ln]
    if not lines:
        return ""
    line = lines[-1]
    return line.split("] ", 1)[1] if line[:1] in "IWEF" and "] " in line else line


class _Trainer:
    """The trainer subprocess of this job, and the one SIGTERM it may get."""

    process: subprocess.Popen | None = None
    requested = signalled = False

    @classmethod
    def stop(cls, *_: Any) -> None:
        cls.requested = True
        if cls.process is not None and cls.process.poll() is None and not cls.signalled:
            cls.process.send_signal(signal.SIGTERM)
            cls.signalled = True


def _start(spec: RunSpec, log) -> subprocess.Popen:
    env = {**os.environ, **spec.env}
    # SLURM may signal every process of the job: the trainer ignores submitit's time-limit
    # warning (SIGUSR2 would kill it); the job answers it for both (SweepJob.checkpoint).
    usr2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN) if _main_thread() else None
    try:
        return subprocess.Popen(spec.command, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        if usr2 is not None:
            signal.signal(signal.SIGUSR2, usr2)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_spec(spec: RunSpec) -> dict[str, Any]:
    """Train the run of ``spec`` to its end (resuming its checkpoint); its record (module doc).

    Returns the record written to ``done.json`` (status ``finished`` or ``diverged``), or
    the one written to ``attempt.json`` (``stopped`` or ``failed``).
    """
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    done = read_json(run_dir / DONE)
    if done is not None:  # ended meanwhile (a job started twice)
        return done
    if read_json(run_dir / LAUNCH) is None:
        command = shlex.join(spec.command[1:])
        write_json(run_dir / LAUNCH, {"identity": list(spec.identity), "command": command})
    if spec.cpus and hasattr(os, "sched_setaffinity"):  # the trainer inherits it
        os.sched_setaffinity(0, spec.cpus)
    _Trainer.process, _Trainer.requested, _Trainer.signalled = None, False, False
    handlers = {s: signal.signal(s, _Trainer.stop) for s in _FORWARDED} if _main_thread() else {}
    started = time.monotonic()
    try:
        with (run_dir / LOG).open("a") as log:
            _Trainer.process = _start(spec, log)
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
    record = {
        **spec.record,
        "settings": spec.settings,
        "command": shlex.join(spec.command[1:]),
        "wall_seconds": seconds,
    }
    metrics = final_metrics(run_dir, spec.total_steps) if code == 0 else None
    last = last_line(run_dir / LOG)
    if metrics is not None:
        record.update(status="finished", metrics=metrics, params=count_params(run_dir))
        write_json(run_dir / DONE, record)
    elif code == 1 and "NaN/Inf" in last:
        record.update(status="diverged", message=last)
        write_json(run_dir / DONE, record)
    else:
        if code == 0 and (stopped or "checkpoint saved" in last):
            record.update(status="stopped", message=last)
        else:
            why = f"exit {code}: {last}" if code else "it stopped before its last step"
            record.update(status="failed", message=why)
        write_json(run_dir / ATTEMPT, record)
    return record


class SweepJob(submitit.helpers.Checkpointable):
    """What a SLURM job runs (through submitit): ``run_spec``.

    Before the time limit submitit calls ``checkpoint``: the trainer saves and exits, and the
    job is requeued with the same spec, so it resumes from that checkpoint.
    """

    def __call__(self, spec: RunSpec) -> dict[str, Any]:
        return run_spec(spec)

    def checkpoint(self, spec: RunSpec) -> submitit.helpers.DelayedSubmission:
        """In submitit's signal handler: the trainer saves and exits; then the job is requeued."""
        _Trainer.stop()
        while _Trainer.process is not None and _Trainer.process.poll() is None:
            time.sleep(0.1)
        return super().checkpoint(spec)


def main(argv: list[str]) -> int:
    """The local launcher's job: ``python -m attnlab.sweeps.jobs '<RunSpec as JSON>'``."""
    fields = json.loads(argv[1])
    spec = RunSpec(**{**fields, "command": tuple(fields["command"])})
    spec = dataclasses.replace(spec, identity=tuple(spec.identity), cpus=tuple(spec.cpus))
    run_spec(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Run a sweep's runs as ``experiments/train.py`` subprocesses, resumably.

Each run lives in ``DIR/<run-name>/seed<k>``:
- ``launch.json``: the run's task config and overrides (and its command), written before its
  first start. A later sweep that gives the same directory other overrides is refused before
  anything runs.
- ``train.log``: the subprocess's output, appended on every start.
- ``done.json``: written by the runner once the run has trained every step and evaluated
  (read from its ``metrics.jsonl``), with the final metrics, steps/s and parameter count;
  or once it diverged (``train.py`` stops on a NaN loss), which is a result too. A run with
  ``done.json`` is skipped; any other run is started, and the trainer resumes it from its
  latest checkpoint.

A run is a subprocess in its own session, so one crash loses nothing else. A small
supervisor process (``_LAUNCHER``) sends it SIGTERM (save a checkpoint, exit) once when the
runner dies, even by SIGKILL, and SIGTERM or Ctrl-C on the runner is passed on to every run.
``DIR/sweep.lock`` is held by the runner and inherited by the supervisors, so a second runner
waits until every run of the first has exited.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import jax
from absl import logging
from flax import nnx

from attnlab.sweeps.spec import Run
from attnlab.train.models import build_model
from attnlab.train.workdir import read_trained_config
from attnlab.train.writers import TIMING_KEYS, read_metrics

DONE, LAUNCH, LOG, LOCK = "done.json", "launch.json", "train.log", "sweep.lock"

# A run's supervisor: starts train.py and sends it SIGTERM (save a checkpoint and exit) exactly
# once, when the runner asks or when the runner is gone, even killed by SIGKILL; then exits with
# train.py's status. Once only: a second SIGTERM could cut the final checkpoint save short.
# (Linux PR_SET_PDEATHSIG is not used: it also fires when a thread of the reaper that adopts an
# orphan exits, which sent runs a second SIGTERM.)
_LAUNCHER = """
import os, signal, subprocess, sys, time
parent, asked = int(sys.argv[1]), []
if os.environ.get("ATTNLAB_CPUS"):  # the runner's CPU slot, inherited by the run
    os.sched_setaffinity(0, {int(c) for c in os.environ["ATTNLAB_CPUS"].split(",")})
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: asked.append(1))
run, sent = subprocess.Popen(sys.argv[2:]), False
while run.poll() is None:
    if not sent and (asked or os.getppid() != parent):
        run.send_signal(signal.SIGTERM)
        sent = True
    time.sleep(0.1)
sys.exit(run.returncode if run.returncode >= 0 else 128 - run.returncode)
"""


@dataclasses.dataclass
class Outcome:
    """What one invocation did: runs finished, skipped, diverged, failed, and if it stopped."""

    finished: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    diverged: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    stopped: bool = False


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


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
    config = read_trained_config(run_dir)
    abstract = nnx.eval_shape(lambda: build_model(config.model, rngs=nnx.Rngs(0)))
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


def check_launches(runs: Sequence[Run], workdir: Path) -> None:
    """Refuse a run directory that an earlier sweep started with other settings."""
    for run in runs:
        launch = read_json(workdir / run.relpath / LAUNCH)
        if launch is not None and launch["identity"] != run.identity():
            old = [x for x in launch["identity"] if x not in run.identity()]
            raise ValueError(
                f"{workdir / run.relpath} was started with other settings ({', '.join(old)}); "
                "use another --workdir or remove that run"
            )


def acquire_lock(workdir: Path, *, timeout: float = 120.0) -> int:
    """Lock ``DIR/sweep.lock``; returns the descriptor (passed to runs so they hold it too)."""
    fd = os.open(workdir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise ValueError(
                    f"{workdir} is in use by another ablate.py (or runs of a killed one are "
                    "still saving); try again when it has finished"
                ) from None
            if not waited:
                logging.info("waiting for the runs of an earlier sweep in %s to exit", workdir)
                waited = True
            time.sleep(0.5)


def cpu_slots(parallel: int) -> list[frozenset[int]]:
    """This process's CPUs cut into ``parallel`` disjoint, near-equal sets (lowest first).

    Empty where the OS has no CPU affinity (macOS) or there are fewer CPUs than runs: the
    runs then share every CPU.
    """
    if not hasattr(os, "sched_getaffinity"):
        return []
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < parallel:
        return []
    size, extra = divmod(len(cpus), parallel)
    slots, start = [], 0
    for i in range(parallel):
        end = start + size + (1 if i < extra else 0)
        slots.append(frozenset(cpus[start:end]))
        start = end
    return slots


def _eta(seconds: float | None) -> str:
    return "unknown" if seconds is None else str(datetime.timedelta(seconds=round(seconds)))


class _Progress:
    """Runs done out of total, and an ETA: the mean wall time of the runs done so far times
    the runs left, over ``parallel``. (Per run rather than per step: in a fixed-examples sweep
    small batches take many cheap steps, and large batches few costly ones.)"""

    def __init__(self, total: int, parallel: int) -> None:
        self.total, self.parallel = total, parallel
        self.done, self.seconds, self.timed = 0, 0.0, 0

    def record(self, seconds: float) -> None:
        if seconds > 0:
            self.seconds, self.timed = self.seconds + seconds, self.timed + 1

    def line(self, left: int, outcome: Outcome) -> str:
        eta = left * self.seconds / self.timed / self.parallel if self.timed else None
        extra = [
            f"{len(v)} {k}" for k in ("skipped", "diverged", "failed") if (v := getattr(outcome, k))
        ]
        extra_text = f" ({', '.join(extra)})" if extra else ""
        return f"{self.done}/{self.total} runs done{extra_text} | ETA {_eta(eta)}"


@dataclasses.dataclass
class _Active:
    run: Run
    process: subprocess.Popen
    log: TextIO
    started: float
    slot: int = 0  # which CPU set it is pinned to (see SweepRunner's pin_cpus)
    signalled: bool = False  # SIGTERM goes once: a second one could cut its last save short


class SweepRunner:
    """Start every unfinished run, ``parallel`` at a time, and write ``done.json`` markers."""

    def __init__(
        self,
        runs: Sequence[Run],
        steps: dict[str, int],
        *,
        workdir: Path,
        configs_dir: Path,
        train_script: Path,
        parallel: int = 1,
        pin_cpus: bool = True,
        on_done: Callable[[], None] | None = None,
        poll_seconds: float = 0.2,
    ) -> None:
        if parallel < 1:
            raise ValueError(f"--parallel must be >= 1, got {parallel}")
        # Parallel runs each get their own share of this process's CPUs, so that the XLA
        # thread pools of two runs do not contend for the same cores and steps/s stay
        # comparable between runs.
        self.cpu_slots = cpu_slots(parallel) if pin_cpus and parallel > 1 else []
        self.runs, self.steps, self.workdir = list(runs), steps, Path(workdir)
        self.configs_dir, self.train_script = Path(configs_dir), Path(train_script)
        self.parallel, self.on_done, self.poll = parallel, on_done, poll_seconds
        self.progress = _Progress(len(self.runs), parallel)
        self.outcome = Outcome()
        self._stop = False

    def _command(self, run: Run) -> list[str]:
        workdir = self.workdir / run.relpath
        train = [sys.executable, str(self.train_script), *run.config_args(self.configs_dir)]
        train.append(f"--workdir={workdir}")
        return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *train]

    def _start(self, run: Run, lock_fd: int, slot: int = 0) -> _Active:
        run_dir = self.workdir / run.relpath
        run_dir.mkdir(parents=True, exist_ok=True)
        command = self._command(run)
        if read_json(run_dir / LAUNCH) is None:
            launch = {"identity": run.identity(), "command": shlex.join(command[4:])}
            _write_json(run_dir / LAUNCH, launch)
        resuming = (run_dir / "checkpoints").exists()
        logging.info("start %s%s", run.relpath, " (resuming)" if resuming else "")
        log = (run_dir / LOG).open("a")
        env = dict(os.environ)
        if self.parallel > 1:  # several runs share one accelerator: allocate memory on demand
            env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        env.pop("ATTNLAB_CPUS", None)
        if self.cpu_slots:  # set by the supervisor (no JAX there), not by a preexec_fn
            env["ATTNLAB_CPUS"] = ",".join(map(str, sorted(self.cpu_slots[slot])))
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(lock_fd,),
            start_new_session=True,
        )
        return _Active(run, process, log, time.monotonic(), slot=slot)

    def _finish(self, active: _Active) -> str:
        """Classify an exited run, write its ``done.json`` if it is done; a log message."""
        run, code = active.run, active.process.returncode
        active.log.close()
        run_dir = self.workdir / run.relpath
        seconds = time.monotonic() - active.started
        total = self.steps[run.relpath]
        metrics = final_metrics(run_dir, total) if code == 0 else None
        last = _last_line(run_dir / LOG)
        record = {"run": run.name, "seed": run.seed, "group": run.group}
        record.update(settings=dict(run.settings), command=shlex.join(self._command(run)[4:]))
        if metrics is not None:
            record.update(status="finished", metrics=metrics, params=count_params(run_dir))
            record.update(wall_seconds=seconds)
            _write_json(run_dir / DONE, record)
            self.outcome.finished.append(run.relpath)
            self.progress.record(seconds)
            what = f"{run.relpath} finished in {_eta(seconds)}"
        elif code == 1 and "NaN/Inf" in last:
            record.update(status="diverged", message=last, wall_seconds=seconds)
            _write_json(run_dir / DONE, record)
            self.outcome.diverged.append(run.relpath)
            what = f"{run.relpath} diverged: {last}"
        elif code == 0 and self._stop:
            what = f"{run.relpath} stopped at a checkpoint; re-run the sweep to resume it"
        else:
            self.outcome.failed.append(run.relpath)
            why = f"exit {code}: {last}" if code else "it stopped before its last step"
            what = f"{run.relpath} FAILED ({why}); see {run_dir / LOG}"
        if run.relpath in self.outcome.finished + self.outcome.diverged:
            self.progress.done += 1
        return what

    def _handle_signal(self, signum: int, frame: Any) -> None:
        del frame
        if not self._stop:
            logging.warning("signal %d: stopping the runs (each saves a checkpoint)", signum)
        self._stop = True

    def run(self) -> Outcome:
        """Run everything not yet done; returns what happened. Re-run to resume."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        lock_fd = acquire_lock(self.workdir)
        handlers = {
            s: signal.signal(s, self._handle_signal) for s in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._loop(lock_fd)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            os.close(lock_fd)
        return self.outcome

    def _loop(self, lock_fd: int) -> None:
        pending: list[Run] = []
        for run in self.runs:
            done = read_json(self.workdir / run.relpath / DONE)
            if done is None:
                pending.append(run)
                continue
            logging.info("skip %s (%s)", run.relpath, done["status"])
            self.outcome.skipped.append(run.relpath)
            self.progress.done += 1
            self.progress.record(done.get("wall_seconds", 0.0))
        logging.info("%s", self.progress.line(len(pending), self.outcome))
        active: list[_Active] = []
        while (pending and not self._stop) or active:
            while pending and len(active) < self.parallel and not self._stop:
                slot = min(set(range(self.parallel)) - {a.slot for a in active})
                active.append(self._start(pending.pop(0), lock_fd, slot))
            time.sleep(self.poll)
            if self._stop:
                for a in active:
                    if a.process.poll() is None and not a.signalled:
                        a.process.send_signal(signal.SIGTERM)
                        a.signalled = True
            for a in [a for a in active if a.process.poll() is not None]:
                active.remove(a)
                what = self._finish(a)
                left = len(pending) + len(active)
                logging.info("%s | %s", what, self.progress.line(left, self.outcome))
                if self.on_done is not None:
                    self.on_done()
        self.outcome.stopped = self._stop


def _last_line(path: Path) -> str:
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

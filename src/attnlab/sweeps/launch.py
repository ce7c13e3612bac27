"""Run a sweep's runs as jobs, on this machine or on SLURM (through submitit), resumably.

Every run is one job that calls ``jobs.run_spec`` (the run contract: train, then record the
outcome in the run's directory). ``run_sweep`` submits the runs that are neither done
(``done.json``) nor still queued or running, watches them with a progress line, and returns
what happened; started again, it does the same, so a stopped sweep resumes.

- ``LocalLauncher``: each job is ``python -m attnlab.sweeps.jobs SPEC``, in its own session,
  ``parallel`` at a time, each pinned to its own share of the CPUs. SIGTERM or Ctrl-C on the
  sweep reaches every job once (the trainer saves a checkpoint); the sweep waits for them.
  Killed (SIGKILL), it leaves its jobs running: they finish and record their outcome.
- ``SlurmLauncher``: one submitit job array; the cluster runs ``max_parallel`` at a time.
  Stopping the sweep leaves the jobs to the cluster.

Files in the sweep directory DIR:
- ``jobs.json``: each submitted run's launcher and job id (a local job's is its process id),
  so a sweep started again watches the jobs still queued or running instead of doubling them.
- ``sweep.lock``: held by the process watching the sweep; a second one is refused.
- ``slurm/``: submitit's files for each SLURM job (the pickled call, ``<job>_0_log.out``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from absl import logging

from attnlab.sweeps.jobs import ATTEMPT, DONE, LOG, RunSpec, SweepJob, read_json, write_json
from attnlab.train.workdir import lock_holder, this_process, try_lock

JOBS, SWEEP_LOCK, SLURM_DIR = "jobs.json", "sweep.lock", "slurm"
# squeue states of a job that has not ended (a requeued job goes back to PENDING).
_SLURM_ACTIVE = {
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED",
    "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED",
    "SPECIAL_EXIT",
}  # fmt: skip


@dataclasses.dataclass
class Outcome:
    """What one invocation did: runs finished, skipped, diverged, failed, and if it stopped."""

    finished: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    diverged: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    stopped: bool = False
    left_running: list[str] = dataclasses.field(default_factory=list)  # SLURM job ids


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


def _pid_runs(pid: int, run_dir: str) -> bool:
    """Whether process ``pid`` of this host is the local job of ``run_dir``."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no /proc (macOS): the pid is alive, trust it
    return "attnlab.sweeps.jobs" in command and run_dir in command


class LocalLauncher:
    """Jobs on this machine, ``parallel`` at a time (see the module docstring)."""

    name = "local"

    def __init__(self, parallel: int = 1, *, pin_cpus: bool = True) -> None:
        if parallel < 1:
            raise ValueError(f"--parallel must be >= 1, got {parallel}")
        # Each run gets its own share of the CPUs, so that the XLA thread pools of two runs do
        # not contend for the same cores and steps/s stay comparable between runs.
        self.slots = cpu_slots(parallel) if pin_cpus and parallel > 1 else []
        self.parallel = parallel
        self.queue: list[RunSpec] = []
        self.children: dict[str, tuple[subprocess.Popen, int]] = {}  # job id -> (job, slot)
        self.adopted: dict[str, str] = {}  # job id -> run dir, from an earlier sweep process

    def submit(self, specs: Sequence[RunSpec]) -> dict[str, str]:
        self.queue.extend(specs)  # started by start_ready, as slots free up
        return {}

    def start_ready(self) -> dict[str, str]:
        started = {}
        while self.queue and len(self._running()) < self.parallel:
            spec = self.queue.pop(0)
            slot = min(set(range(self.parallel)) - {s for _, s in self._running().values()})
            env = {}
            if self.parallel > 1:  # several runs share one accelerator: allocate on demand
                env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
            cpus = tuple(sorted(self.slots[slot])) if self.slots else ()
            spec = dataclasses.replace(spec, cpus=cpus, env={**spec.env, **env})
            Path(spec.run_dir).mkdir(parents=True, exist_ok=True)
            with (Path(spec.run_dir) / LOG).open("a") as log:
                job = subprocess.Popen(
                    [sys.executable, "-m", "attnlab.sweeps.jobs", json.dumps(_as_json(spec))],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C at the terminal reaches the sweep only
                )
            self.children[str(job.pid)] = (job, slot)
            started[spec.relpath] = str(job.pid)
        return started

    def _running(self) -> dict[str, tuple[subprocess.Popen, int]]:
        return {k: v for k, v in self.children.items() if v[0].poll() is None}

    def adopt(self, job_id: str, run_dir: str) -> bool:
        """Watch the job of an earlier sweep process, if it still runs."""
        if _pid_runs(int(job_id), run_dir):
            self.adopted[job_id] = run_dir
            return True
        return False

    def active(self, job_id: str) -> bool:
        if job_id in self.children:
            return self.children[job_id][0].poll() is None
        return _pid_runs(int(job_id), self.adopted.get(job_id, ""))

    def refresh(self) -> None:
        pass

    def stop(self) -> list[str]:
        """Every job gets SIGTERM once (its trainer saves); queued runs are not started."""
        self.queue.clear()
        for job_id in [*self._running(), *self.adopted]:
            if self.active(job_id):
                os.kill(int(job_id), signal.SIGTERM)
        return []  # the sweep waits for them


class SlurmLauncher:
    """Jobs on SLURM, submitted by submitit as one job array (see the module docstring)."""

    name = "slurm"

    def __init__(
        self,
        folder: Path,
        *,
        job_name: str,
        partition: str | None = None,
        time_min: int = 60,
        cpus_per_task: int | None = None,
        gpus_per_task: int | None = None,
        max_parallel: int | None = None,
    ) -> None:
        missing = [c for c in ("sbatch", "srun", "squeue") if shutil.which(c) is None]
        if missing:
            raise ValueError(
                f"--launcher=slurm needs SLURM's {', '.join(missing)} on PATH; "
                "run on a SLURM login node, or use --launcher=local"
            )
        import submitit

        # A job that meets its time limit is requeued (SweepJob.checkpoint) as often as needed.
        self.executor = submitit.AutoExecutor(
            folder / "%j", cluster="slurm", slurm_max_num_timeout=1000
        )
        params: dict[str, Any] = {
            "name": job_name,
            "timeout_min": time_min,
            "stderr_to_stdout": True,
            "slurm_additional_parameters": {"requeue": True},
        }
        optional = {
            "slurm_partition": partition,  # None: the cluster's default partition
            "cpus_per_task": cpus_per_task,
            "slurm_gpus_per_task": gpus_per_task,
            "slurm_array_parallelism": max_parallel,
        }
        params.update({k: v for k, v in optional.items() if v})
        self.executor.update_parameters(**params)
        self.parallel = max_parallel or 0
        self.folder = folder
        self.states: dict[str, str] = {}

    def submit(self, specs: Sequence[RunSpec]) -> dict[str, str]:
        if not specs:
            return {}
        with self.executor.batch():
            jobs = [self.executor.submit(SweepJob(), spec) for spec in specs]
        self.parallel = self.parallel or len(specs)
        return {spec.relpath: job.job_id for spec, job in zip(specs, jobs, strict=True)}

    def start_ready(self) -> dict[str, str]:
        return {}

    def adopt(self, job_id: str, run_dir: str) -> bool:
        del run_dir
        return self.active(job_id)  # as of the last refresh

    def refresh(self) -> None:
        """One ``squeue`` for every job of this user (array tasks one a line)."""
        command = ["squeue", "--me", "--array", "--noheader", "--states=all", "-o", "%i %T"]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        except (subprocess.SubprocessError, OSError) as err:
            logging.warning("squeue failed (%s); keeping the last known job states", err)
            return
        self.states = dict(line.split()[:2] for line in out.stdout.splitlines() if line.strip())

    def active(self, job_id: str) -> bool:
        return self.states.get(job_id) in _SLURM_ACTIVE

    def log(self, job_id: str) -> Path:
        return self.folder / job_id / f"{job_id}_0_log.out"

    def stop(self) -> list[str]:
        return [job_id for job_id, state in self.states.items() if state in _SLURM_ACTIVE]


def _as_json(spec: RunSpec) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(spec).items()}


def _eta(seconds: float | None) -> str:
    return "unknown" if seconds is None else str(datetime.timedelta(seconds=round(seconds)))


class Progress:
    """Runs done out of total, and an ETA: the mean wall time of the runs done so far times
    the runs left, over ``parallel``. (Per run rather than per step: in a fixed-examples sweep
    small batches take many cheap steps, and large batches few costly ones.)"""

    def __init__(self, total: int, parallel: int) -> None:
        self.total, self.parallel = total, max(1, parallel)
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


class SweepLockedError(ValueError):
    """Another process watches this sweep."""


def run_sweep(
    specs: Sequence[RunSpec],
    launcher: LocalLauncher | SlurmLauncher,
    *,
    sweep_dir: Path,
    on_done: Callable[[], None] | None = None,
    poll_seconds: float = 1.0,
) -> Outcome:
    """Run every spec not yet done, as jobs of ``launcher``; returns what happened."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = try_lock(sweep_dir / SWEEP_LOCK, this_process())
    if lock is None:
        raise SweepLockedError(
            f"{sweep_dir} is in use by another ablate.py ({lock_holder(sweep_dir / SWEEP_LOCK)}); "
            "wait for it to end"
        )
    watcher = _Watcher(specs, launcher, sweep_dir, on_done, poll_seconds)
    handlers = {s: signal.signal(s, watcher.stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        watcher.run()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        os.close(lock)
    return watcher.outcome


class _Watcher:
    def __init__(self, specs, launcher, sweep_dir, on_done, poll_seconds) -> None:
        self.specs = {s.relpath: s for s in specs}
        self.launcher, self.dir, self.on_done, self.poll = (
            launcher,
            sweep_dir,
            on_done,
            poll_seconds,
        )
        self.jobs: dict[str, dict[str, str]] = read_json(sweep_dir / JOBS) or {}
        self.outcome = Outcome()
        self.progress = Progress(len(specs), getattr(launcher, "parallel", 1))
        self.stopping = False

    def stop(self, signum: int, frame: Any) -> None:
        del frame
        if self.stopping:
            return
        self.stopping = True
        logging.warning("signal %d: stopping the sweep", signum)
        self.outcome.left_running = self.launcher.stop()

    def _record(self, ids: dict[str, str]) -> None:
        for relpath, job_id in ids.items():
            self.jobs[relpath] = {"launcher": self.launcher.name, "id": job_id}
            if self.launcher.name == "local":
                self.jobs[relpath]["host"] = socket.gethostname()
        if ids:
            write_json(self.dir / JOBS, self.jobs)

    def _still_active(self, relpath: str) -> bool:
        """Whether the job recorded for ``relpath`` (by an earlier sweep) is queued or running."""
        job = self.jobs.get(relpath)
        if job is None or job["launcher"] != self.launcher.name:
            return False
        if job["launcher"] == "local" and job.get("host") != socket.gethostname():
            return False
        return self.launcher.adopt(job["id"], self.specs[relpath].run_dir)

    def run(self) -> None:
        watched: dict[str, str | None] = {}  # relpath -> job id (None: queued here)
        pending = []
        self.launcher.refresh()
        for relpath, spec in self.specs.items():
            done = read_json(Path(spec.run_dir) / DONE)
            if done is not None:
                logging.info("skip %s (%s)", relpath, done["status"])
                self.outcome.skipped.append(relpath)
                self.progress.done += 1
                self.progress.record(done.get("wall_seconds", 0.0))
            elif self._still_active(relpath):
                job_id = self.jobs[relpath]["id"]
                logging.info("%s is still queued or running (job %s): watching it", relpath, job_id)
                watched[relpath] = job_id
            else:
                Path(spec.run_dir, ATTEMPT).unlink(missing_ok=True)
                logging.info("submit %s%s", relpath, _resuming(spec))
                pending.append(spec)
                watched[relpath] = None
        logging.info("%s", self.progress.line(len(watched), self.outcome))
        ids = self.launcher.submit(pending)
        self._record(ids)
        watched.update(ids)
        self.progress.parallel = max(1, self.launcher.parallel)
        while watched:
            if self.stopping and isinstance(self.launcher, SlurmLauncher):
                left = ", ".join(sorted(self.outcome.left_running)) or "none"
                logging.warning(
                    "the jobs stay on the cluster (still queued or running: %s); run the same "
                    "command to watch them again, or scancel them",
                    left,
                )
                break
            started = {} if self.stopping else self.launcher.start_ready()
            self._record(started)
            watched.update(started)
            if self.stopping:  # queued local runs are never started
                watched = {k: v for k, v in watched.items() if v is not None}
            time.sleep(self.poll)
            self.launcher.refresh()
            for relpath, job_id in list(watched.items()):
                if job_id is None or self.launcher.active(job_id):
                    continue
                del watched[relpath]
                logging.info(
                    "%s | %s",
                    self._finish(relpath, job_id),
                    self.progress.line(len(watched), self.outcome),
                )
                if self.on_done is not None:
                    self.on_done()
        self.outcome.stopped = self.stopping

    def _finish(self, relpath: str, job_id: str) -> str:
        """Classify a run whose job has ended; a log message."""
        run_dir = Path(self.specs[relpath].run_dir)
        done = read_json(run_dir / DONE)
        if done is not None and done["status"] == "finished":
            self.outcome.finished.append(relpath)
            self.progress.done += 1
            self.progress.record(done.get("wall_seconds", 0.0))
            return f"{relpath} finished in {_eta(done.get('wall_seconds'))}"
        if done is not None:
            self.outcome.diverged.append(relpath)
            self.progress.done += 1
            return f"{relpath} diverged: {done.get('message', '')}"
        attempt = read_json(run_dir / ATTEMPT)
        if attempt is not None and attempt["status"] == "stopped" and self.stopping:
            return f"{relpath} stopped at a checkpoint; re-run the sweep to resume it"
        self.outcome.failed.append(relpath)
        if attempt is not None:
            return f"{relpath} FAILED ({attempt['message']}); see {run_dir / LOG}"
        log = self.launcher.log(job_id) if isinstance(self.launcher, SlurmLauncher) else None
        return f"{relpath} FAILED (job {job_id} ended without a record); see {log or run_dir / LOG}"


def _resuming(spec: RunSpec) -> str:
    return " (resuming)" if (Path(spec.run_dir) / "checkpoints").exists() else ""

"""Run a sweep's runs as jobs, on this machine or on SLURM (through submitit), resumably.

``run_sweep`` submits every run that is neither done nor still queued or running (its job is
in ``DIR/jobs.json``), watches the jobs with a progress line, and sorts each run as it ends.
Started again, it does the same, so a stopped sweep resumes. docs/cluster.md describes both
launchers, the sweep's files, and what Ctrl-C does.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import submitit
from absl import logging

from attnlab.sweeps.jobs import ATTEMPT, DONE, LOG, RunSpec, SweepJob, read_json, write_json
from attnlab.train.workdir import lock_holder, this_process, try_lock

JOBS, SWEEP_LOCK, SLURM_DIR = "jobs.json", "sweep.lock", "slurm"
# squeue states of a job that has not ended (a requeued job goes back to PENDING).
_SLURM_ACTIVE = set(
    "PENDING CONFIGURING RUNNING COMPLETING REQUEUED REQUEUE_FED REQUEUE_HOLD RESIZING "
    "SUSPENDED SIGNALING STAGE_OUT STOPPED SPECIAL_EXIT".split()
)


def cpu_slots(parallel: int) -> list[frozenset[int]]:
    """This process's CPUs cut into ``parallel`` disjoint, near-equal sets (lowest first); none
    where the OS has no CPU affinity (macOS) or fewer CPUs than runs: they share every CPU."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < parallel:
        return []
    return [frozenset(map(int, part)) for part in np.array_split(cpus, parallel)]


class LocalLauncher:
    """Jobs on this machine, ``parallel`` at a time, each in its own session (Ctrl-C reaches
    the sweep only) and, with ``pin_cpus``, on its own share of the CPUs, so that the XLA
    thread pools of two runs do not contend and steps/s stay comparable between runs."""

    name, host = "local", socket.gethostname()

    def __init__(self, parallel: int = 1, *, pin_cpus: bool = True) -> None:
        if parallel < 1:
            raise ValueError(f"--parallel must be >= 1, got {parallel}")
        self.parallel = parallel
        self.slots = cpu_slots(parallel) if pin_cpus and parallel > 1 else []
        self.jobs: dict[str, tuple[subprocess.Popen, int]] = {}  # job id -> (job, its slot)

    def submit(self, specs: Sequence[RunSpec]) -> dict[str, str]:
        """Start the first ``specs``, as many as there are free slots; their job ids."""
        busy = {slot for job, slot in self.jobs.values() if job.poll() is None}
        started = {}
        for spec, slot in zip(specs, sorted(set(range(self.parallel)) - busy), strict=False):
            env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"} if self.parallel > 1 else {}
            cpus = sorted(self.slots[slot]) if self.slots else []
            spec = dataclasses.replace(spec, cpus=cpus, env={**spec.env, **env})
            Path(spec.run_dir).mkdir(parents=True, exist_ok=True)
            with (Path(spec.run_dir) / LOG).open("a") as log:
                job = subprocess.Popen(
                    [sys.executable, "-m", "attnlab.sweeps.jobs", json.dumps(spec.__dict__)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.jobs[str(job.pid)] = (job, slot)
            started[spec.relpath] = str(job.pid)
        return started

    def refresh(self) -> None:
        pass

    def active(self, job_id: str, run_dir: str) -> bool:
        """Whether the job runs: one of ours, or one an earlier sweep process started."""
        if job_id in self.jobs:
            return self.jobs[job_id][0].poll() is None
        try:
            os.kill(int(job_id), 0)
            command = Path(f"/proc/{job_id}/cmdline").read_bytes().decode(errors="replace")
        except (ProcessLookupError, PermissionError):
            return False
        except OSError:
            return True  # no /proc (macOS): the pid is alive, trust it
        return "attnlab.sweeps.jobs" in command and run_dir in command

    def stop(self, jobs: Mapping[str, str]) -> None:
        """SIGTERM to each of ``jobs`` (job id -> run dir) that runs: its trainer saves."""
        for job_id, run_dir in jobs.items():
            if self.active(job_id, run_dir):
                os.kill(int(job_id), signal.SIGTERM)


class SlurmLauncher:
    """Jobs on SLURM: one submitit job array, ``max_parallel`` running at once; a job warned of
    its time limit saves and is requeued (``jobs.SweepJob``). Job states come from ``squeue``:
    submitit's own watcher asks ``sacct``, which needs SLURM's accounting."""

    name, host = "slurm", None

    def __init__(self, folder: Path, max_parallel: int | None = None, **params: Any) -> None:
        """``params``: submitit's (``name``, ``timeout_min``, ``slurm_partition``,
        ``cpus_per_task``, ``slurm_gpus_per_task``); one that is None is the cluster's default."""
        missing = [c for c in ("sbatch", "srun", "squeue") if shutil.which(c) is None]
        if missing:
            raise ValueError(
                f"--launcher=slurm needs SLURM's {', '.join(missing)} on PATH; "
                "run on a SLURM login node, or use --launcher=local"
            )
        # A job that meets its time limit is requeued (SweepJob.checkpoint) as often as needed.
        self.executor = submitit.AutoExecutor(
            folder / "%j", cluster="slurm", slurm_max_num_timeout=1000
        )
        params.update(stderr_to_stdout=True, slurm_array_parallelism=max_parallel)
        params.update(slurm_additional_parameters={"requeue": True})
        self.executor.update_parameters(**{k: v for k, v in params.items() if v})
        self.folder, self.parallel = folder, max_parallel or 0
        self.states: dict[str, str] = {}

    def submit(self, specs: Sequence[RunSpec]) -> dict[str, str]:
        if not specs:
            return {}
        with self.executor.batch():
            jobs = [self.executor.submit(SweepJob(), spec) for spec in specs]
        self.parallel = self.parallel or len(specs)
        return {spec.relpath: job.job_id for spec, job in zip(specs, jobs, strict=True)}

    def refresh(self) -> None:
        """One ``squeue`` for every job of this user (array tasks one a line)."""
        command = ["squeue", "--me", "--array", "--noheader", "--states=all", "-o", "%i %T"]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        except (subprocess.SubprocessError, OSError) as err:
            logging.warning("squeue failed (%s); keeping the last known job states", err)
            return
        self.states = dict(line.split()[:2] for line in out.stdout.splitlines() if line.strip())

    def active(self, job_id: str, run_dir: str) -> bool:
        del run_dir
        return self.states.get(job_id) in _SLURM_ACTIVE  # as of the last refresh


@dataclasses.dataclass
class Outcome:
    """What one invocation did: runs finished, skipped, diverged, failed, and if it stopped."""

    total: int = 0
    parallel: int = 1
    finished: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    diverged: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    stopped: bool = False
    seconds: list[float] = dataclasses.field(default_factory=list)  # each done run's wall time

    def line(self, left: int) -> str:
        """``2/5 runs done | ETA 0:00:30``: the ETA is the mean wall time of the runs done times
        the runs left, over ``parallel`` (per run, not per step: batch sizes differ in cost)."""
        done = len(self.finished) + len(self.skipped) + len(self.diverged)
        eta = left * statistics.fmean(self.seconds) / self.parallel if self.seconds else None
        extra = [
            f"{len(v)} {k}" for k in ("skipped", "diverged", "failed") if (v := getattr(self, k))
        ]
        extra_text = f" ({', '.join(extra)})" if extra else ""
        return f"{done}/{self.total} runs done{extra_text} | ETA {_eta(eta)}"

    def count(self, kind: str, relpath: str, done: Mapping) -> None:
        getattr(self, kind).append(relpath)
        if done.get("wall_seconds"):
            self.seconds.append(done["wall_seconds"])


def _eta(seconds: float | None) -> str:
    return "unknown" if seconds is None else str(datetime.timedelta(seconds=round(seconds)))


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
    """Run every spec not yet done, as jobs of ``launcher``; what happened."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = try_lock(sweep_dir / SWEEP_LOCK, this_process())
    if lock is None:
        raise SweepLockedError(
            f"{sweep_dir} is in use by another ablate.py ({lock_holder(sweep_dir / SWEEP_LOCK)}); "
            "wait for it to end"
        )
    outcome = Outcome(total=len(specs), parallel=max(1, launcher.parallel))

    def stop(signum: int, frame: object) -> None:
        if not outcome.stopped:
            logging.warning("signal %d: stopping the sweep", signum)
        outcome.stopped = True

    handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        _watch({s.relpath: s for s in specs}, launcher, sweep_dir, outcome, on_done, poll_seconds)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        os.close(lock)
    return outcome


def _watch(specs, launcher, sweep_dir, outcome, on_done, poll_seconds) -> None:
    """Submit the runs to do, watch the jobs until each has ended (or the sweep is stopped)."""
    jobs: dict[str, dict] = read_json(sweep_dir / JOBS) or {}
    pending, watched = [], {}  # runs to submit; relpath -> job id
    launcher.refresh()
    for relpath, spec in specs.items():
        done, job = read_json(Path(spec.run_dir) / DONE), jobs.get(relpath, {})
        ours = (job.get("launcher"), job.get("host")) == (launcher.name, launcher.host)
        if done is not None:
            logging.info("skip %s (%s)", relpath, done["status"])
            outcome.count("skipped", relpath, done)
        elif ours and launcher.active(job["id"], spec.run_dir):
            logging.info("%s is still queued or running (job %s): watching it", relpath, job["id"])
            watched[relpath] = job["id"]
        else:
            Path(spec.run_dir, ATTEMPT).unlink(missing_ok=True)
            resuming = " (resuming)" if Path(spec.run_dir, "checkpoints").exists() else ""
            logging.info("submit %s%s", relpath, resuming)
            pending.append(spec)
    logging.info("%s", outcome.line(len(pending) + len(watched)))
    signalled = False
    while pending or watched:
        if outcome.stopped and launcher.name == "slurm":
            left = ", ".join(sorted(watched.values())) or "none"
            logging.warning(
                "the jobs stay on the cluster (still queued or running: %s); run the same "
                "command to watch them again, or scancel them",
                left,
            )
            return
        if outcome.stopped and not signalled:  # each job gets one SIGTERM; queued runs wait
            launcher.stop({job_id: specs[r].run_dir for r, job_id in watched.items()})
            pending, signalled = [], True
        started = launcher.submit(pending)
        pending = [s for s in pending if s.relpath not in started]
        for relpath, job_id in started.items():
            jobs[relpath] = {"launcher": launcher.name, "id": job_id, "host": launcher.host}
            watched[relpath] = job_id
        if started:
            write_json(sweep_dir / JOBS, jobs)
        outcome.parallel = max(1, launcher.parallel)
        time.sleep(poll_seconds)
        launcher.refresh()
        for relpath, job_id in list(watched.items()):
            if not launcher.active(job_id, specs[relpath].run_dir):
                del watched[relpath]
                message = _finish(relpath, job_id, Path(specs[relpath].run_dir), launcher, outcome)
                logging.info("%s | %s", message, outcome.line(len(pending) + len(watched)))
                if on_done is not None:
                    on_done()


def _finish(relpath: str, job_id: str, run_dir: Path, launcher, outcome: Outcome) -> str:
    """Sort a run whose job has ended; a log message."""
    done = read_json(run_dir / DONE)
    if done is not None and done["status"] == "finished":
        outcome.count("finished", relpath, done)
        return f"{relpath} finished in {_eta(done.get('wall_seconds'))}"
    if done is not None:
        outcome.count("diverged", relpath, done)
        return f"{relpath} diverged: {done.get('message', '')}"
    attempt = read_json(run_dir / ATTEMPT)
    if attempt is not None and attempt["status"] == "stopped" and outcome.stopped:
        return f"{relpath} stopped at a checkpoint; re-run the sweep to resume it"
    outcome.failed.append(relpath)
    if attempt is not None:
        return f"{relpath} FAILED ({attempt['message']}); see {run_dir / LOG}"
    log = launcher.folder / job_id / f"{job_id}_0_log.out" if launcher.name == "slurm" else None
    return f"{relpath} FAILED (job {job_id} ended without a record); see {log or run_dir / LOG}"

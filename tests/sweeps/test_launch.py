"""The local launcher keeps finished and diverged runs, retries failed ones, runs N at once,
passes a stop on once, and never starts a run twice.

These tests launch ``fake_train.py`` (no JAX, instant) in place of experiments/train.py, so
they check the bookkeeping of the run contract (``jobs.run_spec``) and of ``run_sweep``;
test_resume.py runs the real trainer, and tests/slurm/ the SLURM launcher.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from attnlab.sweeps.jobs import DONE, LOG, RunSpec, check_launches
from attnlab.sweeps.launch import JOBS, LocalLauncher, SweepLockedError, cpu_slots, run_sweep
from attnlab.sweeps.spec import Run

FAKE = Path(__file__).parent / "fake_train.py"


def fake_runs(modes, *, sleep=0.0, steps=10):
    return [
        Run(
            sweep="fake",
            group="g",
            task="fake.py",
            name=f"mode={mode},i={i}",
            seed=0,
            settings={"mode": mode},
            overrides={"mode": mode, "sleep": sleep, "num_train_steps": steps, "seed": 0},
        )
        for i, mode in enumerate(modes)
    ]


def specs_of(runs, workdir):
    return [
        RunSpec.of(
            r,
            sweep_dir=workdir,
            train_script=FAKE,
            configs_dir=workdir,
            steps=int(r.overrides["num_train_steps"]),
        )
        for r in runs
    ]


def sweep(runs, workdir, *, parallel=1):
    launcher = LocalLauncher(parallel)
    return run_sweep(specs_of(runs, workdir), launcher, sweep_dir=workdir, poll_seconds=0.05)


def starts(run_dir: Path) -> int:
    path = run_dir / "started"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_parallel_runs_overlap_in_time_and_record_final_metrics(tmp_path):
    runs = fake_runs(["ok", "ok"], sleep=1.5)
    outcome = sweep(runs, tmp_path, parallel=2)
    assert sorted(outcome.finished) == sorted(r.relpath for r in runs) and not outcome.failed
    times = [json.loads((tmp_path / r.relpath / "times.json").read_text()) for r in runs]
    assert max(t[0] for t in times) < min(t[1] for t in times)  # both were running at once
    done = json.loads((tmp_path / runs[0].relpath / DONE).read_text())
    assert done["status"] == "finished" and done["settings"] == {"mode": "ok"}
    # The final step's train and eval records, timing keys replaced by medians over windows.
    assert done["metrics"] == {
        "step": 10,
        "loss": 1.0,
        "eval_wer": 0.5,
        "steps_per_sec": statistics.median([10.0, 30.0]),
        "tokens_per_sec": 5.0,
    }
    assert isinstance(done["params"], int) and done["params"] > 0
    if len(os.sched_getaffinity(0)) >= 2:  # each run pinned to its own half of the CPUs
        cpus = [set(json.loads((tmp_path / r.relpath / "cpus.json").read_text())) for r in runs]
        assert cpus[0] and cpus[1] and not cpus[0] & cpus[1]
        assert cpus[0] | cpus[1] == os.sched_getaffinity(0)


@pytest.mark.parametrize("parallel", [1, 2, 3, 5])
def test_cpu_slots_split_the_cpus_into_disjoint_near_equal_sets(parallel):
    cpus = os.sched_getaffinity(0)
    slots = cpu_slots(parallel)
    if len(cpus) < parallel:
        assert slots == []
        return
    assert len(slots) == parallel and set().union(*slots) == cpus
    assert sum(len(s) for s in slots) == len(cpus)  # disjoint
    assert max(map(len, slots)) - min(map(len, slots)) <= 1


def test_divergence_is_a_result_and_a_failure_is_retried(tmp_path):
    runs = fake_runs(["ok", "nan", "crash"])
    outcome = sweep(runs, tmp_path)
    ok, nan, crash = (r.relpath for r in runs)
    ok_mtime = (tmp_path / ok / "times.json").stat().st_mtime_ns
    assert (outcome.finished, outcome.diverged, outcome.failed) == ([ok], [nan], [crash])
    diverged = json.loads((tmp_path / nan / DONE).read_text())
    assert diverged["status"] == "diverged" and "NaN/Inf at step 3" in diverged["message"]
    assert not (tmp_path / crash / DONE).exists()

    again = sweep(runs, tmp_path)
    assert again.skipped == [ok, nan] and again.failed == [crash] and not again.finished
    assert (tmp_path / crash / LOG).read_text().count("something broke") == 2
    assert (tmp_path / ok / "times.json").stat().st_mtime_ns == ok_mtime  # not started again


def test_a_run_started_with_other_settings_is_refused(tmp_path):
    sweep(fake_runs(["ok"]), tmp_path)
    check_launches(fake_runs(["ok"]), tmp_path)  # the same run: fine
    with pytest.raises(ValueError, match="num_train_steps=10"):
        check_launches(fake_runs(["ok"], steps=20), tmp_path)


def test_sigterm_stops_the_sweep_and_each_run_gets_one_sigterm(tmp_path):
    runs = fake_runs(["ok", "ok"], sleep=30.0)
    before = signal.getsignal(signal.SIGTERM)

    def terminate_once_the_first_run_is_up():
        while not starts(tmp_path / runs[0].relpath):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_once_the_first_run_is_up)
    killer.start()
    started = time.monotonic()
    outcome = sweep(runs, tmp_path)
    killer.join()
    assert time.monotonic() - started < 20
    assert outcome.stopped and not outcome.failed and not outcome.finished
    assert (tmp_path / runs[0].relpath / "sigterms.txt").read_text() == "1"
    assert not (tmp_path / runs[0].relpath / DONE).exists()
    assert not (tmp_path / runs[1].relpath).exists()  # never started
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is given back


def test_a_killed_sweep_leaves_its_runs_going_and_a_new_one_watches_them(tmp_path):
    """SIGKILL on the sweep: its job finishes on its own; the sweep started again waits for
    it (never a second start), and a second sweep at the same time is refused in one line."""
    runs = fake_runs(["ok"], sleep=4.0)
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from test_launch import fake_runs, sweep;"
        "sweep(fake_runs(['ok'], sleep=4.0), Path(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)], env=env
    )
    run_dir = tmp_path / runs[0].relpath
    deadline = time.monotonic() + 60
    while not starts(run_dir):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(
        SweepLockedError, match=f"in use by another ablate.py \\(host .*pid {first.pid}"
    ):
        sweep(runs, tmp_path)
    first.kill()
    first.wait()
    job = json.loads((tmp_path / JOBS).read_text())[runs[0].relpath]
    assert job["launcher"] == "local" and int(job["id"]) != first.pid
    os.kill(int(job["id"]), 0)  # the job outlived the sweep

    again = sweep(runs, tmp_path)
    assert again.finished == [runs[0].relpath] and not again.failed
    assert starts(run_dir) == 1  # watched, not started twice
    assert json.loads((run_dir / DONE).read_text())["status"] == "finished"


def test_progress_line_counts_runs_and_extrapolates_the_mean_run_time():
    from attnlab.sweeps.launch import Outcome

    outcome = Outcome(total=5, parallel=2)
    outcome.count("finished", "a", {"wall_seconds": 10.0})
    outcome.count("finished", "b", {"wall_seconds": 30.0})
    # Three runs left at 20 s each, two at a time: 30 s.
    assert outcome.line(3) == "2/5 runs done | ETA 0:00:30"

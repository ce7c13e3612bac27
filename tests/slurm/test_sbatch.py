"""``experiments/slurm/train.sbatch`` as a user runs it: near its time limit (the USR1 that its
``--signal=B:USR1@120`` asks for, sent here by ``scancel --signal=USR1 --batch``) the trainer
saves, the job requeues itself, and the requeued job resumes and trains to the end."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab.train.writers import read_metrics

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

ROOT = Path(__file__).resolve().parents[2]
STEPS = 200


def _scontrol(*args: str) -> str:
    done = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _checkpoints(workdir: Path) -> list[int]:
    folder = workdir / "checkpoints"
    return (
        sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []
    )


def test_train_sbatch_saves_requeues_and_resumes_near_its_time_limit(tmp_path, slurm_env):
    workdir, log = tmp_path / "run", tmp_path / "job.out"
    env = {
        **slurm_env,
        "CONFIG": f"{ROOT / 'experiments/configs/synthetic.py'}:at,quick",
        "WORKDIR": str(workdir),
        "PYTHON": sys.executable,
        "EXTRA": f"--config.num_train_steps={STEPS} --config.checkpoint_every_steps=10 "
        f"--config.log_every_steps=10 --config.eval_every_steps={STEPS}",
    }
    sbatch = ["sbatch", "--parsable", f"--chdir={ROOT}", f"--output={log}", "--time=10"]
    sbatch += ["--cpus-per-task=1", str(ROOT / "experiments/slurm/train.sbatch")]
    submit = subprocess.run(sbatch, env=env, capture_output=True, text=True, timeout=30)
    assert submit.returncode == 0, submit.stderr
    job = submit.stdout.strip().split(";")[0]
    try:
        deadline = time.monotonic() + 300
        while not _checkpoints(workdir):
            assert time.monotonic() < deadline, _scontrol("show", "job", job)
            time.sleep(0.05)
        subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, timeout=30)
        # Requeued, it starts again once its old credential has expired (10 s here).
        while "JobState=COMPLETED" not in (state := _scontrol("show", "job", job)):
            assert "JobState=FAILED" not in state, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    finally:
        subprocess.run(["scancel", job], timeout=30)
    text = log.read_text()
    assert "time limit near" in text and "(restart 1)" in text
    stopped = int(re.findall(r"stopped at step (\d+) on SIGTERM; checkpoint saved", text)[0])
    resumed = int(re.findall(r"resumed from step (\d+)", text)[0])
    assert 0 < stopped == resumed < STEPS
    assert max(r["step"] for r in read_metrics(workdir)) == STEPS
    assert f"final: step {STEPS}" in text

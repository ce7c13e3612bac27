"""ablate.py fails fast: a bad sweep, axis, value, key or group stops it before any run, with
one line that names the problem and the valid choices, and a non-zero exit."""

import subprocess
import sys
from pathlib import Path

import pytest

from attnlab.nn.config import ATTENTIONS
from attnlab.sweeps.spec import load_sweeps

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
ABLATE = EXPERIMENTS / "ablate.py"
SWEEPS = load_sweeps(EXPERIMENTS / "configs" / "ablations.py")


def ablate(tmp_path, env, *args):
    workdir = tmp_path / "sweep"
    command = [sys.executable, str(ABLATE), f"--workdir={workdir}", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return result.returncode, lines, workdir


def test_unknown_sweep_lists_every_sweep(tmp_path, sweep_env):
    code, lines, workdir = ablate(tmp_path, sweep_env, "--sweep=norm")
    assert code == 2 and len(lines) == 1
    assert lines[0] == f"ablate.py: error: unknown sweep 'norm'; valid: {', '.join(SWEEPS)}"
    assert not workdir.exists()


def test_a_sweeps_file_without_sweeps_is_refused_in_one_line(tmp_path, sweep_env):
    empty = tmp_path / "mine.py"
    empty.write_text("X = 1\n")
    broken = tmp_path / "broken.py"
    broken.write_text("SWEEPS = {\n")
    for path, why in (
        (empty, "defines no SWEEPS dict of Sweep"),
        (tmp_path / "no.py", "no such file"),
        (broken, "SyntaxError: '{' was never closed (broken.py, line 1)"),
    ):
        code, lines, workdir = ablate(tmp_path, sweep_env, "--sweep=norm", f"--sweeps_file={path}")
        assert code == 2 and lines == [f"ablate.py: error: sweeps file {path}: {why}"]
        assert not workdir.exists()


def test_axis_value_the_model_rejects_fails_before_any_run(tmp_path, sweep_env):
    code, lines, workdir = ablate(
        tmp_path, sweep_env, "--sweep=attention_scores", "--axis=model.attention=softmax,cosine"
    )
    assert code == 2 and len(lines) == 1
    assert "unknown model.attention 'cosine'" in lines[0]
    assert lines[0].endswith(f"valid: {', '.join(ATTENTIONS)}")
    assert not workdir.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--sweep=heads", "--axis=model.norm=layer"],
            "no axis 'model.norm'; valid: model.num_heads",
        ),
        (
            ["--sweep=heads", "--axis=model.num_heads=3"],
            "d_model 64 is not divisible by num_heads 3",
        ),
        (
            ["--sweep=position", "--groups=copy"],
            "unknown group 'copy' of sweep position; valid: g2p, reverse",
        ),
        (
            ["--sweep=input", "--set=learning_rat=0.1"],
            "unknown config key 'learning_rat'; valid keys:",
        ),
        (
            ["--sweep=heads", "--slurm_partition=gpu", "--slurm_max_parallel=4"],
            "--slurm_partition, --slurm_max_parallel need --launcher=slurm",
        ),
        (
            ["--sweep=heads", "--launcher=slurm", "--parallel=2"],
            "--parallel is for --launcher=local; with slurm use --slurm_max_parallel",
        ),
        (["--sweep=heads", "--launcher=pbs"], "value should be one of <local|slurm>"),
    ],
)
def test_bad_axis_group_or_key_is_one_line(tmp_path, sweep_env, args, expected):
    code, lines, workdir = ablate(tmp_path, sweep_env, *args)
    assert code == 2 and len(lines) == 1 and expected in lines[0], lines
    assert not workdir.exists()


def test_slurm_launcher_without_slurm_says_so_in_one_line(tmp_path, sweep_env):
    env = {**sweep_env, "PATH": str(tmp_path)}  # no sbatch, srun or squeue there
    code, lines, workdir = ablate(tmp_path, env, "--sweep=heads", "--launcher=slurm")
    assert code == 2 and len(lines) == 1, lines
    assert "--launcher=slurm needs SLURM's sbatch, srun, squeue on PATH" in lines[0]
    assert lines[0].endswith("or use --launcher=local") and not workdir.exists()

"""The tiny sweep that the real-trainer sweep tests launch (``test_resume.py`` here, and
``tests/slurm/test_slurm_sweep.py``): two reverse-task runs of the ``position`` sweep in quick
form, position none and rotary, one seed."""

import sys
from pathlib import Path

ABLATE = Path(__file__).resolve().parents[2] / "experiments" / "ablate.py"
# The run directories of the two runs, under the sweep's workdir.
NONE, ROTARY = "reverse,position=none/seed0", "reverse,position=rotary/seed0"


def position_sweep_args(steps: int, *, eval_every: int, checkpoint_every: int) -> list[str]:
    """ablate.py's flags for the two runs, ``steps`` long (logging with each checkpoint)."""
    return [
        "--sweep=position",
        "--quick",
        "--seeds=1",
        "--groups=reverse",
        "--axis=model.position=none,rotary",
        f"--set=num_train_steps={steps}",
        f"--set=eval_every_steps={eval_every}",
        f"--set=checkpoint_every_steps={checkpoint_every}",
        f"--set=log_every_steps={checkpoint_every}",
        "--set=eval_decode_examples=16",
    ]


def sweep_command(workdir: Path, args: list[str], *extra: str) -> list[str]:
    """The shell command that runs the sweep of ``args`` (and ``extra`` flags) in ``workdir``."""
    return [sys.executable, str(ABLATE), f"--workdir={workdir}", *args, *extra]


def checkpoint_steps(run_dir: Path) -> list[int]:
    """The steps of the checkpoints in ``run_dir``, oldest first."""
    folder = run_dir / "checkpoints"
    if not folder.exists():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())

"""attnlab.sweeps: ablation studies, their runs as jobs (here or on SLURM), and their reports.

- ``definitions.SWEEPS`` / ``get_sweep(name)``: the named sweeps (base config plus axes).
- ``spec.expand(sweep, ...)``: the sweep's runs, every config built and checked up front.
- ``jobs.run_spec(spec)``: the run contract: one run trained by ``experiments/train.py``.
- ``launch.run_sweep(specs, launcher, ...)``: every run as a job, on this machine
  (``LocalLauncher``) or on SLURM through submitit (``SlurmLauncher``); resumable.
- ``report.write_results(...)``: ``results.csv``, ``report.md`` and ``<sweep>.png``.

Sits above train/, beside analysis/: it checks every run's config with the trainer's own checks.
"""

from attnlab.sweeps.definitions import SWEEPS, get_sweep
from attnlab.sweeps.spec import Grid, Sweep, expand

__all__ = ["SWEEPS", "Grid", "Sweep", "expand", "get_sweep"]

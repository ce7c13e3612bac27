"""attnlab.sweeps: ablation studies, a resumable sweep runner, and their reports.

- ``definitions.SWEEPS`` / ``get_sweep(name)``: the named sweeps (base config plus axes).
- ``spec.expand(sweep, ...)``: the sweep's runs, every config built and checked up front.
- ``runner.SweepRunner(...).run()``: each run as an ``experiments/train.py`` subprocess.
- ``report.write_results(...)``: ``results.csv``, ``report.md`` and ``<sweep>.png``.

Sits above train/, beside analysis/: it checks every run's config with the trainer's own checks.
"""

from attnlab.sweeps.definitions import SWEEPS, get_sweep
from attnlab.sweeps.spec import Grid, Sweep, expand

__all__ = ["SWEEPS", "Grid", "Sweep", "expand", "get_sweep"]

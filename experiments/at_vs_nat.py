r"""AT versus NAT decoding on one task: train, decode every system, write the report.

    python experiments/at_vs_nat.py --config=experiments/configs/at_vs_nat.py:g2p --workdir=runs/at_vs_nat_g2p

Running it again resumes every model from its checkpoint and redoes only the decoding. The
workdir receives ``results.json``, ``report.md`` and the PNG plots; the table is printed.
SIGTERM or Ctrl-C while a model trains saves its checkpoint and exits 0; outside training
(set-up, between models, decoding) it stops at once, exit 0 on SIGTERM and 130 on Ctrl-C (the
trained models are all saved, and decoding restarts on the next run).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiments/configs/at_vs_nat.py:<g2p|synthetic|tfds|gpu>[,quick]"
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Experiment directory (one workdir per model).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: Sequence[str]) -> None:
    del argv
    from attnlab.analysis.at_vs_nat import TrainingStopped, run
    from attnlab.analysis.report import LEGEND, reading, results_table
    from attnlab.train.cli import exit_interrupted, fail, quiet_libraries
    from attnlab.train.preemption import entry_point_signals

    quiet_libraries()
    try:  # outside training (whose loop saves first), SIGTERM or Ctrl-C stops at once
        with entry_point_signals(between_loops=True):
            rows = run(_CONFIG.value, _WORKDIR.value)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        fail("at_vs_nat.py", err)
    except TrainingStopped as stop:
        print(f"at_vs_nat.py: {stop}", file=sys.stderr)
        return
    except KeyboardInterrupt as err:
        exit_interrupted(
            "at_vs_nat.py",
            err,
            "outside training",
            "every trained model is saved, and the same command resumes (decoding starts over)",
        )
    if not rows:  # --config.train_only: one model trained, nothing decoded
        from attnlab.analysis.at_vs_nat import training_summary

        print(f"trained {_CONFIG.value.train_only} in {_WORKDIR.value}/{_CONFIG.value.train_only}")
        print(training_summary(_WORKDIR.value, _CONFIG.value.train_only))
        return
    scale = _CONFIG.value.get("scale", "full")
    print(results_table(rows, scale=scale))
    print(f"\n{LEGEND}")
    split = _CONFIG.value.test_split
    print(f"\n{reading(rows, scale=scale, task=_CONFIG.value.task, split=split)}")
    print(f"\nThis run's report: {_WORKDIR.value}/report.md")


if __name__ == "__main__":
    from attnlab.train.cli import parse_flags

    app.run(main, flags_parser=lambda argv: parse_flags(argv, _CONFIG, prog="at_vs_nat.py"))

r"""The address-segmentation study: train the tagger, score it and cpca, write the report.

    python experiments/address.py --config=experiments/configs/address.py --workdir=runs/address

Trains the ``cn_address`` tagger in the workdir (running it again resumes it; a finished run
is not trained again), then scores it and cpca's recognizer (``cpca.transform``) on three
test conditions: in-distribution, held-out districts, and noise
(``attnlab.analysis.address``). The workdir receives ``results.json``, ``report.md``,
``per_type_f1.png`` and ``attention_map.png``; the headline table is printed. SIGTERM or
Ctrl-C while training saves a checkpoint and exits 0; the same command resumes. Outside
training (set-up, scoring) a signal stops at once: exit 0 on SIGTERM, 130 on Ctrl-C.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiments/configs/address.py[:quick]")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: the tagger and the report.")
flags.mark_flags_as_required(["config", "workdir"])

PROG = "address.py"


def main(argv: Sequence[str]) -> None:
    del argv
    from attnlab.analysis.address import run
    from attnlab.analysis.address_report import report_lines
    from attnlab.train import NonFiniteLossError
    from attnlab.train.cli import exit_interrupted, fail, quiet_libraries
    from attnlab.train.preemption import entry_point_signals

    quiet_libraries()
    if _CONFIG.value.model.name != "tagger" or _CONFIG.value.data.name != "cn_address":
        fail(PROG, "the config must train a tagger on cn_address (experiments/configs/address.py)")
    command = shlex.join(["python", "experiments/address.py", *sys.argv[1:]])
    try:  # outside training (whose loop saves first), SIGTERM or Ctrl-C stops at once
        with entry_point_signals(between_loops=True):
            results = run(_CONFIG.value, _WORKDIR.value, command=command)
    except KeyboardInterrupt as err:
        exit_interrupted(
            PROG,
            err,
            "outside training",
            "the trained model is saved, and the same command resumes (scoring starts over)",
        )
    except NonFiniteLossError as err:
        fail(PROG, err, code=1)
    except (ValueError, FileNotFoundError) as err:
        fail(PROG, err)
    if results.get("preempted"):
        print(
            f"{PROG}: stopped at step {results['step']}; checkpoint saved in {_WORKDIR.value}; "
            "run the same command to resume",
            file=sys.stderr,
        )
        return
    lines = report_lines(results)
    print("\n".join(lines[: lines.index("Span F1 per entity type:")]))
    print(f"\nThis run's report: {_WORKDIR.value}/report.md")


if __name__ == "__main__":
    from attnlab.train.cli import parse_flags

    app.run(main, flags_parser=lambda argv: parse_flags(argv, _CONFIG, prog=PROG))

r"""Score a trained syllable classifier against the vowel-group rule, and draw its confusion matrix.

    python experiments/train.py --config=experiments/configs/syllables.py --workdir=runs/syllables
    python experiments/syllables_report.py --workdir=runs/syllables

Reads the newest checkpoint of ``--workdir`` (a ``cmudict_syllables`` classifier), classifies
every word of ``--split`` (default ``test``), and writes ``syllables_results.json``,
``syllables_report.md`` and ``confusion_matrix.png`` into ``--out`` (default: the workdir):
accuracy with a 95% bootstrap interval, accuracy per word length, and the same for the rule
``attnlab.analysis.syllables.count_vowel_groups`` (``attnlab.analysis.syllables_report``).
A workdir without a classifier checkpoint, or an unknown split, exits 2 with one line.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir of the syllable classifier.")
_OUT = flags.DEFINE_string("out", None, "Where the report goes (default: the workdir).")
_SPLIT = flags.DEFINE_string("split", "test", "Split to score: test or validation.")
flags.mark_flags_as_required(["workdir"])

PROG = "syllables_report.py"


def main(argv: Sequence[str]) -> None:
    del argv
    from attnlab.analysis.syllables_report import report_lines, run
    from attnlab.train.cli import fail, quiet_libraries

    quiet_libraries()
    command = shlex.join(["python", "experiments/syllables_report.py", *sys.argv[1:]])
    try:
        results = run(_WORKDIR.value, _OUT.value, split=_SPLIT.value, command=command)
    except (ValueError, FileNotFoundError) as err:
        fail(PROG, err)
    lines = report_lines(results)
    print("\n".join(lines[: lines.index("Accuracy per word length (letters):")]))
    print(f"Report: {_OUT.value or _WORKDIR.value}/syllables_report.md")


if __name__ == "__main__":
    from attnlab.train.cli import parse_flags

    app.run(main, flags_parser=lambda argv: parse_flags(argv, None, prog=PROG))

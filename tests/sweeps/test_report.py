"""results.csv, report.md and the plot: per-setting mean ± sample std, the best setting marked.

Done markers are written by hand here (three seeds per setting, one diverged seed), so the
expected table can be computed independently with numpy.
"""

import csv
import json

import numpy as np

from attnlab.sweeps.report import write_results
from attnlab.sweeps.spec import Grid, Run, Sweep

SWEEP = Sweep(
    name="toy",
    question="Does the toy knob matter?",
    grids=(Grid(label="g", config="toy.py", axes={"model.knob": (1, 2, 4)}),),
    report_metrics=("eval_wer",),
    plot_x="model.knob",
)
WER = {1: [0.30, 0.34, 0.32], 2: [0.20, 0.26, 0.23], 4: [0.10, None, 0.15]}  # None: diverged


def make_runs():
    return [
        Run("toy", "g", "toy.py", f"knob={knob}", seed, {"model.knob": knob}, {"seed": seed})
        for seed in range(3)
        for knob in (1, 2, 4)
    ]


def write_done(workdir, run):
    wer = WER[run.settings["model.knob"]][run.seed]
    done = {"status": "diverged", "message": "NaN/Inf at step 7"}
    if wer is not None:
        metrics = {
            "step": 100,
            "eval_wer": wer,
            "loss": 1.5 + wer,
            "steps_per_sec": 40.0 + run.seed,
        }
        done = {"status": "finished", "metrics": metrics, "params": 1234, "wall_seconds": 9.0}
    (workdir / run.relpath).mkdir(parents=True)
    (workdir / run.relpath / "done.json").write_text(json.dumps(done))


def test_csv_has_one_row_per_done_run_with_its_metrics(tmp_path):
    runs = make_runs()
    for run in runs[:-1]:  # the last run is not done yet
        write_done(tmp_path, run)
    write_results(SWEEP, runs, tmp_path, command="python experiments/ablate.py --sweep=toy")
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["seed"]) for r in rows] == [(r.name, str(r.seed)) for r in runs[:-1]]
    for row, run in zip(rows, runs, strict=False):
        wer = WER[run.settings["model.knob"]][run.seed]
        assert row["model.knob"] == str(run.settings["model.knob"])
        if wer is None:
            assert row["status"] == "diverged" and row["eval_wer"] == ""
        else:
            assert row["status"] == "finished" and float(row["eval_wer"]) == wer
            assert float(row["loss"]) == 1.5 + wer and row["params"] == "1234"


def test_report_gives_mean_and_sample_std_and_marks_the_best_non_diverged_setting(tmp_path):
    runs = make_runs()
    for run in runs:
        write_done(tmp_path, run)
    command = "python experiments/ablate.py --sweep=toy --workdir=x"
    write_results(SWEEP, runs, tmp_path, command=command)
    report = (tmp_path / "report.md").read_text()
    assert command in report and "9 of 9 runs done" in report
    table = {
        line.split(" | ")[0].strip("| "): line
        for line in report.splitlines()
        if line.startswith("| ")
    }
    for knob, values in WER.items():
        finished = np.array([v for v in values if v is not None])
        mean, std = finished.mean(), finished.std(ddof=1)
        # eval_wer is a rate: printed in percent
        assert f"{100 * mean:.2f} ± {100 * std:.2g}" in table[str(knob)]
    # knob=4 has the lowest mean but a diverged seed, so knob=2 is the best.
    assert "(1 diverged)" in table["4"] and "best" not in table["4"]
    assert "best**" in table["2"] and "best" not in table["1"]
    assert (tmp_path / "toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Which setting a sweep report calls best, and what its plot shows when a metric is flat.

Done markers are written by hand; the expected verdicts follow from the values chosen here.
"""

import json
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnlab.sweeps.report import (  # noqa: E402
    collect,
    figure,
    panel_metrics,
    render_from_csv,
    summarize,
    write_results,
)
from attnlab.sweeps.spec import Grid, Run, Sweep  # noqa: E402

KNOBS = (1, 2, 4)


def make_sweep(plot_x=None):
    return Sweep(
        name="toy",
        question="Does the knob matter?",
        grids=(Grid(label="g", config="toy.py", axes={"model.knob": KNOBS}),),
        report_metrics=("eval_wer", "eval_accuracy", "eval_loss"),
        plot_x=plot_x,
    )


def write_sweep(workdir, wer, *, task="toy.py:at", seeds=2):
    """Two seeds per knob; ``wer[knob]`` is both seeds' WER, the loss falls with the knob."""
    runs = [
        Run("toy", "g", task, f"knob={k}", s, {"model.knob": k}, {"seed": s})
        for s in range(seeds)
        for k in KNOBS
    ]
    for run in runs:
        knob = run.settings["model.knob"]
        metrics = {
            "step": 40,
            "eval_wer": wer[knob],
            "eval_accuracy": 0.1 * knob,
            "eval_loss": 3.0 - 0.1 * knob + 0.01 * run.seed,
            "steps_per_sec": 10.0,
        }
        done = {"status": "finished", "metrics": metrics, "params": 10, "wall_seconds": 1.0}
        (workdir / run.relpath).mkdir(parents=True)
        (workdir / run.relpath / "done.json").write_text(json.dumps(done))
    return runs


def report_lines(workdir):
    return (workdir / "report.md").read_text().splitlines()


def marked(lines):
    """Table rows that carry the **best** mark."""
    return [line for line in lines if line.startswith("| ") and "best**" in line]


def test_a_constant_metric_marks_no_setting_best_and_says_why(tmp_path):
    runs = write_sweep(tmp_path, {k: 1.0 for k in KNOBS})
    write_results(make_sweep(), runs, tmp_path, command="ablate")
    lines = report_lines(tmp_path)
    assert marked(lines) == []
    assert (
        "eval_wer is 100.00% for every setting: it does not separate the runs. "
        "No setting is marked best." in lines
    )


def test_settings_that_tie_as_printed_are_not_ranked(tmp_path):
    # 0.53241 and 0.53243 both print as 53.24: the table could not show which is lower.
    runs = write_sweep(tmp_path, {1: 0.53243, 2: 0.53241, 4: 0.60})
    write_results(make_sweep(), runs, tmp_path, command="ablate")
    lines = report_lines(tmp_path)
    assert marked(lines) == []
    assert "No single best: 2 settings tie at eval_wer 53.24%. No setting is marked best." in lines


def test_a_strictly_better_setting_is_marked_once(tmp_path):
    runs = write_sweep(tmp_path, {1: 0.5330, 2: 0.5320, 4: 0.60})
    write_results(make_sweep(), runs, tmp_path, command="ablate")
    assert marked(report_lines(tmp_path)) == [
        "| 2 | 2 | **53.20 ± 0 best** | 20.00 ± 0 | 2.805 ± 0.0071 | 10 ± 0 | 10 |"
    ]


def test_a_quick_run_is_never_ranked(tmp_path):
    runs = write_sweep(tmp_path, {1: 0.9, 2: 0.8, 4: 0.7}, task="toy.py:at,quick")
    write_results(make_sweep(), runs, tmp_path, command="ablate --quick")
    lines = report_lines(tmp_path)
    assert marked(lines) == []
    assert any(
        line.startswith("Quick run") and "no setting is marked best" in line for line in lines
    )


def shown_ticks(ax):
    """The y tick labels inside the axes' view."""
    lo, hi = ax.get_ylim()
    pairs = zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    return [label.get_text() for loc, label in pairs if lo <= loc <= hi]


def test_the_plot_adds_a_varying_metric_beside_a_flat_one_and_labels_it(tmp_path):
    sweep = make_sweep(plot_x="model.knob")
    runs = write_sweep(tmp_path, {k: 1.0 for k in KNOBS})
    summaries = summarize(collect(runs, tmp_path), sweep)
    assert panel_metrics(summaries, sweep) == ["eval_wer", "eval_loss"]
    fig = figure(summaries, sweep)
    wer_ax, loss_ax = fig.axes
    notes = [t.get_text() for t in wer_ax.texts]
    assert notes == ["eval_wer is 100.00% in every setting:\nit does not separate the runs"]
    assert len(loss_ax.texts) == 0 and loss_ax.get_ylabel() == "validation loss (nats per token)"
    fig.canvas.draw()
    wer_ticks = shown_ticks(wer_ax)
    assert wer_ticks and all(t.endswith("%") for t in wer_ticks)  # WER in percent
    assert max(float(t[:-1]) for t in wer_ticks) <= 100  # no ticks above 100% WER
    loss_ticks = shown_ticks(loss_ax)
    assert loss_ticks and not any(t.endswith("%") for t in loss_ticks)
    plt.close(fig)


def test_a_varying_metric_gets_no_extra_panel(tmp_path):
    sweep = make_sweep()
    runs = write_sweep(tmp_path, {1: 0.5, 2: 0.4, 4: 0.3})
    summaries = summarize(collect(runs, tmp_path), sweep)
    assert panel_metrics(summaries, sweep) == ["eval_wer"]


def test_the_report_is_redrawn_identically_from_results_csv(tmp_path):
    sweep = make_sweep(plot_x="model.knob")
    runs = write_sweep(tmp_path, {1: 0.5330, 2: 0.5320, 4: 0.61})
    write_results(sweep, runs, tmp_path, command="ablate --sweep=toy")
    before = (tmp_path / "report.md").read_text()
    committed = tmp_path / "committed"
    committed.mkdir()
    shutil.copy(tmp_path / "results.csv", committed)  # the run directories are not committed
    report, png = render_from_csv(sweep, committed, command="ablate --sweep=toy", total=6)
    assert report.read_text() == before
    assert png.name == "toy.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Sections of the AT-vs-NAT report, against figures worked out by hand: the comparison with
at_beam4 (issue 17's bar: which systems count as one-pass NATs, which meet it), the kinds of
error, how often the decodings of one model agree; and the whole report re-rendered from the
committed full run's results.json."""

import json
import shutil
from pathlib import Path

import pytest

from attnlab.analysis.at_vs_nat import agreement
from attnlab.analysis.report import against, error_lines, render, speed_lines, yardstick_lines
from attnlab.analysis.scoring import error_kinds
from attnlab.analysis.systems import SYSTEMS, one_pass

G2P = Path(__file__).resolve().parents[2] / "experiments" / "results" / "g2p" / "second_edition"


def test_one_pass_excludes_at_rescoring_refinement_and_the_oracle_length():
    assert {name for name in SYSTEMS if one_pass(name)} == {
        "nat_length_pred",
        "nat_length_beam3",
        "nat_length_beam5",
        "nat_eos_cut",
        "nat_kd_length_pred",
        "nat_glat",
        "nat_ctc",
        "nat_ctc_beam4",
        "nat_ctc_glat",
        "nat_dag_greedy",
        "nat_dag_lookahead",
        "nat_dag_viterbi",
        "nat_dag_lookahead_kd",
        "nat_ctc_kd",
        "nat_ctc_8k",
        "nat_ctc_glat_linear",
        "nat_ctc_glat_anneal",
        "nat_vanilla_8k",
        "nat_glat_linear",
        "nat_glat_anneal",
        "nat_dag_x2",
        "nat_dag_x4",
        "nat_dag_x8",
        "nat_dag_8k_kd",
        "nat_ctc_x2",
        "nat_ctc_x3",
    }


def _row(system, wer, ms, seq_s):
    return {
        "system": system,
        "model": SYSTEMS[system].model,
        "wer": wer,
        "latency_ms_b1": ms,
        "throughput_seq_s_b64": seq_s,
        "one_pass": one_pass(system),
    }


BEAM = _row("at_beam4", 0.255, 10.0, 100.0)


def test_every_system_is_measured_against_at_beam4_and_only_one_pass_nats_meet_the_bar():
    rows = [
        BEAM,
        _row("at_greedy", 0.26, 4.0, 300.0),
        _row("nat_mask_predict10", 0.20, 3.0, 600.0),  # within the bar, but not one pass
        _row("nat_ctc", 0.30, 2.0, 700.0),
        _row("nat_dag_lookahead", 0.281, 4.0, 400.0),
        _row("nat_ctc_glat", 0.27, 2.0, 600.0),
    ]
    table = [line for line in against(rows) if line.startswith("| ") and "---" not in line]
    assert table[1:] == [
        "| nat_mask_predict10 | -5.5 | 3.3 | 6.0 | no | - |",
        "| at_greedy | +0.5 | 2.5 | 3.0 | no | - |",
        "| nat_ctc_glat | +1.5 | 5.0 | 6.0 | yes | yes |",
        "| nat_dag_lookahead | +2.6 | 2.5 | 4.0 | yes | no |",  # 10/4 = 2.5x, 400/100 = 4x
        "| nat_ctc | +4.5 | 5.0 | 7.0 | yes | no |",
    ]
    assert against(rows[1:]) == []  # no reference


def test_speeds_timed_in_passes_show_their_range_and_the_bar_takes_the_median():
    ref = {**BEAM, "timing_passes": 3, "latency_ms_b1_range": [9.0, 11.0]}
    ctc = {**_row("nat_ctc", 0.27, 2.0, 700.0), "timing_passes": 3, "timed": "trained model"}
    ctc.update(speedup_vs_at_beam4=4.0, speedup_vs_at_beam4_range=[1.5, 5.0])  # not 10 / 2
    ctc.update(throughput_vs_at_beam4=5.2, throughput_vs_at_beam4_range=[4.1, 6.0])
    ctc.update(latency_ms_b1_range=[1.8, 2.5], throughput_seq_s_b64_range=[650.0, 720.0])
    lines = against([ref, ctc])
    assert "Speeds: the median over the timing passes" in lines[0]
    assert lines[-1] == "| nat_ctc | +1.5 | 4.0 (1.5-5.0) | 5.2 (4.1-6.0) | yes | yes |"
    speed = "\n".join(speed_lines([ref, ctc]))
    assert (
        "| system | ms/seq b=1 | seq/s b=64 | x at_beam4 b=1 | x at_beam4 b=64 | timed on |"
        in speed
    )
    assert "| nat_ctc | 2.00 (1.80-2.50) | 700 (650-720) |" in speed and "trained model |" in speed
    assert speed_lines([BEAM]) == []  # nothing timed in passes
    # the WER points with their paired interval, where the run measured one
    lines = against([ref, {**ctc, "wer_vs_at_beam4_ci95": [0.004, 0.026]}])
    assert "in brackets the 95% paired bootstrap interval" in lines[0]
    assert lines[-1].startswith("| nat_ctc | +1.5 [+0.4, +2.6] | 4.0 (1.5-5.0) |")


@pytest.mark.parametrize(
    ("at_ci", "wfst_ci", "verdict"),
    [((0.22, 0.24), (0.242, 0.258), "do not overlap"), ((0.22, 0.245), (0.242, 0.258), "overlap")],
)
def test_the_yardstick_says_whether_the_intervals_are_apart(at_ci, wfst_ci, verdict):
    at = {"system": "at_beam4", "wer": 0.23, "wer_ci95": list(at_ci)}
    wfst = {"system": "phonetisaurus", "wer": 0.25, "wer_ci95": list(wfst_ci)}
    text = " ".join(yardstick_lines([at, wfst]))
    assert f"the intervals {verdict}." in text and "+2.00 points in `at_beam4`'s favour" in text
    assert yardstick_lines([at]) == []


def test_error_kinds_sorts_each_wrong_output_once():
    refs = [
        [["K", "AE", "T"]],  # one reference
        [["D", "AO", "G"], ["D", "AA", "G"]],  # two
        [["S", "IY"]],
        [["B", "UH", "K"]],
    ]
    hyps = [
        ["K", "AE", "T"],  # right
        ["D", "AA", "AA", "G"],  # a length no reference has, with a repeat none has
        ["S", "EH"],  # the right length, a wrong token
        ["B", "UH", "UH"],  # the right length, a repeat
    ]
    kinds = error_kinds(hyps, refs)
    assert kinds == {
        "wrong_length": 1 / 4,
        "wrong_same_length": 2 / 4,
        "extra_repeats": 2 / 4,
        "wer_one_ref": 2 / 3,
        "wer_several_refs": 1 / 1,
    }
    assert kinds["wrong_length"] + kinds["wrong_same_length"] == 3 / 4  # the WER


def test_a_repeat_the_reference_has_is_not_extra_and_an_empty_group_is_absent():
    kinds = error_kinds([["L", "L"], ["AH"]], [[["L", "L"]], [["AH", "AH"]]])
    assert kinds == {
        "wrong_length": 1 / 2,
        "wrong_same_length": 0.0,
        "extra_repeats": 0.0,
        "wer_one_ref": 1 / 2,
    }


def test_agreement_counts_examples_where_every_decoding_of_a_model_is_the_same():
    rows = [
        {"system": "at_greedy", "model": "at"},
        {"system": "nat_dag_greedy", "model": "nat_dag"},
        {"system": "nat_dag_viterbi", "model": "nat_dag"},
        {"system": "nat_dag_lookahead", "model": "nat_dag"},
    ]
    outputs = {
        "at_greedy": [["A"], ["B"], ["C"], ["D"]],
        "nat_dag_greedy": [["A"], ["B"], ["C"], ["D"]],
        "nat_dag_viterbi": [["A"], ["B"], ["X"], ["D"]],
        "nat_dag_lookahead": [["A"], ["B"], ["C"], ["D", "D"]],
    }
    found = agreement(outputs, rows)
    assert found == [{"model": "nat_dag", "systems": [r["system"] for r in rows[1:]], "same": 0.5}]
    lines = error_lines({"systems": [], "agreement": found})
    assert (
        "- `nat_dag` (nat_dag_greedy, nat_dag_viterbi, nat_dag_lookahead): the same output "
        "for 50.0% of the examples." in lines
    )


def test_the_errors_table_prints_percent_without_the_sign_and_marks_an_absent_figure():
    row = {
        "system": "nat_ctc",
        "wer": 0.3,
        "wrong_length": 0.1,
        "wrong_same_length": 0.2,
        "extra_repeats": 0.05,
        "wer_one_ref": 0.29,
    }
    table = error_lines({"systems": [row]})[4].splitlines()
    assert table[-1] == "| nat_ctc | 30.0 | 10.0 | 20.0 | 5.0 | 29.0 | - | - |"


def test_the_committed_full_run_is_rendered_again_from_its_results_json(tmp_path):
    """The second edition's report, from its results.json alone: the tables (each row with
    its recorded step), the writeup and the figures it had (the bytes of the report may
    change with the code, not its figures)."""
    shutil.copy(G2P / "results.json", tmp_path)
    report = render(tmp_path).read_text()
    results = json.loads((G2P / "results.json").read_text())
    for row in results["systems"]:
        wer = f"{100 * row['wer']:.1f} [{100 * row['wer_ci95'][0]:.1f}, "
        assert f"| {row['system']} | {row['step']:,} | {wer}" in report  # its recorded step
        assert f"| {100 * row['per']:.2f} |" in report  # PER in percent, no sign in the cell
    heads = [line for line in report.splitlines() if line.startswith("## ")]
    assert heads == [
        "## Results",
        "## Reading",
        "## Against at_beam4",
        "## Where the errors are",
        "## Against the literature: verdicts",
        "## Length prediction: predicted minus true length",
        "## Quality versus latency",
        "## Validation WER against training steps",
        "## Where AT and NAT differ",
    ]
    assert "| nat_ctc_kd | +5.0 | 2.1 | 4.5 | yes | no |" in report
    assert "- `at` (at_greedy, at_beam4): the same output for 98.0% of the examples." in report
    assert (G2P / "writeup.md").read_text().strip() in report
    assert "Columns: `step`, the training step" in report and "`len acc` and `len MAE`" in report
    assert "`x greedy` and `x beam4`" in report
    assert "| at_greedy / at_beam4 | 43.8 | 36.6 |" in report  # curves by system names
    assert "| decapitated | D IY K AE P AH T EY T IH D |" in report
    for png in ("length_errors.png", "quality_vs_latency.png", "validation_curves.png"):
        assert f"]({png})" in report and (tmp_path / png).stat().st_size > 1000
    assert report == (G2P / "report.md").read_text()  # what is committed is this rendering


def test_a_curve_of_one_evaluation_is_not_drawn_and_the_report_says_why(tmp_path):
    results = json.loads((G2P / "results.json").read_text())
    results.update(scale="demo", writeup="")
    results["validation_curves"] = {"at": [[400, 0.6]], "nat": [[400, 0.8]]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    report = render(tmp_path).read_text()
    assert not (tmp_path / "validation_curves.png").exists()
    assert "a curve needs two evaluations, so none is drawn" in report
    assert "| at_greedy / at_beam4 | 60.0 |" in report
    assert "## Against at_beam4" not in report and "A demo run." in report


def test_the_writeup_is_included_verbatim_under_its_heading_and_none_adds_nothing(tmp_path):
    from attnlab.analysis.report import writeup_section

    assert writeup_section("") == []
    path = tmp_path / "writeup.md"
    path.write_text("\n| source | agrees? |\n|---|---|\n| Kasai et al. 2021 | no |\n\n")
    lines = writeup_section(path)
    assert lines[0] == "## Against the literature: verdicts"
    assert "| source | agrees? |\n|---|---|\n| Kasai et al. 2021 | no |" in lines
    assert str(path) in lines[2]


def test_ablations_steps_and_learning_curves_have_their_sections(tmp_path):
    """A third-edition results.json: ablation rows go to their own table (against the AT of
    their budget), a system decoded at two steps gets a row per step, and the learning curves
    are drawn against steps and training time for the chosen models only."""
    results = json.loads((G2P / "results.json").read_text())
    by = {r["system"]: r for r in results["systems"]}
    early = {**by["at_beam4"], "system": "at_beam4@8000", "step": 8000, "wer": 0.291}
    early["wer_ci95"] = [0.283, 0.299]

    def ablation(name, model, wer):
        row = {**by["nat_ctc"], "system": name, "model": model, "wer": wer}
        return {**row, "ablation": True, "train_seconds": 5400.0}

    at_8k = {**ablation("at_8k_beam4", "at_8k", 0.30), "one_pass": False}
    dag = {**ablation("nat_dag_x4", "nat_dag_x4", 0.325), "wer_vs_at_8k_beam4_ci95": [0.01, 0.04]}
    results["systems"] += [early, at_8k, dag]
    results["training_time"] = {"at": [[2000, 1800.0], [4000, 3600.0]],
                                "nat_ctc": [[2000, 900.0], [4000, 2000.0]]}  # fmt: skip
    results["curve_models"] = ["at", "nat_ctc"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    report = render(tmp_path).read_text()
    main = report.split("## Results")[1].split("## Reading")[0]
    ablations = report.split("## Ablations")[1].split("## ")[0]
    assert "| at_beam4@8000 | 8,000 | 29.1 [28.3, 29.9] |" in main
    assert "| nat_dag_x4 |" not in main and "| at_8k_beam4 |" not in main  # not in the main table
    assert "| at_8k_beam4 | 8,000 | 1.50 | 30.0 [" in ablations
    assert "| nat_dag_x4 | 8,000 | 1.50 | 32.5 [" in ablations
    assert "| +2.5 [+1.0, +4.0] |" in ablations  # with its paired interval
    base = next(line for line in ablations.splitlines() if line.startswith("| at_8k_beam4 |"))
    assert base.split(" | ")[4] == "-"  # the base itself: no points against itself
    assert "| at_beam4 | 29.1 [28.3, 29.9] | 25.5 [24.7, 26.3] |" in report  # steps 8k, 20k
    assert "| system | step 8,000 | step 20,000 |" in report
    assert "| at_beam4@8000 |" not in report.split("## Against at_beam4")[1].split("## ")[0]
    assert "![Validation WER against training steps and training time](learning_curves.png)" in (
        report
    )
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    assert "| at_greedy / at_beam4 | 43.8 | 36.6 |" in report  # labels: the last checkpoint's
    assert "- `at` (at_greedy, at_beam4): the same output" in report


def test_training_time_adds_each_logged_interval_at_its_rate():
    from attnlab.analysis.at_vs_nat import training_seconds

    metrics = [
        {"step": 100, "steps_per_sec": 2.0, "loss": 1.0},  # 50 s, compiling included
        {"step": 200, "steps_per_sec": 4.0},  # 25 s
        {"step": 200, "eval_wer": 0.5, "eval_seconds": 99.0},  # not counted
        {"step": 300, "steps_per_sec": 5.0},  # 20 s
        {"step": 340, "steps_per_sec": 8.0},  # the last step: 5 s
    ]
    assert training_seconds(metrics, [200, 250, 340, 400]) == [
        [200, 75.0],
        [250, 85.0],  # half of the next interval, at its rate
        [340, 100.0],
    ]  # 400: past the last log line
    assert training_seconds([], [100]) == []


def test_a_run_of_ablations_only_renders_their_table_and_no_main_table(tmp_path):
    """A queue line that decodes one ablation writes a results.json with no main-table row:
    its report has the ablations' table, and no Results or Reading section to fill."""
    results = json.loads((G2P / "results.json").read_text())
    row = next(r for r in results["systems"] if r["system"] == "nat_ctc")
    row = {**row, "system": "nat_dag_x4", "model": "nat_dag_x4", "ablation": True}
    results.update(systems=[{**row, "train_seconds": 5400.0}], writeup="")
    (tmp_path / "results.json").write_text(json.dumps(results))
    report = render(tmp_path).read_text()
    heads = [line for line in report.splitlines() if line.startswith("## ")]
    assert "## Results" not in heads and "## Reading" not in heads and "## Ablations" in heads
    assert "| nat_dag_x4 | 8,000 | 1.50 |" in report.split("## Ablations")[1]

"""Sections of the AT-vs-NAT report, against figures worked out by hand: the quality bar
(issue 17: which systems count as one-pass NATs, the verdict on the best of them), the kinds
of error, and how often the decodings of one model agree."""

import pytest

from attnlab.analysis.findings import (
    agreement,
    errors_table,
    findings_sections,
    literature,
    quality_bar,
)
from attnlab.analysis.scoring import error_kinds
from attnlab.analysis.systems import SYSTEMS, one_pass


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
    }


def _row(system, wer, ms, seq_s):
    return {
        "system": system,
        "model": SYSTEMS[system].model,
        "wer": wer,
        "latency_ms_b1": ms,
        "throughput_seq_s_b64": seq_s,
    }


BEAM = _row("at_beam4", 0.255, 10.0, 100.0)


def test_the_best_one_pass_nat_is_judged_and_its_misses_are_measured():
    rows = [
        BEAM,
        _row("at_greedy", 0.26, 4.0, 300.0),
        _row("nat_mask_predict10", 0.20, 30.0, 50.0),  # better, but not one pass
        _row("nat_length_beam5_at_rescore", 0.21, 8.0, 90.0),  # AT rescoring: not one pass
        _row("nat_ctc", 0.30, 2.0, 700.0),
        _row("nat_dag_lookahead", 0.281, 4.0, 400.0),  # the best one-pass NAT
    ]
    lines = quality_bar(rows)
    table = [line for line in lines if line.startswith("| nat_")]
    assert table == [
        "| nat_dag_lookahead | +2.6 | 2.5 | 4.0 | no |",  # 10/4 = 2.5x, 400/100 = 4x
        "| nat_ctc | +4.5 | 5.0 | 7.0 | no |",
    ]
    verdict = lines[-1]
    assert verdict.startswith("The best one-pass NAT is nat_dag_lookahead: it misses the bar.")
    assert "Met: +2.6 WER points (bar 3 points); 2.5x at batch 1 (bar 2x)." in verdict
    assert "Missed: 4.0x at batch 64, short of the bar of 5x by 1.0x." in verdict


def test_a_nat_that_meets_every_condition_meets_the_bar():
    rows = [BEAM, _row("nat_ctc_glat", 0.27, 2.0, 600.0)]
    lines = quality_bar(rows)
    assert "| nat_ctc_glat | +1.5 | 5.0 | 6.0 | yes |" in lines
    assert lines[-1].startswith("The best one-pass NAT is nat_ctc_glat: it meets the bar.")
    assert "Missed" not in lines[-1]


def test_a_quality_miss_is_measured_in_points():
    lines = quality_bar([BEAM, _row("nat_dag_lookahead", 0.381, 3.7, 560.0)])
    assert "Missed: +12.6 WER points, short of the bar of 3 points by 9.6 points." in lines[-1]


@pytest.mark.parametrize("rows", [[BEAM], [_row("nat_ctc", 0.3, 2.0, 700.0)]])
def test_no_bar_without_the_reference_or_a_one_pass_nat(rows):
    assert quality_bar(rows) == []


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
    assert agreement(outputs, rows) == [
        "- `nat_dag` (nat_dag_greedy, nat_dag_viterbi, nat_dag_lookahead): the same output "
        "for 50.0% of the examples."
    ]


def test_the_errors_table_marks_an_absent_figure():
    row = {
        "system": "nat_ctc",
        "wer": 0.3,
        "wrong_length": 0.1,
        "wrong_same_length": 0.2,
        "extra_repeats": 0.05,
        "wer_one_ref": 0.29,
    }
    assert errors_table([row]).splitlines()[-1] == (
        "| nat_ctc | 30.0% | 10.0% | 20.0% | 5.0% | 29.0% | - | - |"
    )


def test_a_full_report_has_findings_the_bar_sources_errors_and_agreement_in_order():
    rows = [
        {**BEAM, "per": 0.06, **error_kinds([["A"]], [[["A"]]])},
        {**_row("nat_dag_greedy", 0.38, 3.0, 600.0), "per": 0.09, "wrong_length": 0.1},
        {**_row("nat_dag_viterbi", 0.38, 3.5, 550.0), "per": 0.09},
    ]
    outputs = {"at_beam4": [["A"]], "nat_dag_greedy": [["A"]], "nat_dag_viterbi": [["B"]]}
    lines = findings_sections(rows, outputs)
    heads = [line for line in lines if line.startswith("## ")]
    assert heads == [
        "## Findings",
        "## The quality bar",
        "## Against the literature",
        "## Where the errors are",
    ]
    assert "| nat_dag_greedy | 38.0% | 10.0% | - | - | - | - | - |" in lines[-4]
    assert lines[-2].startswith(
        "- `nat_dag` (nat_dag_greedy, nat_dag_viterbi): the same output for 0.0%"
    )
    assert [h for h in findings_sections(rows, outputs, metric="bleu") if h.startswith("## ")] == [
        "## Findings"
    ]


def test_literature_puts_each_measurement_beside_its_source_and_skips_absent_ones():
    rows = [
        BEAM,  # 25.5% WER, 10 ms, 100 seq/s
        _row("at_greedy", 0.26, 4.0, 300.0),
        _row("at_deep_shallow_greedy", 0.27, 3.0, 450.0),
        _row("nat_ctc", 0.30, 2.0, 700.0),
        _row("nat_ctc_glat", 0.28, 2.0, 650.0),
        _row("nat_ctc_kd", 0.29, 2.0, 700.0),
        _row("nat_dag_greedy", 0.40, 2.5, 600.0),
        _row("nat_dag_lookahead", 0.39, 2.5, 600.0),
        _row("nat_dag_lookahead_kd", 0.35, 2.5, 600.0),
    ]
    lines = literature(rows)
    cells = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")[2] for line in lines[2:]}
    assert list(cells) == [
        "Gu & Kong 2021",
        "Huang et al. 2022",
        "Kasai et al. 2021",
        "Helcl et al. 2022",
    ]  # no vanilla NAT: Gu et al. 2018 is left out
    assert cells["Gu & Kong 2021"] == (
        "WER points behind at_beam4: nat_ctc +4.5, nat_ctc_glat +2.5, nat_ctc_kd +3.5; "
        "glancing gains +2.0 points (nat_ctc -> nat_ctc_glat); "
        "distillation gains +1.0 points (nat_ctc -> nat_ctc_kd) |"
    )
    assert cells["Huang et al. 2022"] == (
        "WER points behind at_beam4: nat_dag_lookahead +13.5, nat_dag_lookahead_kd +9.5; "
        "distillation gains +4.0 points (nat_dag_lookahead -> nat_dag_lookahead_kd) |"
    )
    assert cells["Kasai et al. 2021"] == (
        "at_deep_shallow_greedy +1.0 WER points against at_greedy; throughput at batch 64 450 "
        "against the fastest one-pass NAT's 700 sequences/s (nat_ctc), at batch 1 3.00 against "
        "2.00 ms |"
    )
    assert cells["Helcl et al. 2022"] == (
        "the best one-pass NAT (nat_ctc_glat) against at_greedy: 2.0x at batch 1, 2.2x at "
        "batch 64; against at_beam4: 5.0x at batch 1, 6.5x at batch 64 |"
    )
    assert literature([r for r in rows if r["system"] != "at_beam4"]) == []


def test_the_writeup_is_included_verbatim_under_its_heading_and_none_adds_nothing(tmp_path):
    from attnlab.analysis.report import writeup_section

    assert writeup_section("") == []
    path = tmp_path / "writeup.md"
    path.write_text("\n| source | agrees? |\n|---|---|\n| Kasai et al. 2021 | no |\n\n")
    lines = writeup_section(path)
    assert lines[0] == "## Against the literature: verdicts"
    assert "| source | agrees? |\n|---|---|\n| Kasai et al. 2021 | no |" in lines
    assert str(path) in lines[2]

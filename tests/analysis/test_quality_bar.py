"""The report's quality bar (issue 17): which systems count as one-pass NATs, and the verdict
on the best of them, against figures worked out by hand."""

import pytest

from attnlab.analysis.report import quality_bar
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

"""The AT-vs-NAT experiment's second edition (issue 17), quick form: the frontier NATs and the
deep-shallow AT decode and score with finite values, and the `long` form times every system
against output length. A module of its own, so that it runs beside test_at_vs_nat.py."""

import json

import pytest
from avn_testing import (
    SECOND_EDITION,
    check_rows,
    quick_run_with_shared_teacher,
    rerun_from_records,
)

from attnlab.train.config import load_config_file

# The AT rows give the speed-up columns their baseline; one ablation (issue 37) runs too, and
# the 2x canvas, which has nat_ctc's config here: decoded from nat_ctc's training, linked.
ABLATION = "nat_ctc_glat_anneal"
SYSTEMS = ["at_greedy", "at_beam4", *SECOND_EDITION, ABLATION, "nat_ctc_x2"]

# Fresh models re-time recorded systems with the programs the run compiled: the cache serves them.
pytestmark = pytest.mark.usefixtures("compilation_cache_dir")


@pytest.fixture(scope="module")
def frontier_run(tmp_path_factory):
    """The second edition's systems, also timed against output length (as `long` does). The
    AT teacher and its distilled data are trained once for both modules."""
    workdir = tmp_path_factory.mktemp("frontier")
    data_dir = tmp_path_factory.mktemp("data")
    # One length and one batch size: each system compiles once per (length, batch).
    timing = dict(latency_lengths=(5,), latency_batches=(2,))
    recorded = str(workdir / "recorded")
    rows = quick_run_with_shared_teacher(
        SYSTEMS, data_dir, workdir, tmp_path_factory, recorded=recorded, **timing
    )
    return rows, workdir


def test_second_edition_rows_are_all_there_with_finite_values(frontier_run):
    rows, workdir = frontier_run
    assert len(SECOND_EDITION) == 11
    check_rows(rows, SYSTEMS, workdir)
    by = {r["system"]: r for r in rows}
    assert by["nat_dag_lookahead_kd"]["params"] == by["nat_dag_lookahead"]["params"]
    assert by["nat_ctc_kd"]["params"] == by["nat_ctc"]["params"]
    assert by["at_deep_shallow_greedy"]["model"] == "at_ds"
    assert (workdir / "nat_dag_kd").is_dir() and (workdir / "distilled").is_dir()
    assert (workdir / "nat_ctc_kd").is_dir()
    assert (workdir / "nat_ctc_x2").resolve() == (workdir / "nat_ctc").resolve()
    assert by["nat_ctc_x2"]["wer"] == by["nat_ctc"]["wer"]
    # the ablation: its own model, with the annealed glancing schedule, in its own table
    assert by[ABLATION]["ablation"] and not by["nat_ctc_glat"]["ablation"]
    trained = json.loads((workdir / "nat_ctc_glat_anneal" / "config.json").read_text())
    assert (trained["glancing"], trained["glancing_end"]) == (True, 0.1)
    report = (workdir / "report.md").read_text()
    assert f"| {ABLATION} | 20 |" in report.split("## Ablations")[1]


def test_every_system_is_timed_against_output_length(frontier_run):
    """results.json's latency_vs_length, its plot and the report's section (the `long` form's)."""
    _, workdir = frontier_run
    by_length = json.loads((workdir / "results.json").read_text())["latency_vs_length"]
    assert {(r["system"], r["output_length"], r["batch"]) for r in by_length} == {
        (s, 5, 2) for s in SYSTEMS
    }
    assert all(r["latency_ms"] > 0 and r["mean_output_length"] >= 0 for r in by_length)
    assert (workdir / "latency_vs_length.png").stat().st_size > 1000
    report = (workdir / "report.md").read_text()
    assert "## Latency against output length" in report and "| nat_ctc |" in report
    head = "| system | vs at_greedy b=2 | vs at_beam4 b=2 | vs at_deep_shallow_greedy b=2 |"
    assert head in report
    assert "| nat_dag_lookahead | " in report


def test_recorded_frontier_systems_are_timed_on_fresh_models(frontier_run, tmp_path):
    """CTC and DAG from their records: the distilled CTC NAT needs neither its checkpoint nor
    its teacher's; nothing is timed against length."""
    _, workdir = frontier_run
    # the fixed canvases (CTC, DAG), one system each, and a student; at_beam4 the baseline
    systems = ["at_beam4", "nat_ctc_beam4", "nat_dag_viterbi", "nat_ctc_kd"]
    rerun_from_records(systems, workdir, tmp_path / "again")
    with pytest.raises(ValueError, match="recorded systems .at_beam4. cannot be timed against"):
        rerun_from_records(["at_beam4"], workdir, tmp_path / "b", latency_lengths=(5,))


def test_the_long_form_is_copy_up_to_64_tokens_timed_at_8_to_64():
    config = load_config_file("experiments/configs/at_vs_nat.py:synthetic,long")
    assert config.latency_lengths == (8, 16, 32, 64) and config.latency_batches == (1, 64)
    assert config.at.data.synthetic_max_length == 64
    assert config.at.data.synthetic_task == "copy" and not config.distill
    assert config.nat_ctc.data.synthetic_task == "copy"
    systems = config.systems.split(",")
    assert {"at_greedy", "at_beam4", "at_deep_shallow_greedy", "nat_length_pred"} <= set(systems)
    assert {"nat_ctc", "nat_dag_lookahead"} <= set(systems)
    with pytest.raises(ValueError, match="'long' needs the task 'synthetic'"):
        load_config_file("experiments/configs/at_vs_nat.py:g2p,long")

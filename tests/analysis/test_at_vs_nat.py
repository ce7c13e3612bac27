"""The AT-vs-NAT experiment, quick form, end to end: every system, every key, finite values."""

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import ml_collections
import pytest
from avn_testing import (
    SECOND_EDITION,
    THIRD_EDITION,
    check_rows,
    quick_config,
    quick_run_with_shared_teacher,
    recorded_outputs,
    rerun_from_records,
)
from avn_testing import quick_run as quick_run_in

from attnlab.analysis import recorded
from attnlab.analysis.at_vs_nat import MODELS, parse_systems, run
from attnlab.analysis.systems import SYSTEMS
from attnlab.data import dataset_info
from attnlab.train.config import load_config_file
from attnlab.train.distill import load_pairs

FIRST_EDITION = [s for s in SYSTEMS if s not in SECOND_EDITION + THIRD_EDITION]
# The teacher decoded from its checkpoint of step 200 too (at_vs_nat.py:g2p,quick keeps it).
EARLY = "at_greedy@200"

# Fresh models re-time recorded systems with the programs the run compiled: the cache serves them.
pytestmark = pytest.mark.usefixtures("compilation_cache_dir")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The first edition's systems; test_at_vs_nat_frontier.py runs the second edition's.
    The AT teacher, its distilled data and nat_kd are trained once for both modules."""
    workdir = tmp_path_factory.mktemp("avn")
    data_dir = tmp_path_factory.mktemp("data")
    rows = quick_run_with_shared_teacher(
        [*FIRST_EDITION, EARLY],
        data_dir,
        workdir,
        tmp_path_factory,
        recorded=str(workdir / "recorded"),
    )
    return rows, workdir


def test_results_have_every_system_and_key_with_finite_values(quick_run):
    rows, workdir = quick_run
    check_rows(rows, [*FIRST_EDITION, EARLY], workdir)
    assert set(FIRST_EDITION) | set(SECOND_EDITION) | set(THIRD_EDITION) == set(SYSTEMS)
    by = {r["system"]: r for r in rows}
    assert by["at_greedy"]["step"] == 400 and by[EARLY]["step"] == 200
    early, last = (recorded_outputs(workdir, s) for s in (EARLY, "at_greedy"))
    assert early.step == 200 and early.hyps != last.hyps  # another checkpoint's outputs
    # each record names the commit of the code that made it
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert last.revision.partition("+")[0] == head.stdout.strip()
    assert not any(r["ablation"] for r in rows)
    # every model's training time at its evaluations, and each row's at its step
    times = json.loads((workdir / "results.json").read_text())["training_time"]
    assert [s for s, _ in times["at"]] == [400] and times["at"][0][1] > 0
    assert by["at_greedy"]["train_seconds"] == times["at"][0][1]
    assert "train_seconds" not in by[EARLY]  # the AT was not evaluated at step 200
    oracle = next(r for r in rows if r["system"] == "nat_oracle_length")
    assert oracle["length_accuracy"] == 1.0 and oracle["length_mae"] == 0.0
    # every other row's WER points against at_beam4, with the paired interval around them
    for row in (r for r in rows if r["system"] != "at_beam4"):
        diff, (low, high) = row["wer_vs_at_beam4"], row["wer_vs_at_beam4_ci95"]
        assert diff == pytest.approx(row["wer"] - by["at_beam4"]["wer"]) and low <= diff <= high
    assert "wer_vs_at_beam4" not in by["at_beam4"]


def test_report_and_plots_are_written(quick_run):
    _, workdir = quick_run
    report = (workdir / "report.md").read_text()
    assert "| at_beam4 |" in report and "nat_kd_length_pred" in report
    pngs = ("length_errors.png", "quality_vs_latency.png", "attention_maps.png")
    assert "## Validation WER against training steps" in report and "| systems |" in report
    for png in pngs:
        assert (workdir / png).stat().st_size > 1000
    # the quick models are evaluated once (at their last step): no curve is drawn
    assert "a curve needs two evaluations, so none is drawn" in report
    assert not (workdir / "validation_curves.png").exists()


def test_unknown_system_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="unknown system 'nat_magic'; valid: at_greedy"):
        parse_systems("at_greedy,nat_magic")


def test_train_only_resumes_one_finished_model_and_decodes_nothing(quick_run):
    config = quick_config()
    _, workdir = quick_run
    saved = json.loads((workdir / "nat" / "config.json").read_text())["data"]
    config.nat.data.update(data_dir=saved["data_dir"], max_source_examples=1000)
    config.train_only = "nat"
    before = (workdir / "results.json").read_text()
    assert run(config, workdir) == []
    assert (workdir / "results.json").read_text() == before


def test_train_only_refuses_an_unknown_model_and_an_unfinished_teacher(tmp_path):
    config = quick_config()
    config.train_only = "nat_magic"
    with pytest.raises(
        ValueError, match="unknown train_only model .nat_magic.; valid: at, at_ds, nat,"
    ):
        run(config, tmp_path)
    config.train_only = "nat_kd"
    with pytest.raises(ValueError, match="AT teacher .* is at step None of 400"):
        run(config, tmp_path)


def test_a_missing_writeup_is_refused_before_anything_trains(tmp_path):
    config = quick_config()
    config.writeup = str(tmp_path / "nowhere.md")
    with pytest.raises(FileNotFoundError, match="writeup .*nowhere.md: no such file"):
        run(config, tmp_path / "run")
    assert not (tmp_path / "run" / "at").exists()


def test_demo_form_decodes_only_what_make_demo_trains():
    """`make demo` trains `at` and `nat` (train_only, side by side): its systems need no other."""
    config = load_config_file("experiments/configs/at_vs_nat.py:g2p,demo")
    systems = parse_systems(config.systems)
    assert {"at_greedy", "at_beam4", "nat_length_pred"} <= set(systems)
    models = {SYSTEMS[s].model for s in systems} | {
        SYSTEMS[s].rescorer for s in systems if SYSTEMS[s].rescorer
    }
    assert models == {"at", "nat"} and not config.distill and config.scale == "demo"
    makefile = open("Makefile").read()
    assert "--config.train_only=at" in makefile and "--config.train_only=nat " in makefile


def test_recorded_systems_are_reported_again_without_their_checkpoints(quick_run, tmp_path):
    """Another machine: the records stand in for the models, and only the timing changes."""
    _, workdir = quick_run
    # one system per way of timing: an AT search's steps, length_pred's and mask_predict's
    # lengths as oracle_length, length_beam's candidate lengths (rescored by a fresh AT in
    # NPD), and a student (the fixed canvases are in the frontier's test)
    systems = ["at_greedy", "at_beam4", "nat_length_pred", "nat_mask_predict4"]
    systems += ["nat_length_beam3", "nat_length_beam5_at_rescore", "nat_kd_length_pred", EARLY]
    rows = rerun_from_records(systems, workdir, tmp_path / "again")
    assert rows[0]["speedup_vs_at_greedy"] == 1.0
    for name, k in (("nat_length_beam3", 3), ("nat_length_beam5_at_rescore", 5)):
        record = recorded_outputs(workdir, name)
        assert len(record.candidates) == len(record.hyps)
        assert all(len(c) == k and n in c for n, c in zip(record.lengths, record.candidates))
    assert recorded_outputs(workdir, "nat_length_beam5_at_rescore").rescorer_config["model"]
    # a length_beam record without its candidate lengths cannot be timed
    again = tmp_path / "old_records"
    shutil.copytree(workdir / "recorded", again)
    recorded.save(again, replace(recorded_outputs(workdir, "nat_length_beam3"), candidates=None))
    data_dir = json.loads((workdir / "at" / "config.json").read_text())["data"]["data_dir"]
    with pytest.raises(ValueError, match="nat_length_beam3 lack the candidate lengths"):
        quick_run_in(["nat_length_beam3"], Path(data_dir), tmp_path / "old", recorded=str(again))


def test_a_record_of_another_config_or_split_is_refused(quick_run, tmp_path):
    _, workdir = quick_run
    with pytest.raises(ValueError, match="another config: model.d_model is 32 there, 48 now"):
        rerun_from_records(["at_greedy"], workdir, tmp_path / "a", at={"model": {"d_model": 48}})
    with pytest.raises(ValueError, match="are of 24 examples of split 'test'; this run decodes 23"):
        rerun_from_records(["at_greedy"], workdir, tmp_path / "b", max_test_examples=23)


def test_a_student_trains_on_the_recorded_teacher_outputs_without_the_teacher(quick_run, tmp_path):
    _, workdir = quick_run
    pairs = load_pairs(workdir / "recorded")
    data_dir = json.loads((workdir / "at" / "config.json").read_text())["data"]["data_dir"]
    config = quick_config()
    for key in MODELS:
        config[key].data.update(data_dir=data_dir, max_source_examples=1000)
    config.nat_kd.update(num_train_steps=20, eval_every_steps=20, checkpoint_every_steps=20)
    config.update(recorded=str(workdir / "recorded"), train_only="nat_kd")
    assert run(config, tmp_path) == []
    assert (tmp_path / "nat_kd" / "checkpoints").is_dir() and not (tmp_path / "at").exists()
    data = [
        json.loads((w / "nat_kd" / "config.json").read_text())["data"] for w in (workdir, tmp_path)
    ]
    sizes = [dataset_info(ml_collections.ConfigDict(d)).split_sizes["train"] for d in data]
    assert sizes[0] == sizes[1] == len(pairs) > 100

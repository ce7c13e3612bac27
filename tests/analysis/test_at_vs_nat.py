"""The AT-vs-NAT experiment, quick form, end to end: every system, every key, finite values."""

import json

import pytest
from avn_testing import SECOND_EDITION, check_rows, quick_config
from avn_testing import quick_run as quick_run_in

from attnlab.analysis.at_vs_nat import parse_systems, redraw_attention_maps, run
from attnlab.analysis.systems import SYSTEMS
from attnlab.train.config import load_config_file

FIRST_EDITION = [s for s in SYSTEMS if s not in SECOND_EDITION]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The first edition's systems; test_at_vs_nat_frontier.py runs the second edition's."""
    workdir = tmp_path_factory.mktemp("avn")
    return quick_run_in(list(FIRST_EDITION), tmp_path_factory.mktemp("data"), workdir), workdir


def test_results_have_every_system_and_key_with_finite_values(quick_run):
    rows, workdir = quick_run
    check_rows(rows, list(FIRST_EDITION), workdir)
    assert set(FIRST_EDITION) | set(SECOND_EDITION) == set(SYSTEMS)
    oracle = next(r for r in rows if r["system"] == "nat_oracle_length")
    assert oracle["length_accuracy"] == 1.0 and oracle["length_mae"] == 0.0


def test_report_and_plots_are_written(quick_run):
    _, workdir = quick_run
    report = (workdir / "report.md").read_text()
    assert "| at_beam4 |" in report and "nat_kd_length_pred" in report
    pngs = (
        "length_errors.png",
        "quality_vs_latency.png",
        "attention_maps.png",
        "validation_curves.png",
    )
    assert "## Validation WER against training steps" in report and "| model |" in report
    for png in pngs:
        assert (workdir / png).stat().st_size > 1000


def test_the_attention_figure_redrawn_from_the_run_is_the_one_the_run_drew(quick_run, tmp_path):
    _, workdir = quick_run
    drawn = redraw_attention_maps(workdir, tmp_path / "attention_maps.png")
    assert drawn == tmp_path / "attention_maps.png"
    assert (tmp_path / "attention_maps.png").read_bytes() == (
        workdir / "attention_maps.png"
    ).read_bytes()


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

"""The quick forms of the address study and the syllable report, end to end.

Each trains its config's ``quick`` variant (a tiny model, a 2000-example build, 40 steps) and
writes its report; the figures are checked against independent computations on the same
predictions, not against fixed numbers.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnlab.analysis import address, address_report, syllables_report
from attnlab.analysis.syllables import vowel_group_label
from attnlab.data.builders.cn_address import TEST_CONDITIONS
from attnlab.inference import load
from attnlab.metrics import span_f1
from attnlab.train import train_and_evaluate
from attnlab.train.config import load_config_file

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("compilation_cache_dir")


def _quick(spec: str, data_dir: Path):
    config = load_config_file(str(ROOT / "experiments" / "configs" / spec))
    config.data.data_dir = str(data_dir)
    return config


def test_the_address_study_scores_the_tagger_and_cpca_on_every_condition(tmp_path, monkeypatch):
    monkeypatch.setattr(address, "NUM_SAMPLES", 50)
    workdir = tmp_path / "address"
    results = address.run(_quick("address.py:quick", tmp_path / "tfds"), workdir)
    for name in ("results.json", "report.md", "per_type_f1.png", "attention_map.png"):
        assert (workdir / name).stat().st_size > 0
    assert json.loads((workdir / "results.json").read_text())["step"] == 40
    predictor = load(workdir)
    for split in TEST_CONDITIONS:
        records = address.read_split(predictor.config.data, split)
        tags = [
            list(p.tags) for p in predictor.predict([r["text"] for r in records], unknown="unk")
        ]
        expected = span_f1(tags, [r["tags"] for r in records])
        got = results["splits"][split]["tagging"]
        assert np.isclose(got["span"]["f1"], expected["f1"])
        assert got["addresses"] == len(records)
        for system in ("tagger", "cpca"):
            levels = results["splits"][split]["levels"][system]
            assert 0.0 <= levels["address"] <= 1.0
    assert results["heldout"]["districts_in_train"] == 0
    assert "held-out districts" in (workdir / "report.md").read_text()
    assert len(results["hand_examples"]) == len(address.HAND_EXAMPLES)
    # without a CJK font (as on CI) the attention map is labelled by position, not by glyphs
    monkeypatch.setattr(address_report, "cjk_font", lambda: None)
    record = address.read_split(predictor.config.data, "test")[0]
    _, labels = address_report.attention_figure(predictor, record)
    assert labels == [str(i) for i in range(len(record["text"]))]


def test_the_syllable_report_matches_its_confusion_matrix_and_the_rule(tmp_path, monkeypatch):
    monkeypatch.setattr(syllables_report, "NUM_SAMPLES", 50)
    workdir = tmp_path / "syllables"
    train_and_evaluate(_quick("syllables.py:quick", tmp_path / "tfds"), str(workdir))
    results = syllables_report.run(workdir, tmp_path / "out")
    table = np.array(results["confusion"])
    assert table.sum() == results["words"]
    assert np.isclose(results["model"]["accuracy"], np.trace(table) / table.sum())
    words, truth = syllables_report.read_words(load(workdir).config.data, "test")
    rule = np.mean([vowel_group_label(w) == t for w, t in zip(words, truth)])
    assert np.isclose(results["rule"]["accuracy"], rule)
    assert sum(r["words"] for r in results["by_length"].values()) == len(words)
    assert (tmp_path / "out" / "confusion_matrix.png").stat().st_size > 0
    # the entry point: a workdir without a checkpoint is one line and exit 2
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "syllables_report.py"),
            f"--workdir={tmp_path}",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr


@pytest.mark.parametrize(
    "study, render",
    [
        ("address", lambda d, out: address_report.render(out)),
        (
            "syllables",
            lambda d, out: syllables_report.render(out / "results.json", out / "report.md"),
        ),
    ],
)
def test_the_committed_reports_are_rendered_from_their_results_json_alone(study, render, tmp_path):
    """No model, no data: the committed report.md is what its results.json renders to."""
    committed = ROOT / "experiments" / "results" / study
    shutil.copy(committed / "results.json", tmp_path)
    report = render(committed, tmp_path)
    assert report.read_text() == (committed / "report.md").read_text()
    png = "per_type_f1.png" if study == "address" else "confusion_matrix.png"
    assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

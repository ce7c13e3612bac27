"""Recorded outputs (analysis.recorded), the parts that need no trained model: which decoding
times a recorded system, and the files. The end-to-end use is in test_at_vs_nat.py and
test_at_vs_nat_frontier.py (a run reported again from its records, without checkpoints)."""

import gzip

import ml_collections
import pytest

from attnlab.analysis import recorded
from attnlab.analysis.systems import SYSTEMS
from attnlab.nat import parse_strategy
from attnlab.train.distill import PAIRS_FILE, load_pairs, save_pairs


def test_a_fresh_model_is_timed_with_the_recorded_lengths_where_its_own_would_choose():
    assert recorded.timing_method("greedy") == "greedy"
    assert recorded.timing_method("beam:4") == "beam:4"
    assert recorded.timing_method("length_pred") == "oracle_length"
    assert recorded.timing_method("mask_predict:4") == "oracle_length+mask_predict:4"
    # fixed by the source, or given the recorded candidate lengths (length_beam)
    for fixed in (
        "oracle_length",
        "eos_cut",
        "ctc",
        "ctc_beam:4",
        "dag_lookahead",
        "length_beam:3",
    ):
        assert recorded.timing_method(fixed) == fixed
    for system in SYSTEMS.values():  # every NAT method maps to one a NAT decoder accepts
        if not system.model.startswith("at"):
            parse_strategy(recorded.timing_method(system.method))


def _record(**changes) -> recorded.Record:
    fields = dict(
        system="at_greedy",
        model="at",
        decoding="greedy",
        split="test",
        references_digest=recorded.references_digest([[[5, 6]], [[7]]]),
        step=400,
        params=1000,
        config={"model": {"d_model": 32}, "data": {"name": "somewhere"}, "seed": 0},
        curve=[[400, 0.5]],
        hyps=[["AH", "B"], ["K"]],
        lengths=None,
        output_lengths=[3, 2],
        steps=[3, 4],
    )
    return recorded.Record(**{**fields, **changes})


def test_a_record_reads_back_as_written_and_the_same_record_gives_the_same_bytes(tmp_path):
    path = recorded.save(tmp_path, _record())
    first = path.read_bytes()
    config = ml_collections.ConfigDict({"model": {"d_model": 32}, "data": {"name": "here"}})
    back = recorded.load(
        tmp_path, "at_greedy", model_config=config, split="test", refs=[[[5, 6]], [[7]]]
    )
    assert back == _record()
    assert recorded.save(tmp_path, _record()).read_bytes() == first
    # and another process, directory or time writes them alike: the bytes depend on the content
    assert first == gzip.compress(gzip.decompress(first), mtime=0)
    assert recorded.load(tmp_path, "at_beam4", model_config=config, split="test", refs=[]) is None
    with pytest.raises(ValueError, match="were scored against other references"):
        recorded.load(tmp_path, "at_greedy", model_config=config, split="test", refs=[[[5]], [[7]]])
    path.write_bytes(first[:20])
    with pytest.raises(ValueError, match="at_greedy.json.gz are unreadable .*; remove them"):
        recorded.load(tmp_path, "at_greedy", model_config=config, split="test", refs=[])


def test_teacher_outputs_read_back_and_a_bad_line_is_named(tmp_path):
    pairs = [(["C", "A", "T"], ["K", "AE1", "T"]), (["A"], ["AH0"])]
    save_pairs(tmp_path, pairs)
    assert load_pairs(tmp_path) == pairs
    assert load_pairs(tmp_path / "none") is None
    (tmp_path / PAIRS_FILE).write_bytes(gzip.compress(b"C A T\tK AE1 T\nA\n"))
    with pytest.raises(ValueError, match="line 2: expected 'source<TAB>output', got 'A'"):
        load_pairs(tmp_path)


def test_the_revision_marks_changed_code_and_not_changed_results(tmp_path):
    """``+changes`` for an uncommitted edit of src/ or experiments/, none for one of
    experiments/results/ (what runs write while they train) or of an untracked file."""
    import subprocess

    git = lambda *args: subprocess.run(["git", "-C", str(tmp_path), *args], check=True,
                                       capture_output=True, text=True).stdout.strip()  # fmt: skip
    for path in ("src/m.py", "experiments/e.py", "experiments/results/log.txt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    head = git("rev-parse", "HEAD")
    (tmp_path / "experiments/results/log.txt").write_text("2\n")
    (tmp_path / "src/new.py").write_text("untracked\n")
    assert recorded.revision_of(tmp_path) == head
    for path in ("experiments/e.py", "src/m.py"):
        (tmp_path / path).write_text("2\n")
        assert recorded.revision_of(tmp_path) == head + "+changes"
        git("checkout", "-q", "--", path)
    assert recorded.revision_of(tmp_path / "nowhere") is None

"""Distillation data: the teacher's pairs train the student, the real references evaluate it.

The base is the tiny ``reverse`` task; the "teacher" here sorts instead, so every distilled
target that differs from the reference shows where the data came from.
"""

import json
import os

import numpy as np
import pytest
from data_testing import tiny

from attnlab.data import dataset_info, make_eval_batches, make_train_iterator, write_distilled
from attnlab.data.datasets import clear_cache, prepare
from attnlab.data.sources import iter_records, text
from attnlab.data.vocab import Vocab
from attnlab.specials import EOS


@pytest.fixture(scope="module")
def base(data_dir):
    return tiny(data_dir, "synthetic_seq2seq", synthetic_max_length=8)


@pytest.fixture(scope="module")
def sources(base):
    return [text(r["inputs"]).split() for r in iter_records(prepare(base).source("train"))]


@pytest.fixture(scope="module")
def distilled(base, sources):
    pairs = [(s, sorted(s)) for s in sources]
    return write_distilled(base, pairs, "sorted"), pairs


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def same(a, b):
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b)
    )


def one_epoch(cfg, n, batch_size=16):
    """The (inputs, targets) id rows of the first ``n`` examples of epoch 0."""
    batches = take(make_train_iterator(cfg, batch_size=batch_size, seed=0), n // batch_size + 1)
    rows = [
        (tuple(i[i != 0]), tuple(t[t != 0]))
        for b in batches
        for i, t in zip(b["inputs"], b["targets"])
    ]
    return rows[:n]


def test_training_batches_are_exactly_the_distilled_pairs_in_the_original_ids(base, distilled):
    cfg, pairs = distilled
    info, original = dataset_info(cfg), dataset_info(base)
    assert cfg.name == "distilled" and cfg.distill_base == "synthetic_seq2seq"
    assert cfg.distill_dir == os.path.join(base["data_dir"], "distilled", "sorted")
    assert info.src_vocab == original.src_vocab and info.tgt_vocab == original.tgt_vocab
    assert any(t != s[::-1] for s, t in pairs)  # the teacher's targets are not the references
    expected = [
        (tuple(original.src_vocab.encode(s)), tuple(original.tgt_vocab.encode(t) + [EOS]))
        for s, t in pairs
    ]
    assert sorted(one_epoch(cfg, len(pairs))) == sorted(expected)
    assert info.split_sizes["train"] == len(pairs) and info.task == "seq2seq"


def test_validation_and_test_are_the_original_splits_with_the_real_references(base, distilled):
    cfg, pairs = distilled
    for split in ("validation", "test"):
        ours = make_eval_batches(cfg, split, batch_size=8)
        theirs = make_eval_batches(base, split, batch_size=8)
        assert len(ours) == len(theirs) > 0 and ours.counts == theirs.counts
        for a, b in zip(ours, theirs):
            assert a["references"] == b["references"]
            assert all(np.array_equal(a[k], b[k]) for k in ("inputs", "targets", "valid", "index"))
        assert dataset_info(cfg).split_sizes[split] == dataset_info(base).split_sizes[split]
    # the distilled split itself, evaluated, has the teacher's outputs as references
    train = make_eval_batches(cfg, "train", batch_size=64)
    refs = [r for b in train for r, ok in zip(b["references"], b["valid"]) if ok]
    assert refs == [[t] for _, t in pairs]  # file order is the order of the pairs


def test_seeded_and_resumable_like_every_dataset(base, distilled):
    cfg, pairs = distilled
    a = take(make_train_iterator(cfg, batch_size=8, seed=3), 4)
    assert same(a, take(make_train_iterator(cfg, batch_size=8, seed=3), 4))
    assert not same(a, take(make_train_iterator(cfg, batch_size=8, seed=4), 4))
    boundary = len(pairs) // 16  # the batch that straddles the end of epoch 0
    total = boundary + 3
    reference = take(make_train_iterator(cfg, batch_size=16, seed=7), total)
    for k in (2, boundary, boundary + 1):
        first = make_train_iterator(cfg, batch_size=16, seed=7)
        take(first, k)
        resumed = make_train_iterator(cfg, batch_size=16, seed=7)
        resumed.set_state(json.loads(json.dumps(first.get_state())))
        assert same(take(resumed, total - k), reference[k:]), f"resume at step {k}"
    other = make_train_iterator(base, batch_size=16, seed=7).get_state()
    with pytest.raises(ValueError, match="dataset is 'synthetic_seq2seq'"):
        make_train_iterator(cfg, batch_size=16, seed=7).set_state(other)


def test_bad_pairs_are_counted_and_dropped_as_for_any_data(base, sources):
    good = [(s, sorted(s)) for s in sources[:20]]
    bad = [
        (["00", "01"], []),  # empty target: dropped
        (["00", "zz"], ["00", "<unk>"]),  # one unknown input token, the teacher's UNK: kept
        (["01"], ["01", "yy", "xx"]),  # two unknown target tokens: kept
        (["02"], ["02"] * 9),  # 9 tokens + EOS > max_target_len 9: dropped (filter)
    ]
    pairs = good + bad
    cfg = write_distilled(base, pairs, "bad")
    assert dataset_info(cfg).max_target_len == 9
    it = make_train_iterator(cfg, batch_size=4, seed=0)
    while not it.reports:
        next(it)
    assert it.reports[0] == (
        0,
        {
            "examples": len(pairs),
            "empty": 1,
            "with_unknown": 2,
            "unknown_tokens": 4,
            "too_long": 1,
            "dropped": 2,
        },
    )


@pytest.mark.parametrize(
    "pairs, match",
    [
        ([("00 01", "01 00")], "pair 0: the input must be a list of tokens, got '00 01'"),
        ([(["00"], [1, 2])], "pair 0: target token 1 is not a string"),
        ([(["00"], ["00"]), (["00"], ["01", "</s>"])], "pair 1: the target holds the special"),
        ([(["00"],)], r"pair 0: expected \(input tokens, target tokens\)"),
        ([(["00"], ["00"]), 7], r"pair 1: expected \(input tokens, target tokens\), got 7"),
        ([], "write_distilled got no pairs"),
    ],
)
def test_malformed_pairs_are_one_line_errors_and_leave_nothing(base, tmp_path, pairs, match):
    with pytest.raises(ValueError, match=match) as error:
        write_distilled(base, pairs, str(tmp_path / "out"))
    assert "\n" not in str(error.value)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_rerunning_reuses_a_finished_write_and_a_killed_write_leaves_nothing(
    base, sources, tmp_path
):
    def never():
        raise AssertionError("pairs were read again")
        yield

    def killed():
        yield sources[0], sources[0]
        raise KeyboardInterrupt  # the experiment is killed while decoding

    target = tmp_path / "kd"
    with pytest.raises(KeyboardInterrupt):
        write_distilled(base, killed(), str(target))
    assert list(tmp_path.iterdir()) == [tmp_path / ".attnlab-kd.lock"]
    (tmp_path / ".kd.tmp-999-deadbeef").mkdir()  # what a SIGKILLed writer leaves
    cfg = write_distilled(base, [(s, s) for s in sources[:10]], str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".attnlab-kd.lock", "kd"]
    assert write_distilled(base, never(), str(target)) == cfg
    assert dataset_info(cfg).split_sizes["train"] == 10
    again = write_distilled(base, [(s, s) for s in sources[:5]], str(target), overwrite=True)
    assert again == cfg and dataset_info(cfg).split_sizes["train"] == 5
    info = dataset_info(base)
    copies = [(info.src_vocab.encode(s), info.tgt_vocab.encode(s) + [EOS]) for s in sources[:5]]
    rows = one_epoch(cfg, 5, batch_size=5)  # the copies, not the earlier write
    assert sorted(rows) == sorted((tuple(i), tuple(t)) for i, t in copies)


def test_a_directory_of_other_data_is_never_overwritten(base, sources, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not distilled data"):
        write_distilled(base, [(sources[0], sources[0])], str(tmp_path), overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    copy = dict(base, synthetic_task="copy")
    write_distilled(base, [(sources[0], sources[0])], str(tmp_path / "kd"))
    with pytest.raises(ValueError, match="data.synthetic_task is 'reverse' there, 'copy' here"):
        write_distilled(copy, [(sources[0], sources[0])], str(tmp_path / "kd"))


def test_bad_distilled_configs_are_one_line_errors(base, distilled, tmp_path):
    cfg = distilled[0].to_dict()
    cases = [
        ({"name": "distilled"}, "needs data.distill_dir and data.distill_base"),
        (dict(base, distill_dir=str(tmp_path)), "only read with data.name 'distilled'"),
        (dict(cfg, distill_base="distilled"), "must name the original dataset"),
        (dict(cfg, distill_dir=str(tmp_path)), "holds no distilled data"),
        (dict(cfg, distill_base="cmudict_g2p"), "data.name is 'synthetic_seq2seq' there"),
        (dict(cfg, max_source_examples=50), "data.max_source_examples is 300 there, 50 here"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match) as error:
            dataset_info(bad)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="not a distilled one"):
        write_distilled(cfg, [(["00"], ["00"])], "x")


def test_a_vocabulary_changed_since_writing_is_refused(base, sources, tmp_path):
    cfg = write_distilled(base, [(sources[0], sources[0])], tmp_path / "kd")  # a Path: the dir
    assert cfg.distill_dir == str(tmp_path / "kd")
    Vocab(["00", "01"], tokenizer="space").save(tmp_path / "kd" / "src_vocab.json")
    clear_cache()
    with pytest.raises(ValueError, match="another source vocabulary than synthetic_seq2seq"):
        dataset_info(cfg)

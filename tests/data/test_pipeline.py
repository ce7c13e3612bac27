"""The grain pipeline: fixed shapes, seeded order, epochs, exact resume, buckets, eval passes."""

import json

import numpy as np
import pytest
from data_testing import tiny

from attnlab.data import dataset_info, make_eval_batches, make_train_iterator
from attnlab.data.datasets import prepare
from attnlab.data.pipeline import bucket_shapes
from attnlab.data.sources import iter_records, text


@pytest.fixture(scope="module")
def synth(data_dir):
    # 300 draws -> about 270 distinct training sources; every source is unique.
    return tiny(data_dir, "synthetic_seq2seq", synthetic_max_length=12)


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def same(a, b):
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b)
    )


def test_batches_have_fixed_shapes_and_right_padding(synth):
    info = dataset_info(synth)
    for batch in take(make_train_iterator(synth, batch_size=8, seed=0), 40):
        assert batch["inputs"].shape == (8, info.max_len) and batch["inputs"].dtype == np.int32
        assert batch["targets"].shape == (8, info.max_target_len)
        assert batch["valid"].all()
        for row in [*batch["inputs"], *batch["targets"]]:
            n = np.count_nonzero(row)
            assert n > 0 and not row[n:].any()  # tokens first, then only PAD


def test_same_seed_same_batches_other_seed_other_batches(synth):
    a = take(make_train_iterator(synth, batch_size=8, seed=3), 5)
    b = take(make_train_iterator(synth, batch_size=8, seed=3), 5)
    c = take(make_train_iterator(synth, batch_size=8, seed=4), 5)
    assert same(a, b)
    assert not same(a, c)


def test_each_epoch_is_a_new_permutation_of_the_training_split(synth):
    prepared = prepare(synth)
    vocab = prepared.info.src_vocab
    train = sorted(text(r["inputs"]) for r in iter_records(prepared.source("train")))
    n = len(train)
    it = make_train_iterator(synth, batch_size=10, seed=0)
    rows = [vocab.decode_text(r) for b in take(it, (2 * n) // 10 + 1) for r in b["inputs"]]
    epoch0, epoch1 = rows[:n], rows[n : 2 * n]
    assert sorted(epoch0) == train and sorted(epoch1) == train
    assert epoch0 != epoch1
    assert [epoch for epoch, _ in it.reports] == [0, 1]
    assert all(counts["examples"] == n for _, counts in it.reports)


def _resume_matches(cfg, batch_size, points, total):
    reference = take(make_train_iterator(cfg, batch_size=batch_size, seed=7), total)
    for k in points:
        first = make_train_iterator(cfg, batch_size=batch_size, seed=7)
        assert same(take(first, k), reference[:k])
        state = json.loads(json.dumps(first.get_state()))  # as a checkpoint stores it
        resumed = make_train_iterator(cfg, batch_size=batch_size, seed=7)
        resumed.set_state(state)
        assert same(take(resumed, total - k), reference[k:]), f"resume at step {k}"


def test_resume_at_step_k_gives_the_uninterrupted_batches(synth):
    n = dataset_info(synth).split_sizes["train"]
    boundary = n // 16  # the batch that straddles the end of epoch 0
    _resume_matches(synth, 16, [0, 1, 5, boundary, boundary + 1], boundary + 4)


def test_resume_with_buckets_and_filtering(synth):
    cfg = dict(synth, bucket_boundaries=(4, 8), max_len=10, max_target_len=11)
    it = make_train_iterator(cfg, batch_size=8, seed=7)
    take(it, 3)
    assert any(it.get_state()["pending"])  # unfinished buckets are part of the state
    assert it.counts["too_long"] == it.counts["dropped"] > 0  # sources of 11 and 12 symbols
    n = dataset_info(cfg).split_sizes["train"]
    _resume_matches(cfg, 8, [2, 9, n // 8 + 1], n // 8 + 6)


def test_buckets_never_mix_shapes_beyond_the_declared_ones(synth):
    cfg = dict(synth, bucket_boundaries=(3, 6, 9))
    info = dataset_info(cfg)
    shapes = bucket_shapes((3, 6, 9), info.max_len, info.max_target_len)
    assert shapes == [(3, 3), (6, 6), (9, 9), (12, 13)]
    seen = set()
    for batch in take(make_train_iterator(cfg, batch_size=4, seed=0), 60):
        shape = (batch["inputs"].shape[1], batch["targets"].shape[1])
        assert shape in shapes
        seen.add(shape)
        i = shapes.index(shape)
        for src, tgt in zip(batch["inputs"], batch["targets"]):
            n_src, n_tgt = np.count_nonzero(src), np.count_nonzero(tgt)
            # each example sits in the smallest bucket it fits
            assert i == 0 or n_src > shapes[i - 1][0] or n_tgt > shapes[i - 1][1]
    assert len(seen) >= 3


def test_eval_batches_cover_the_split_once_in_file_order(data_dir):
    cfg = tiny(data_dir, "cmudict_g2p")
    prepared = prepare(cfg)
    recs = list(iter_records(prepared.source("test")))
    batches = make_eval_batches(cfg, "test", batch_size=16)
    info = prepared.info
    valid_rows = []
    for batch in batches:
        assert batch["inputs"].shape == (16, info.max_len)
        assert batch["targets"].shape == (16, info.max_target_len)
        assert len(batch["references"]) == 16
        for i in np.flatnonzero(batch["valid"]):
            valid_rows.append((int(batch["index"][i]), batch, i))
    assert [r[0] for r in valid_rows] == list(range(len(recs)))
    assert not batches[-1]["valid"].all() or len(recs) % 16 == 0
    for index, batch, i in valid_rows:
        rec = recs[index]
        assert info.src_vocab.decode_text(batch["inputs"][i]) == text(rec["word"])
        assert batch["references"][i] == [text(r).split() for r in rec["references"]]
    assert batches.counts["examples"] == len(recs)
    assert make_eval_batches(cfg, "dev", batch_size=16).counts["examples"] == len(
        list(iter_records(prepared.source("validation")))
    )


def test_tagging_and_classification_batches(data_dir):
    tag_cfg = tiny(data_dir, "cn_address", max_len=24, long_policy="truncate")
    batch = next(make_train_iterator(tag_cfg, batch_size=4, seed=0))
    assert batch["inputs"].shape == batch["labels"].shape == (4, 24)
    assert not batch["labels"][batch["inputs"] == 0].any()
    cls_cfg = tiny(data_dir, "cmudict_syllables")
    batch = next(make_train_iterator(cls_cfg, batch_size=4, seed=0))
    assert batch["label"].shape == (4,) and batch["label"].max() < 9

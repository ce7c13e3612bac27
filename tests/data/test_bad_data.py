"""Bad data is counted, never silent: empty, unknown and over-long examples, once per epoch."""

import logging

import grain
import pytest
from data_testing import tiny

from attnlab.data import dataset_info, make_eval_batches, make_train_iterator
from attnlab.data.datasets import prepare
from attnlab.data.encode import Encoder
from attnlab.data.pipeline import build_train_iterator
from attnlab.data.sources import Fields, iter_records, text
from attnlab.data.vocab import Vocab

GOOD = [("cat", "K AE T"), ("dog", "D AO G"), ("act", "AE K T"), ("god", "G AA D")] * 3
BAD = [
    ("", "K AE T"),  # empty input
    ("cat", ""),  # empty target
    ("catz", "K AE T S"),  # z and S are unknown: 2 UNK tokens
    ("dogdogdog", "D AO G"),  # input over max_len 6
    ("cod", "K AA D Z Z Z Z"),  # target over max_target_len 6 (with EOS); Z unknown x4
]


def _iterator(records, *, drop_long, batch_size=4):
    src = Vocab.build([list(w) for w, _ in GOOD], tokenizer="char")
    tgt = Vocab.build([p.split() for _, p in GOOD], tokenizer="space")
    fields = Fields("seq2seq", "word", "phonemes")
    encoder = Encoder(fields, src, tgt, max_len=6, max_target_len=6, truncate=not drop_long)
    source = grain.MapDataset.source([{"word": w, "phonemes": p} for w, p in records])
    return build_train_iterator(
        source,
        encoder,
        batch_size=batch_size,
        seed=0,
        shapes=[(6, 6)],
        drop_long=drop_long,
        name="toy",
    )


@pytest.mark.parametrize("drop_long", [True, False])
def test_counts_of_one_epoch(drop_long, caplog):
    records = GOOD + BAD
    it = _iterator(records, drop_long=drop_long)
    with caplog.at_level(logging.INFO, logger="absl"):
        rows = 0
        while not it.reports:
            rows += int(next(it)["valid"].sum())
    epoch, counts = it.reports[0]
    assert epoch == 0
    expected = {
        "examples": len(records),
        "empty": 2,
        "with_unknown": 2,
        "unknown_tokens": 6,
        "too_long": 2,
        "dropped": 2 + (2 if drop_long else 0),
    }
    assert counts == expected
    reports = [r for r in caplog.records if "data toy, epoch" in r.getMessage()]
    assert len(reports) == 1 and "epoch 0" in reports[0].getMessage()  # once for the epoch
    assert reports[0].levelno == logging.WARNING


def test_truncated_targets_still_end_with_eos():
    it = _iterator([("cod", "K AA D Z Z Z Z")] * 4, drop_long=False)
    batch = next(it)
    assert batch["targets"].shape == (4, 6)
    assert (batch["targets"][:, -1] == 2).all()  # EOS kept as the last token


def test_over_long_words_are_filtered_or_truncated(data_dir):
    base = tiny(data_dir, "cmudict_g2p", max_len=6)
    prepared = prepare(base)
    words = [text(r["word"]) for r in iter_records(prepared.source("train"))]
    long_words = sum(len(w) > 6 for w in words)
    assert long_words > 0
    n = len(words)
    for policy in ("filter", "truncate"):
        it = make_train_iterator(dict(base, long_policy=policy), batch_size=10, seed=0)
        lengths = []
        while not it.reports:
            lengths += [int((row != 0).sum()) for row in next(it)["inputs"]]
        counts = it.reports[0][1]
        assert counts["too_long"] == long_words and counts["examples"] == n
        assert max(lengths) == 6
        assert counts["dropped"] == (long_words if policy == "filter" else 0)


def test_characters_unseen_in_training_become_unk_and_are_counted(data_dir):
    cfg = tiny(data_dir, "cn_address")
    prepared = prepare(cfg)
    train_chars = {c for r in iter_records(prepared.source("train")) for c in text(r["text"])}
    test_texts = [text(r["text"]) for r in iter_records(prepared.source("test"))]
    unseen = [sum(c not in train_chars for c in t) for t in test_texts]
    counts = make_eval_batches(cfg, "test", batch_size=32).counts
    assert counts["unknown_tokens"] == sum(unseen) > 0
    assert counts["with_unknown"] == sum(u > 0 for u in unseen)


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        dataset_info({"name": "cmudict"})
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        "unknown data.name 'cmudict'; valid: cmudict_g2p, cmudict_syllables, cn_address, "
        "synthetic_seq2seq, distilled, tfds:NAME"
    )


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"nmae": "x"}, "unknown data key 'nmae'; valid: name, data_dir"),
        ({"long_policy": "drop"}, "unknown data.long_policy 'drop'; valid: filter, truncate"),
        ({"bucket_boundaries": (8, 4)}, "bucket_boundaries must be ascending"),
        ({"name": "synthetic_seq2seq", "synthetic_task": "rot13"}, "valid: copy, reverse, sort"),
    ],
)
def test_bad_config_values_are_one_line_errors(data_dir, cfg, match):
    with pytest.raises(ValueError, match=match):
        dataset_info(dict(cfg, data_dir=data_dir))


def test_a_state_from_another_pipeline_is_refused(data_dir):
    cfg = tiny(data_dir, "synthetic_seq2seq")
    state = make_train_iterator(cfg, batch_size=8, seed=0).get_state()
    other = make_train_iterator(cfg, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="batch_size is 8, expected 4"):
        other.set_state(state)


def test_a_split_with_nothing_left_is_an_error_not_a_hang():
    it = _iterator([("dogdogdog", "D AO G")] * 3, drop_long=True)
    with pytest.raises(ValueError, match="every training example was dropped in epoch 0"):
        next(it)

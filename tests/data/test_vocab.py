"""Vocabularies: special ids, lossless round trips, decoding stops at EOS, stable ids."""

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab import specials
from attnlab.data.vocab import Vocab

WORDS = ["hello", "world", "held", "low", "ode", "ñandú", "日本語"]


def char_vocab() -> Vocab:
    return Vocab.build((list(w) for w in WORDS), tokenizer="char")


def test_special_ids_come_first_in_every_vocabulary():
    vocab = char_vocab()
    assert (specials.PAD, specials.BOS, specials.EOS, specials.UNK, specials.MASK) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert vocab.tokens[:5] == specials.SPECIAL_TOKENS
    assert vocab.encode(["<pad>", "<s>", "</s>", "<unk>", "<mask>"]) == [0, 1, 2, 3, 4]


def test_ids_follow_frequency_then_token_order():
    counts = collections.Counter(c for w in WORDS for c in w)
    expected = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    assert list(char_vocab().tokens[5:]) == expected


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(sorted(set("".join(WORDS)))), max_size=30))
def test_encode_decode_round_trip_is_lossless(tokens):
    vocab = char_vocab()
    ids = vocab.encode(tokens)
    assert all(i >= specials.NUM_SPECIALS for i in ids)
    assert vocab.decode(ids) == tokens
    assert vocab.decode_text(vocab.encode_text("".join(tokens))) == "".join(tokens)


def test_decode_stops_at_eos_and_skips_pad_and_bos():
    vocab = char_vocab()
    h, e = vocab.encode(["h", "e"])
    ids = [specials.BOS, h, specials.PAD, e, specials.EOS, h, h]
    assert vocab.decode(ids) == ["h", "e"]


def test_out_of_vocabulary_tokens_become_unk():
    vocab = char_vocab()
    assert vocab.encode(["h", "Z", "?"]) == [vocab.encode(["h"])[0], specials.UNK, specials.UNK]


def test_a_vocabulary_of_one_letter_case_folds_text_into_it():
    # char_vocab: lower-case letters (with ñ, ú) and uncased characters (日本語).
    assert char_vocab().case == "lower"
    assert char_vocab().fold_case("HeLLo ÑANDÚ 日本") == "hello ñandú 日本"
    phonemes = Vocab.build([["AH", "B"], ["B", "IY", "1"]], tokenizer="space")
    assert phonemes.case == "upper" and phonemes.fold_case("ah b") == "AH B"
    for tokens in (["a", "B"], ["1", "日"], []):  # both cases, or none: the text stays
        vocab = Vocab(tokens)
        assert vocab.case is None and vocab.fold_case("aB 日") == "aB 日"


def test_space_tokenizer_splits_symbols():
    vocab = Vocab.build([["AH", "B"], ["B", "IY"]], tokenizer="space")
    assert vocab.tokenize("AH  B IY") == ["AH", "B", "IY"]
    assert vocab.decode_text(vocab.encode_text("AH B IY")) == "AH B IY"


def test_save_load_round_trip(tmp_path):
    vocab = char_vocab()
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json") == vocab


def test_unknown_tokenizer_is_a_one_line_error():
    with pytest.raises(
        ValueError, match="unknown tokenizer 'bpe'; valid: char, space, sentencepiece"
    ):
        Vocab([], tokenizer="bpe")


def test_sentencepiece_keeps_special_ids_and_text(tmp_path):
    texts = ["the cat sat on the mat", "a dog  ran far", "die Katze saß"] * 20
    vocab = Vocab.train_sentencepiece(texts, vocab_size=60)
    assert vocab.tokens[:5] == specials.SPECIAL_TOKENS
    for text in set(texts):
        ids = vocab.encode_text(text)
        assert specials.UNK not in ids
        assert vocab.decode_text(ids + [specials.EOS, 7]) == text  # spaces kept exactly
    vocab.save(tmp_path / "spm.json")
    loaded = Vocab.load(tmp_path / "spm.json")
    assert loaded == vocab
    assert loaded.encode_text(texts[0]) == vocab.encode_text(texts[0])

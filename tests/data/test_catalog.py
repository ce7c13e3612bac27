"""tfds:NAME reaches the TFDS catalog; offline, through tfds.testing.mock_data (no TensorFlow)."""

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from attnlab.data import dataset_info, make_eval_batches, make_train_iterator
from attnlab.data.datasets import clear_cache, prepare
from attnlab.data.sources import get_field, iter_records, text

NAME = "tfds:ted_hrlr_translate/pt_to_en"


@pytest.fixture
def mocked(tmp_path):
    clear_cache()
    with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
        yield {"name": NAME, "data_dir": str(tmp_path), "input_key": "pt", "target_key": "en"}
    clear_cache()


@pytest.mark.parametrize("tokenizer", ["char", "sentencepiece"])
def test_feature_keys_map_to_inputs_and_targets(mocked, tokenizer):
    cfg = dict(mocked, tokenizer=tokenizer, spm_vocab_size=48)
    prepared = prepare(cfg)
    info = prepared.info
    assert info.task == "seq2seq" and info.split_sizes["train"] == 24
    if tokenizer == "sentencepiece":
        assert info.src_vocab is info.tgt_vocab  # one joint model
    recs = list(iter_records(prepared.source("train")))
    batches = make_eval_batches(cfg, "train", batch_size=8)
    for batch in batches:
        for i in np.flatnonzero(batch["valid"]):
            rec = recs[int(batch["index"][i])]
            # every character was seen in training, so decoding gives the text back exactly
            assert info.src_vocab.decode_text(batch["inputs"][i]) == text(get_field(rec, "pt"))
            assert info.tgt_vocab.decode_text(batch["targets"][i]) == text(get_field(rec, "en"))
    train = next(make_train_iterator(cfg, batch_size=4, seed=0))
    assert train["inputs"].shape == (4, info.max_len)
    assert "tensorflow" not in sys.modules


def test_missing_or_wrong_keys_name_the_features(mocked):
    with pytest.raises(ValueError, match="needs data.input_key and data.target_key; valid: en, pt"):
        dataset_info(dict(mocked, input_key=""))
    with pytest.raises(ValueError, match="has no feature 'de'; valid: en, pt"):
        dataset_info(dict(mocked, input_key="de"))

"""Claims about the encoder-only models (Tagger, Classifier) and padding."""

import numpy as np
from nn_testing import assert_close, tiny_model, tokens

PERM = np.array([3, 0, 4, 1, 2])


def test_classifier_without_positions_is_permutation_invariant():
    model = tiny_model(name="classifier", position="none")
    x = tokens(0, [5, 5], 5)
    assert_close(model(x[:, PERM]), model(x))


def test_appending_padding_changes_no_real_output():
    x = tokens(0, [5, 3], 5)
    padded = np.pad(x, ((0, 0), (0, 4)))
    for name in ("tagger", "classifier"):
        model = tiny_model(name=name, position="learned")
        out, out_padded = np.asarray(model(x)), np.asarray(model(padded))
        if name == "tagger":
            assert out_padded.shape == (2, 9, 3)
            assert_close(out_padded[0, :5], out[0, :5])
            assert_close(out_padded[1, :3], out[1, :3])
        else:
            assert out.shape == (2, 3)
            assert_close(out_padded, out)


def test_seq2seq_source_padding_is_invisible_to_the_decoder():
    model = tiny_model(name="seq2seq")
    src, tgt = tokens(0, [5, 3], 5), tokens(1, [4, 4], 4)
    assert_close(model(np.pad(src, ((0, 0), (0, 3))), tgt), model(src, tgt))


def test_dropout_acts_in_training_only_and_is_deterministic_given_the_seed():
    x = tokens(0, [5, 3], 5)
    model, twin = tiny_model(name="tagger", dropout=0.5), tiny_model(name="tagger", dropout=0.5)
    assert_close(model(x), model(x))
    first, second = np.asarray(model(x, train=True)), np.asarray(model(x, train=True))
    assert np.abs(first - second).max() > 1e-3  # the stream in the module advanced
    assert_close(twin(x, train=True), first)  # same seed, same masks

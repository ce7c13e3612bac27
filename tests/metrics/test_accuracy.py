"""Token accuracy (tagging) and length accuracy / MAE (NAT)."""

import numpy as np
import pytest

from attnlab.metrics import length_accuracy, length_mae, token_accuracy


def test_token_accuracy_counts_only_unmasked_positions():
    preds = np.array([[1, 2, 3, 0], [4, 4, 0, 0]])
    labels = np.array([[1, 2, 0, 9], [4, 5, 0, 0]])
    mask = labels != 0
    # Unmasked positions: (1,1) (2,2) (9,0) | (4,4) (5,4) -> 3 of 5 right.
    assert token_accuracy(preds, labels, mask) == pytest.approx(3 / 5)
    assert token_accuracy(preds, labels) == pytest.approx(np.mean(preds == labels))


def test_length_accuracy_and_mae():
    pred = np.array([3, 5, 7, 2])
    ref = np.array([3, 4, 9, 2])
    assert length_accuracy(pred, ref) == pytest.approx(0.5)
    assert length_mae(pred, ref) == pytest.approx((0 + 1 + 2 + 0) / 4)
    valid = np.array([True, True, False, False])
    assert length_accuracy(pred, ref, valid) == pytest.approx(0.5)
    assert length_mae(pred, ref, valid) == pytest.approx(0.5)
    # Unsigned inputs do not wrap around.
    assert length_mae(np.uint8([1]), np.uint8([3])) == 2.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        token_accuracy(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="nothing to score"):
        length_mae(np.zeros(2), np.zeros(2), np.zeros(2, bool))

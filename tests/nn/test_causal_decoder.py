"""Claim: a causal decoder's output at position t does not change when tokens after t change.

Checked for every attention choice (in eval mode; BatchNorm's training statistics mix
positions, so causality of a batch-norm decoder holds with running statistics only). The
non-causal NAT decoder is the control: there, later tokens do change earlier outputs.
"""

import numpy as np
import pytest
from nn_testing import tiny_model, tokens

from attnlab.nn.config import ATTENTIONS

T, CUT = 7, 3


def _logits(model, tgt):
    src = tokens(1, [5, 3], 6)
    return np.asarray(model(src, tgt))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_output_at_t_ignores_tokens_after_t(attention):
    model = tiny_model(attention=attention)
    tgt = tokens(2, [T, T], T)
    changed_future = tgt.copy()
    changed_future[:, CUT + 1 :] = tokens(3, [T - CUT - 1] * 2, T - CUT - 1)
    changed_present = tgt.copy()
    changed_present[:, CUT] = np.where(tgt[:, CUT] == 5, 6, 5)

    base = _logits(model, tgt)
    np.testing.assert_allclose(
        _logits(model, changed_future)[:, : CUT + 1], base[:, : CUT + 1], atol=1e-6
    )
    # The check is not vacuous: the token at t itself does change the output at t.
    assert np.abs(_logits(model, changed_present)[:, CUT] - base[:, CUT]).max() > 1e-4


def test_nat_decoder_is_not_causal():
    model = tiny_model(name="nat")
    src = tokens(1, [5, 3], 6)
    dec = tokens(2, [T, T], T)
    changed = dec.copy()
    changed[:, -1] = np.where(dec[:, -1] == 5, 6, 5)
    before = np.asarray(model(src, dec)[0])[:, 0]
    after = np.asarray(model(src, changed)[0])[:, 0]
    assert np.abs(before - after).max() > 1e-4

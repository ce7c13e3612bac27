"""The glancing schedule is what the config says (a linear anneal over a fraction of the
run, then a hold), and the number revealed is ceil(ratio x wrong tokens) (Qian et al. 2021)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.nat.glancing import glance, glance_count, glancing_ratio


def brute_force_ratio(step, total, start, end, fraction):
    """Step by step: the anneal covers the first fraction * total steps, then it holds."""
    anneal = fraction * total
    if anneal <= 0 or step >= anneal:
        return end
    return start + (end - start) * step / anneal


@pytest.mark.parametrize(
    ("total", "start", "end", "fraction"),
    [(100, 0.5, 0.3, 1.0), (100, 0.5, 0.1, 0.25), (7, 0.9, 0.0, 0.5), (50, 0.5, 0.3, 0.0)],
)
def test_the_ratio_anneals_linearly_over_the_fraction_then_holds(total, start, end, fraction):
    steps = np.arange(0, 2 * total + 1)
    got = np.asarray(jax.vmap(lambda s: glancing_ratio(s, total, start, end, fraction))(steps))
    want = [brute_force_ratio(int(s), total, start, end, fraction) for s in steps]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    held = steps >= fraction * total
    assert np.all(got[held] == got[held][0])  # a hold: one value from then on


def test_the_default_schedule_is_the_old_one_bit_for_bit():
    """Fraction 1 (the default) is the former ``start + (end - start) * min(step / total, 1)``
    in float32, so runs of old configs reproduce."""
    for step in range(0, 130, 7):
        old = np.float32(0.5) + (np.float32(0.3) - np.float32(0.5)) * np.minimum(
            np.float32(step) / np.float32(100), np.float32(1.0)
        )
        assert float(glancing_ratio(step, 100, 0.5, 0.3)) == float(old)


def test_ceil_ratio_times_wrong_tokens_are_revealed_among_the_reference_positions():
    rng = np.random.default_rng(0)
    refs = rng.integers(5, 9, size=(64, 12))
    guess = np.where(rng.random((64, 12)) < 0.5, refs, refs + 1)
    candidates = rng.random((64, 12)) < 0.8
    for ratio in (0.0, 0.3, 0.5, 1.0):
        reveal = np.asarray(
            glance(guess, refs, jnp.asarray(candidates), jnp.float32(ratio), jax.random.key(1))
        )
        wrong = ((guess != refs) & candidates).sum(1)
        want = [min(math.ceil(np.float32(ratio) * np.float32(e)), c) for e, c in
                zip(wrong, candidates.sum(1), strict=True)]  # fmt: skip
        np.testing.assert_array_equal(reveal.sum(1), want)
        assert not np.any(reveal & ~candidates)
        np.testing.assert_array_equal(glance_count(jnp.asarray(wrong), ratio), np.ceil(
            np.float32(ratio) * wrong.astype(np.float32)).astype(np.int32))  # fmt: skip

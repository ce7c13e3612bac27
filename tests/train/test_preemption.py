"""Signals outside the training loop: set-up aborts, the exit ignores, several processes defer.

Each test sends a real signal to this process (``signal.raise_signal``); the handlers run in the
main thread, where pytest runs the test.
"""

from __future__ import annotations

import signal

import pytest

from attnlab.train.preemption import Interrupted, PreemptionGuard, entry_point_signals


@pytest.mark.parametrize(
    ("signum", "name"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")]
)
def test_a_signal_during_set_up_aborts_with_its_name(signum, name):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with pytest.raises(Interrupted) as caught, entry_point_signals():
        signal.raise_signal(signum)
    assert caught.value.signal_name == name
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored


def test_the_loop_guard_catches_and_a_signal_after_the_loop_is_ignored():
    with entry_point_signals():
        with PreemptionGuard() as guard:
            signal.raise_signal(signal.SIGTERM)
            assert guard.requested and guard.signal_name == "SIGTERM"
        signal.raise_signal(signal.SIGTERM)  # the run is over: logged, not raised, not killed
        signal.raise_signal(signal.SIGINT)


def test_with_several_processes_a_set_up_signal_waits_for_the_loop():
    with entry_point_signals(abort_setup=False):
        signal.raise_signal(signal.SIGTERM)
        with PreemptionGuard() as guard:
            assert guard.requested and guard.signal_name == "SIGTERM"
    with PreemptionGuard() as later:  # kept for one loop only
        assert not later.requested


def test_without_an_entry_point_a_guard_starts_clear():
    before = signal.getsignal(signal.SIGINT)  # pytest-xdist workers ignore SIGINT
    with PreemptionGuard() as guard:
        assert not guard.requested
    assert signal.getsignal(signal.SIGINT) is before

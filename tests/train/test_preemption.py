"""Signals outside the training loop: set-up aborts, the exit ignores, several processes defer.

Each test sends a real signal to this process (``signal.raise_signal``); the handlers run in the
main thread, where pytest runs the test.
"""

from __future__ import annotations

import gc
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


def test_a_set_up_abort_swallowed_by_a_gc_callback_is_raised_by_the_loop_guard(capfd):
    """The CI failure of 2026-11-28: SIGTERM landed in jax's gc callback, which swallowed it,
    and the run trained to the end. Now the guard raises it before any step, quietly."""

    def callback(phase: str, info: dict) -> None:  # the signal arrives inside a gc callback
        del info
        if phase == "start":
            gc.callbacks.remove(callback)
            signal.raise_signal(signal.SIGTERM)

    with pytest.raises(Interrupted) as caught, entry_point_signals():
        gc.callbacks.append(callback)
        gc.collect()  # the Interrupted raised in the callback is swallowed here
        with PreemptionGuard():
            pytest.fail("the loop started after a set-up abort")
    assert caught.value.signal_name == "SIGTERM"
    assert "Traceback" not in capfd.readouterr().err
    with entry_point_signals(), PreemptionGuard() as guard:  # the next run starts clear
        assert not guard.requested

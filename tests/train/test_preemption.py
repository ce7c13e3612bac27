"""Signals outside the training loop: set-up aborts, the exit ignores, several processes defer.

Each test sends a real signal to this process (``signal.raise_signal``); the handlers run in the
main thread, where pytest runs the test.
"""

from __future__ import annotations

import gc
import signal
import subprocess
import sys

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

    with pytest.raises(Interrupted) as caught, entry_point_signals():
        _swallowed_in_gc(signal.SIGTERM)
        with PreemptionGuard():
            pytest.fail("the loop started after a set-up abort")
    assert caught.value.signal_name == "SIGTERM"
    assert "Traceback" not in capfd.readouterr().err
    with entry_point_signals(), PreemptionGuard() as guard:  # the next run starts clear
        assert not guard.requested


def _swallowed_in_gc(signum: int) -> None:
    """Send ``signum`` from inside a gc callback, which swallows what the handler raises."""

    def callback(phase: str, info: dict) -> None:
        del info
        if phase == "start":
            gc.callbacks.remove(callback)
            signal.raise_signal(signum)

    gc.callbacks.append(callback)
    gc.collect()


def test_a_swallowed_abort_with_no_loop_after_it_is_raised_on_the_way_out():
    with pytest.raises(Interrupted) as caught, entry_point_signals():
        _swallowed_in_gc(signal.SIGINT)
    assert caught.value.signal_name == "Ctrl-C"


def test_between_loops_a_signal_after_a_loop_aborts_instead_of_being_ignored():
    with pytest.raises(Interrupted), entry_point_signals(between_loops=True):
        with PreemptionGuard():
            pass  # the first model trained
        signal.raise_signal(signal.SIGTERM)  # while the next is set up, or decoding
    with entry_point_signals(between_loops=True):
        with PreemptionGuard():
            pass
        with pytest.raises(Interrupted):  # a swallowed one: the next model's guard raises it
            _swallowed_in_gc(signal.SIGTERM)
            with PreemptionGuard():
                pytest.fail("the next model trained after an abort")


def test_exit_now_flushes_and_skips_the_shutdown_where_jax_can_crash():
    """After a signal interrupts an XLA compile, the interpreter's shutdown can segfault (seen
    here: exit status 139 after a clean 'stopped' line). Stand-in for that crash: an atexit
    hook that kills the process with SIGSEGV; ``exit_now`` must not run it, and must flush."""
    script = (
        "import atexit, os, signal, sys\n"
        "from absl import logging\n"
        "from attnlab.train.cli import exit_now\n"
        "atexit.register(lambda: os.kill(os.getpid(), signal.SIGSEGV))\n"
        "sys.stdout.write('buffered line')\n"
        "logging.warning('a log line')\n"
        "exit_now(int(sys.argv[1]))\n"
    )
    for code in (0, 130):
        done = subprocess.run(
            [sys.executable, "-c", script, str(code)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == code, done.stderr[-1000:]
        assert done.stdout == "buffered line" and "a log line" in done.stderr


@pytest.mark.parametrize(
    ("raised", "status", "line"),
    [
        ("Interrupted('SIGTERM')", 0, "prog.py: stopped here on SIGTERM; all saved"),
        ("Interrupted('Ctrl-C')", 130, "prog.py: error: stopped here on Ctrl-C; all saved"),
        # Python's own Ctrl-C
        ("KeyboardInterrupt()", 130, "prog.py: error: stopped here on Ctrl-C; all saved"),
    ],
)
def test_a_stop_outside_training_is_one_line_with_status_0_on_sigterm_130_on_ctrl_c(
    raised, status, line
):
    script = (
        "from attnlab.train.cli import exit_interrupted\n"
        "from attnlab.train.preemption import Interrupted\n"
        f"try:\n    raise {raised}\n"
        "except KeyboardInterrupt as err:\n"
        "    exit_interrupted('prog.py', err, 'here', 'all saved')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (status, line + "\n")


def test_a_hook_installed_inside_survives_the_exit():
    """The checkpoint's filter of a failed read's echoes is installed during set-up; restoring
    the hook from before it on exit let those echoes print tracebacks (CI of 2026-11-28)."""
    before = sys.unraisablehook
    with entry_point_signals():
        inner = sys.unraisablehook
        sys.unraisablehook = lambda info: inner(info)  # installed by someone else meanwhile
        theirs = sys.unraisablehook
    assert sys.unraisablehook is theirs
    sys.unraisablehook = before

"""SIGTERM and Ctrl-C: remember the request; the loop saves at the current step and returns.

Schedulers send SIGTERM some seconds before they kill a job, and a user at a terminal presses
Ctrl-C (SIGINT). Both take the same path: the handler only sets a flag (no work inside a
signal handler); the training loop checks it after every step and between evaluation
batches, saves, and returns. Further signals while the loop stops (and saves) are ignored with
a log line, so a second Ctrl-C cannot cut the save short.

Outside the loop, ``entry_point_signals`` (around an entry point's whole run) decides: a signal
during set-up (building the model, restoring, compiling) aborts at once with ``Interrupted``,
since no step was trained and nothing can be lost; one after the loop has returned (everything
saved, the process exiting) is logged and ignored. Without it, a SIGTERM in those windows
would kill the process with the default action. With several processes, aborting one alone
would leave the others waiting in a collective, so there a set-up signal is kept instead, and
the loop's guard starts with it: every process trains one step, saves it and stops.

A handler's exception is raised wherever Python happens to be, and some places swallow it: a
garbage-collector callback (jax installs one) or a ``__del__`` reports it through
``sys.unraisablehook`` and carries on. So the set-up abort is also recorded: the training
loop's guard raises it on entry if it was swallowed, before any step, and the swallowed copy is
not printed as a traceback (``hooks``); with no loop after it, the entry point raises it on its
way out.

``at_vs_nat.py`` and ``address.py`` train, then decode or score (and ``at_vs_nat.py`` trains
several models): there a signal outside every loop aborts (``between_loops=True``), whichever
loop came before.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from absl import logging

from attnlab.train import hooks

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_loops_finished = 0  # PreemptionGuards exited in this process
_deferred = ""  # a signal kept during set-up, for the next PreemptionGuard
_aborted = ""  # a set-up abort already raised once; raised again if something swallowed it


class Interrupted(KeyboardInterrupt):
    """A signal arrived during set-up, before any step was trained: nothing to save."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def _name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


@contextlib.contextmanager
def entry_point_signals(*, abort_setup: bool = True, between_loops: bool = False) -> Iterator[None]:
    """Around an entry point that trains one model: see the module docstring.

    ``abort_setup=False`` (several processes) keeps a set-up signal for the loop instead.
    ``between_loops=True``, for an entry point with work after a loop (another model, decoding,
    scoring): a signal outside every loop always aborts, never is ignored.
    """
    global _deferred, _aborted
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    finished_before = _loops_finished

    def handle(signum: int, frame: FrameType | None) -> None:
        global _deferred, _aborted
        del frame
        if _loops_finished > finished_before and not between_loops:
            logging.warning("received %s while exiting: the checkpoint is saved", _name(signum))
        elif abort_setup:
            _aborted = _aborted or _name(signum)
            raise Interrupted(_name(signum))
        elif not _deferred:
            logging.warning(
                "received %s during set-up: stopping after the first step", _name(signum)
            )
            _deferred = _name(signum)

    previous = {s: signal.signal(s, handle) for s in SIGNALS}
    # A swallowed abort is recorded (the loop's guard raises it): no traceback for it.
    keep_quiet = hooks.drop(lambda error: isinstance(error, Interrupted), "unraisable")
    try:
        yield
        if _aborted:  # swallowed, and no loop came after to raise it: stop now
            raise Interrupted(_aborted)
    finally:
        _deferred = _aborted = ""
        keep_quiet()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class PreemptionGuard:
    """Context manager: while active, SIGTERM and SIGINT set ``requested`` instead of killing."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        name = _name(signum)
        if self.requested:
            logging.warning("%s again: already stopping; wait for the checkpoint to be saved", name)
            return
        logging.warning("received %s: saving a checkpoint and stopping", name)
        self.requested, self.signal_name = True, name

    def __enter__(self) -> PreemptionGuard:
        global _deferred, _aborted
        if _aborted:  # an abort that something swallowed: this model has trained no step
            name, _aborted = _aborted, ""
            raise Interrupted(name)
        if _deferred:
            self.requested, self.signal_name, _deferred = True, _deferred, ""
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        global _loops_finished
        _loops_finished += 1  # before the handlers go back: the window between is covered
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

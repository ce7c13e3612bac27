"""SIGTERM and Ctrl-C: remember the request; the loop saves at the current step and returns.

Schedulers send SIGTERM some seconds before they kill a job, and a user at a terminal presses
Ctrl-C (SIGINT). Both take the same path: the handler only sets a flag (no work inside a
signal handler); the training loop checks it after every step and between evaluation
batches, saves, and returns. Further signals while the loop stops (and saves) are ignored with
a log line, so a second Ctrl-C cannot cut the save short.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from absl import logging

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionGuard:
    """Context manager: while active, SIGTERM and SIGINT set ``requested`` instead of killing."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self.requested:
            logging.warning("%s again: already stopping; wait for the checkpoint to be saved", name)
            return
        logging.warning("received %s: saving a checkpoint and stopping", name)
        self.requested, self.signal_name = True, name

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

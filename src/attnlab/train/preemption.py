"""SIGTERM handling: remember the request; the loop saves at the current step and returns.

Schedulers send SIGTERM some seconds before they kill a job. The handler only sets a flag
(no work inside a signal handler); the training loop checks it after every step and between
evaluation batches.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from absl import logging


class PreemptionGuard:
    """Context manager: while active, SIGTERM sets ``requested`` instead of killing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if not self.requested:
            logging.warning("received signal %d: saving a checkpoint and stopping", signum)
        self.requested = True

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

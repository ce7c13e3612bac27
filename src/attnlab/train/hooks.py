"""Python's reports of exceptions nobody caught, filtered in one place.

Two parts of training drop reports that only echo something already told in one line:

- ``checkpoint`` drops the echoes of a failed orbax read (TensorStore callbacks into closed
  event loops, coroutines that fail when collected), for the rest of the process;
- ``preemption`` drops an ``Interrupted`` that a garbage-collector callback swallowed (the loop
  raises it again), while an entry point runs.

Each registers a predicate on the exception here (``drop``). One wrapper per hook
(``sys.excepthook``, ``sys.unraisablehook``, ``threading.excepthook``) asks every predicate
registered for it. Wrappers stay on; only predicates come and go. So no filter can undo
another by putting back the hook it found: two filters that each restored "their" previous
hook once did that (docs/preemption_and_multiprocess.md, "Signals").
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

Predicate = Callable[[BaseException | None], bool]
HOOKS = ("except", "unraisable", "thread")
_MARK = "_attnlab_filtered"

# hook -> (module holding it, attribute, the exception among the hook's arguments)
_WHERE: dict[str, tuple[Any, str, Callable[..., BaseException | None]]] = {
    "except": (sys, "excepthook", lambda kind, value, tb: value),
    "unraisable": (sys, "unraisablehook", lambda info: info.exc_value),
    "thread": (threading, "excepthook", lambda args: args.exc_value),
}
_predicates: dict[str, list[Predicate]] = {hook: [] for hook in HOOKS}


def _install(hook: str) -> None:
    """Wrap ``hook`` as it is now, unless it is already ours (someone may have replaced it)."""
    owner, attribute, exception_of = _WHERE[hook]
    current = getattr(owner, attribute)
    if getattr(current, _MARK, False):
        return

    def filtered(*args: Any) -> None:
        error = exception_of(*args)
        if not any(dropped(error) for dropped in list(_predicates[hook])):
            current(*args)

    setattr(filtered, _MARK, True)
    setattr(owner, attribute, filtered)


def drop(predicate: Predicate, *hooks: str) -> Callable[[], None]:
    """Drop the reports of exceptions for which ``predicate`` is true, from ``hooks`` (all
    three if none are named), until the returned function is called. Registering a predicate
    again only puts back a wrapper that someone replaced since."""
    hooks = hooks or HOOKS
    unknown = [h for h in hooks if h not in HOOKS]
    if unknown:
        raise ValueError(f"unknown hook {unknown[0]!r}; valid: {', '.join(HOOKS)}")
    for hook in hooks:
        _install(hook)
        if predicate not in _predicates[hook]:
            _predicates[hook].append(predicate)

    def stop() -> None:
        for hook in hooks:
            if predicate in _predicates[hook]:
                _predicates[hook].remove(predicate)

    return stop

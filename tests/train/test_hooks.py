"""One place filters Python's reports of uncaught exceptions (``attnlab.train.hooks``): each
filter drops only what its predicate matches, and taking one off never takes off another."""

import sys

import pytest

from attnlab.train import hooks


class Echo(RuntimeError):
    pass


class Other(RuntimeError):
    pass


def _unraisable(error: BaseException) -> None:
    """Make Python report ``error`` through ``sys.unraisablehook`` (a failing ``__del__``)."""

    class Dies:
        def __del__(self):
            raise error

    Dies()


@pytest.fixture
def reported(monkeypatch):
    """The hook that was there before any filter: records what reaches it."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(type(info.exc_value)))
    return seen


def test_a_predicate_drops_what_it_matches_and_nothing_else(reported):
    stop = hooks.drop(lambda error: isinstance(error, Echo), "unraisable")
    try:
        _unraisable(Echo("echo"))
        _unraisable(Other("other"))
    finally:
        stop()
    _unraisable(Echo("after"))  # the filter is off
    assert reported == [Other, Echo]


def test_taking_one_filter_off_keeps_the_other_and_a_later_hook(reported):
    """The CI failure of 2026-11-28: one filter restoring the hook it found undid another."""
    first = hooks.drop(lambda error: isinstance(error, Echo), "unraisable")
    second = hooks.drop(lambda error: isinstance(error, Other), "unraisable")
    try:
        second()
        _unraisable(Echo("still dropped"))
        _unraisable(Other("reported again"))
        assert reported == [Other]
    finally:
        first()


def test_registering_again_puts_back_a_replaced_wrapper(reported, monkeypatch):
    def is_echo(error):
        return isinstance(error, Echo)

    stop = hooks.drop(is_echo, "unraisable")
    try:
        replaced = []
        monkeypatch.setattr(sys, "unraisablehook", lambda info: replaced.append(1))
        hooks.drop(is_echo, "unraisable")  # e.g. after a test harness swapped the hook
        _unraisable(Echo("dropped"))
        _unraisable(Other("reported"))
        assert replaced == [1] and reported == []
    finally:
        stop()
    _unraisable(Echo("once registered, once removed"))
    assert replaced == [1, 1]


def test_an_unknown_hook_is_refused_with_the_valid_ones():
    valid = "valid: except, unraisable, thread"
    with pytest.raises(ValueError, match=f"unknown hook 'atexit'; {valid}"):
        hooks.drop(lambda error: True, "atexit")

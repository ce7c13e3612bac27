"""String choices: one way to declare them and one error for a value outside them.

A config module declares its choices as ``CHOICES = {key: (valid values, ...)}`` beside its
defaults and checks a config with ``check_choices(cfg, CHOICES, prefix="model.")``; code that
takes one choice as an argument checks it with ``check_choice``. A bad value is one line that
names the key, the value and every valid value:

    unknown model.attention 'magic'; valid: softmax, relu, ..., conv

(``ops/`` imports nothing from attnlab, so ``ops.attention`` words its own check the same way.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def check_choice(key: str, value: T, choices: Sequence[T]) -> T:
    """``value`` if it is in ``choices``; else ValueError("unknown <key> <value>; valid: ...")."""
    if value not in choices:
        raise ValueError(f"unknown {key} {value!r}; valid: {', '.join(map(str, choices))}")
    return value


def check_choices(
    config: Mapping[str, Any], choices: Mapping[str, Sequence[Any]], prefix: str = ""
) -> None:
    """``check_choice`` for every key of ``choices`` in ``config``, named ``<prefix><key>``."""
    for key, valid in choices.items():
        check_choice(prefix + key, config[key], valid)

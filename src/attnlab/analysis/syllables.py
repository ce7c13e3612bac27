"""A rule-based syllable counter: the baseline of the ``cmudict_syllables`` classifier.

Vowels are ``a e i o u``, and ``y`` unless first (``yes``; ``gym``, ``happy``). Each maximal run
of vowels is one group (``beau-ti-ful``: 3; any other character ends a group: ``co-op``: 2). A
final ``e`` alone after a consonant is silent (``make``: 1) unless it is the only group
(``the``) or ends consonant + ``le`` (``table``: 2). No group counts 0 (``hmm``), as class 0.
"""

from __future__ import annotations

import re

from attnlab.data.builders.cmudict_syllables import syllable_label

_GROUPS = re.compile(r"[aeiouy]+")


def count_vowel_groups(word: str) -> int:
    """Number of vowel groups in ``word`` after the silent-final-e rule (module docstring)."""
    word = word.lower()
    count = len(_GROUPS.findall("_" + word[1:] if word.startswith("y") else word))
    silent_e = len(word) >= 2 and word.endswith("e") and word[-2] not in "aeiouy"
    syllabic_le = len(word) >= 3 and word.endswith("le") and word[-3] not in "aeiouy"
    if count > 1 and silent_e and not syllabic_le:
        count -= 1
    return count


def vowel_group_label(word: str) -> int:
    """The ``cmudict_syllables`` class id of ``count_vowel_groups(word)`` (0..7, 8 = 8+)."""
    return syllable_label(count_vowel_groups(word))

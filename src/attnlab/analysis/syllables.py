"""A rule-based syllable counter: the baseline of the ``cmudict_syllables`` classifier.

``count_vowel_groups(word)`` counts syllables from the spelling alone, by these rules:

1. Letters are compared in lower case. The vowels are ``a e i o u``, and ``y`` when it is
   not the first letter (``yes``: consonant; ``gym``, ``happy``: vowel).
2. Each maximal run of vowels is one group (``beau-ti-ful``: ``eau``, ``i``, ``u`` -> 3).
   Any other character, apostrophe and hyphen included, ends a group (``co-op`` -> 2).
3. Silent final ``e``: a word-final ``e`` that is a group on its own (a consonant before it)
   is not counted (``make`` -> 1, ``there`` -> 1), unless it is the only group (``the``,
   ``he``) or the word ends in consonant + ``le``, which is syllabic (``table`` -> 2,
   ``little`` -> 2).

A word with no vowel group counts 0, as the dataset's class 0 does (``hmm``, ``shh``).
``vowel_group_label`` turns the count into the dataset's class id (``8`` = 8 or more), so
baseline and model predictions compare directly.
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

"""``cmudict_syllables``: the number of syllables of an English word, from its spelling.

A sequence classification task with one label per word. The truth comes from CMUdict: a
syllable has exactly one vowel nucleus, and CMUdict marks every vowel phoneme with a stress
digit (``AH0``, ``EY1``), so the syllable count of a pronunciation is the number of phonemes
that end in a digit.

- Inputs are the letters of the word (the same words as ``cmudict_g2p``: ``[a-z'-]+``).
- Label ``k`` means ``k`` syllables for ``k = 0..7``; label ``8`` means 8 or more (the longest
  word has 12). Class 0 holds the few vowel-less interjections (``hmm``, ``shh``).
- Words whose pronunciations disagree on the count (``every``: ``EH V R IY`` / ``EH V ER IY``)
  are dropped, so every label is unambiguous; there are about 1.7k such words.
- Split: the same stable word hash as ``cmudict_g2p`` (salt ``cmudict``), 90/2/8.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from attnlab.data.builders.cmudict_g2p import SALT, load_cmudict
from attnlab.data.builders.common import AttnlabBuilder, LimitedConfig, split_of

NUM_CLASSES = 9
CLASS_NAMES = tuple(str(k) for k in range(NUM_CLASSES - 1)) + (f"{NUM_CLASSES - 1}+",)


def syllable_count(pronunciation: list[str]) -> int:
    """Number of vowel phonemes, i.e. phonemes carrying a stress digit."""
    return sum(1 for p in pronunciation if p[-1].isdigit())


def syllable_label(count: int) -> int:
    return min(count, NUM_CLASSES - 1)


class CmudictSyllables(AttnlabBuilder):
    """Letters -> syllable count from CMUdict; see the module docstring."""

    name = "cmudict_syllables"
    DESCRIPTION = __doc__
    BUILDER_CONFIGS = [LimitedConfig(name="default", description="syllables 0..7 and 8+")]

    def _info(self) -> tfds.core.DatasetInfo:
        return self._make_info(
            tfds.features.FeaturesDict(
                {
                    "word": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            )
        )

    def _examples(self):
        words, _ = load_cmudict(self.builder_config.max_source_examples)
        for word, prons in words.items():
            counts = {syllable_count(p) for p in prons}
            if len(counts) != 1:
                continue  # ambiguous: the pronunciations disagree
            label = syllable_label(counts.pop())
            yield split_of(word, SALT), word, {"word": word, "label": label}

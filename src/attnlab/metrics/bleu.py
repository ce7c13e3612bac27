"""Corpus BLEU and chrF, computed by sacrebleu with its default settings.

We do not reimplement either metric: the flax WMT example's home-made BLEU drifted from
sacreBLEU, so every number here comes from ``sacrebleu.corpus_bleu`` / ``sacrebleu.corpus_chrf``
(BLEU: 13a tokenization, exponential smoothing, case-sensitive; chrF: character 6-grams,
beta 2). Scores are on sacrebleu's 0-100 scale.

The only work done here is the reference layout. We take references *per item*: ``refs[i]`` is
either one string or a list of strings (any number >= 1, varying between items). sacrebleu
wants *streams*: ``streams[j][i]`` is the j-th reference of item i, and an item with fewer
references than the widest one gets ``None`` in the missing streams, which sacrebleu skips.
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu


def reference_streams(refs: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-item references -> sacrebleu's reference streams, padded with ``None``.

    ``refs[i]`` is a string (one reference) or a non-empty list of strings.
    """
    per_item: list[list[str]] = []
    for i, r in enumerate(refs):
        if isinstance(r, str):
            per_item.append([r])
            continue
        r = list(r)
        if not r:
            raise ValueError(f"item {i} has no reference; give at least one string")
        if not all(isinstance(s, str) for s in r):
            raise ValueError(f"item {i}: references must be strings, got {r!r}")
        per_item.append(r)
    width = max((len(r) for r in per_item), default=1)
    return [[r[j] if j < len(r) else None for r in per_item] for j in range(width)]


def _check(hyps: Sequence[str], refs: Sequence) -> None:
    if isinstance(hyps, str) or isinstance(refs, str):
        raise ValueError("hyps and refs must be lists (one entry per item), not a single string")
    if len(hyps) != len(refs):
        raise ValueError(f"hyps and refs differ in length: {len(hyps)} != {len(refs)}")
    if not hyps:
        raise ValueError("cannot score an empty corpus")
    if not all(isinstance(h, str) for h in hyps):
        raise ValueError("hyps must be detokenized strings")


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str] | Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100), equal to ``sacrebleu.corpus_bleu`` with its default settings.

    ``refs[i]`` is one reference string or a list of reference strings for ``hyps[i]``.
    """
    _check(hyps, refs)
    return float(sacrebleu.corpus_bleu(list(hyps), reference_streams(refs)).score)


def corpus_chrf(hyps: Sequence[str], refs: Sequence[str] | Sequence[Sequence[str]]) -> float:
    """Corpus chrF (0-100), equal to ``sacrebleu.corpus_chrf`` with its default settings.

    ``refs[i]`` is one reference string or a list of reference strings for ``hyps[i]``.
    """
    _check(hyps, refs)
    return float(sacrebleu.corpus_chrf(list(hyps), reference_streams(refs)).score)

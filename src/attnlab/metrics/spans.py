"""Span-level precision, recall and F1 of BIO tag sequences, computed by seqeval.

We do not reimplement the scoring: every number comes from seqeval's default (conlleval)
mode, ``seqeval.metrics.sequence_labeling.precision_recall_fscore_support``. A span (chunk) is
a maximal run ``B-X I-X ... I-X``; as in conlleval, an ``I-X`` that does not continue a chunk
of type ``X`` starts a new one. A predicted span counts as correct only when its type, start
and end all equal those of a reference span. Then, over the whole corpus,

    precision = correct / predicted spans,  recall = correct / reference spans,
    f1 = 2 * precision * recall / (precision + recall),

and the same per entity type. A ratio with a zero denominator is 0 (seqeval's value; we pass
``zero_division=0`` only to silence its warning).

Tags are ``O`` or ``B-<type>`` / ``I-<type>``, the names ``cn_address`` uses (``B-province``,
``I-city``, ...). Anything else is refused: seqeval would read a bare ``city`` as the prefix
``c`` of type ``ity``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_TAG = re.compile(r"O|[BI]-.+")


def _check(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> None:
    if isinstance(hyps, str) or isinstance(refs, str):
        raise ValueError("hyps and refs must be lists of tag sequences, not strings")
    if len(hyps) != len(refs):
        raise ValueError(f"hyps and refs differ in length: {len(hyps)} != {len(refs)} sequences")
    if not refs:
        raise ValueError("cannot score an empty corpus")
    for i, (hyp, ref) in enumerate(zip(hyps, refs)):
        if isinstance(hyp, str) or isinstance(ref, str):
            raise ValueError(f"sequence {i} is a string; give a list of tags")
        if len(hyp) != len(ref):
            raise ValueError(
                f"sequence {i}: {len(hyp)} predicted tags for {len(ref)} reference tags"
            )
        for tag in (*hyp, *ref):
            if not isinstance(tag, str) or not _TAG.fullmatch(tag):
                raise ValueError(f"sequence {i}: bad tag {tag!r}; valid: O, B-<type>, I-<type>")


def span_f1(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Span precision, recall and F1 of predicted BIO tags ``hyps`` against ``refs``.

    ``hyps[i]`` and ``refs[i]`` are the tags of sequence ``i`` (equal lengths). Returns::

        {"precision": p, "recall": r, "f1": f, "support": n,     # micro over all spans
         "per_type": {type: {"precision", "recall", "f1", "support"}, ...}}

    ``support`` counts reference spans. ``per_type`` has every type that occurs in ``refs`` or
    ``hyps``, sorted by name (a type only predicted has support 0 and recall 0). Values are
    Python floats (ints for support), equal to seqeval's default scores. A corpus without any
    span scores 0 everywhere. Raises ``ValueError`` for an empty corpus, mismatched lengths or
    a tag that is not ``O``, ``B-<type>`` or ``I-<type>``.
    """
    # seqeval is imported here, not at the top: it loads scikit-learn (about 1.4 s), which
    # every ``import attnlab.metrics`` would otherwise pay.
    from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

    _check(hyps, refs)
    hyps = [list(h) for h in hyps]
    refs = [list(r) for r in refs]
    types = sorted({t for seqs in (refs, hyps) for t, _, _ in get_entities(seqs)})
    p, r, f, n = precision_recall_fscore_support(refs, hyps, average="micro", zero_division=0)
    result: dict[str, Any] = {
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "support": int(n),
        "per_type": {},
    }
    if types:
        ps, rs, fs, ns = precision_recall_fscore_support(refs, hyps, average=None, zero_division=0)
        result["per_type"] = {
            t: {"precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
            for t, a, b, c, d in zip(types, ps, rs, fs, ns)
        }
    return result


def bio_segments(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Cut a BIO sequence into ``(type, start, end)`` pieces that cover every position once.

    The entity spans are seqeval's (the chunks ``span_f1`` scores); every maximal run of
    positions outside them becomes an ``("O", start, end)`` piece. ``end`` is exclusive, and
    the pieces are in order, so ``text[start:end]`` over the pieces rebuilds the text.
    """
    from seqeval.metrics.sequence_labeling import get_entities

    _check([tags], [tags])
    pieces: list[tuple[str, int, int]] = []
    at = 0
    for kind, start, last in get_entities(list(tags)):
        if start > at:
            pieces.append(("O", at, start))
        pieces.append((kind, start, last + 1))
        at = last + 1
    if at < len(tags):
        pieces.append(("O", at, len(tags)))
    return pieces

"""Edit-distance metrics over token lists, with several references per item (G2P evaluation).

Definitions, as used in grapheme-to-phoneme work (Bisani & Ney 2008, "Joint-sequence models for
grapheme-to-phoneme conversion"; Yao & Zweig 2015; the CMUdict G2P benchmarks), where an *item*
is one word and its tokens are phonemes:

- ``edit_distance(a, b)``: Levenshtein distance, the fewest insertions, deletions and
  substitutions (each cost 1) that turn ``a`` into ``b``.
- ``per`` (phoneme error rate): for each item pick the *closest* reference
  ``r_i* = argmin_r edit_distance(h_i, r)`` (ties go to the earliest listed reference), then

      PER = sum_i edit_distance(h_i, r_i*) / sum_i len(r_i*)

  a corpus-level token edit rate (it can exceed 1 when hypotheses are much too long).
- ``wer`` (word error rate): the fraction of items whose hypothesis equals *none* of its
  references, i.e. ``1 - exact_match``. In G2P a "word" is one item, so a word counts as wrong
  when any of its phonemes is wrong. (This is not the ASR word error rate; for a token-level
  edit rate of any kind of token use ``per``, which is the same formula.)
- ``exact_match``: the fraction of items whose hypothesis equals one of its references.

All rates are fractions, not percentages. ``refs[i]`` is one reference (a token list) or a
list of references (a list of token lists, at least one). Tokens may be any hashable values
(phoneme strings, token ids); an item given as a bare ``str`` is refused, to avoid silently
treating a string as a list of characters.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

Tokens = Sequence[Hashable]


def edit_distance(a: Tokens, b: Tokens) -> int:
    """Levenshtein distance between two token sequences (unit costs)."""
    a, b = list(a), list(b)
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _tokens(x: Any, what: str) -> tuple:
    if isinstance(x, str):
        raise ValueError(f"{what} must be a token list, got the string {x!r}")
    if isinstance(x, np.ndarray):
        x = x.tolist()
    return tuple(x)


def _is_token_list(x: Any) -> bool:
    return isinstance(x, (list, tuple, np.ndarray)) and not isinstance(x, str)


def reference_sets(refs: Sequence[Any]) -> list[list[tuple]]:
    """Normalize ``refs`` to a list (per item) of reference token tuples.

    An item whose elements are all token lists is a set of references; otherwise the item is a
    single reference. (So ``[]`` is one empty reference and ``[[]]`` a set holding one.)
    """
    out = []
    for i, r in enumerate(refs):
        if isinstance(r, str):
            raise ValueError(f"refs[{i}] must be a token list or a list of them, got {r!r}")
        r = list(r.tolist() if isinstance(r, np.ndarray) else r)
        if r and all(_is_token_list(t) for t in r):
            out.append([_tokens(t, f"refs[{i}]") for t in r])
        else:
            out.append([_tokens(r, f"refs[{i}]")])
    return out


def _pairs(hyps: Sequence[Any], refs: Sequence[Any]) -> list[tuple[tuple, list[tuple]]]:
    if len(hyps) != len(refs):
        raise ValueError(f"hyps and refs differ in length: {len(hyps)} != {len(refs)}")
    if len(hyps) == 0:
        raise ValueError("cannot score an empty corpus")
    sets = reference_sets(refs)
    return [(_tokens(h, f"hyps[{i}]"), rs) for i, (h, rs) in enumerate(zip(hyps, sets))]


def closest_reference(hyp: Tokens, refs: Sequence[Tokens]) -> tuple[int, int]:
    """``(index, distance)`` of the reference closest to ``hyp``; ties go to the first one."""
    dists = [edit_distance(hyp, r) for r in refs]
    k = int(np.argmin(dists))
    return k, dists[k]


def per(hyps: Sequence[Tokens], refs: Sequence[Any]) -> float:
    """Phoneme (token) error rate: total edits to the closest references / their total length."""
    edits = length = 0
    for h, rs in _pairs(hyps, refs):
        k, d = closest_reference(h, rs)
        edits += d
        length += len(rs[k])
    if length == 0:
        raise ValueError("per: the chosen references are all empty, the rate is undefined")
    return edits / length


def exact_match(hyps: Sequence[Tokens], refs: Sequence[Any]) -> float:
    """Fraction of items whose hypothesis equals one of their references."""
    pairs = _pairs(hyps, refs)
    return sum(h in rs for h, rs in pairs) / len(pairs)


def wer(hyps: Sequence[Tokens], refs: Sequence[Any]) -> float:
    """G2P word error rate: fraction of items whose hypothesis matches none of the references."""
    return 1.0 - exact_match(hyps, refs)

"""Score one decoding system on one split: the quality columns of its ``results.json`` row.

WER, PER and exact match are computed on token lists, BLEU and chrF on detokenized strings
(sacreBLEU; for G2P, phoneme-level). An example may have several references (every
pronunciation of a word): the closest counts for WER, PER and length, sacreBLEU sees all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnlab.analysis.stats import bleu_ci, bootstrap_ci, rate, rate_stats
from attnlab.metrics import corpus_bleu, corpus_chrf, exact_match, per, wer


def length_errors(lengths: Sequence[int], refs: Sequence[Sequence[Sequence[str]]]) -> list[int]:
    """Predicted minus true length, per example, against the closest reference (+1 for EOS)."""
    errors = []
    for n, options in zip(lengths, refs, strict=True):
        diffs = [int(n) - (len(r) + 1) for r in options]
        errors.append(min(diffs, key=abs))
    return errors


def score(
    hyps: Sequence[Sequence[str]],
    refs: Sequence[Sequence[Sequence[str]]],
    *,
    detokenize,
    lengths: Sequence[int] | None = None,
    bootstrap_samples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of token-list hypotheses against lists of reference token lists; for a NAT's
    chosen ``lengths`` (counting the EOS), ``length_accuracy`` (the length of some reference)
    and, against the closest reference, ``length_mae`` and ``length_errors``."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    hyp_text = [detokenize(h) for h in hyps]
    ref_text = [[detokenize(r) for r in options] for options in refs]
    row: dict[str, Any] = {
        "examples": len(hyps),
        "wer": wer(hyps, refs),
        "per": per(hyps, refs),
        "exact_match": exact_match(hyps, refs),
        "bleu": corpus_bleu(hyp_text, ref_text),
        "chrf": corpus_chrf(hyp_text, ref_text),
    }
    if bootstrap_samples > 0:
        wrong = wrong_words(hyps, refs)
        row["wer_ci95"] = bootstrap_ci(
            rate_stats(wrong, np.ones(len(wrong))), rate, num_samples=bootstrap_samples, seed=seed
        )
        row["bleu_ci95"] = bleu_ci(hyp_text, ref_text, num_samples=bootstrap_samples, seed=seed)
    if lengths is not None:
        errors = np.asarray(length_errors(lengths, refs))
        row["length_accuracy"] = float(np.mean(errors == 0))
        row["length_mae"] = float(np.mean(np.abs(errors)))
        row["length_errors"] = errors.tolist()
    return row


def error_kinds(
    hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]]
) -> dict[str, float]:
    """Fractions of all examples: ``wrong_length`` (wrong, with a length no reference has),
    ``wrong_same_length`` (wrong, with the length of some reference), ``extra_repeats`` (more
    adjacent equal tokens than every reference has: the classic failure of conditionally
    independent NAT outputs); ``wer_one_ref`` and ``wer_several_refs`` over the examples with
    one and with several references (absent when there are none)."""
    adjacent = lambda tokens: sum(a == b for a, b in zip(tokens, tokens[1:]))  # equal neighbours
    if len(hyps) != len(refs) or not hyps:
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    pairs = [(list(h), [list(r) for r in options]) for h, options in zip(hyps, refs, strict=True)]
    wrong = np.array([h not in options for h, options in pairs])
    length_known = np.array([len(h) in {len(r) for r in options} for h, options in pairs])
    repeats = [adjacent(h) > max(map(adjacent, options)) for h, options in pairs]
    several = np.array([len(options) > 1 for options in refs])
    row = {
        "wrong_length": float(np.mean(wrong & ~length_known)),
        "wrong_same_length": float(np.mean(wrong & length_known)),
        "extra_repeats": float(np.mean(repeats)),
    }
    for key, group in (("wer_one_ref", ~several), ("wer_several_refs", several)):
        if group.any():
            row[key] = float(np.mean(wrong[group]))
    return row


def wrong_words(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]]):
    """1.0 for each example whose hypothesis matches none of its references, else 0.0: WER is
    their mean (1 - exact match, example by example)."""
    return [1.0 - exact_match([h], [options]) for h, options in zip(hyps, refs, strict=True)]


def paired_wer_difference(
    hyps: Sequence[Sequence[str]],
    base: Sequence[Sequence[str]],
    refs: Sequence[Sequence[Sequence[str]]],
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """WER of ``hyps`` minus WER of ``base`` on the same examples, and its 95% paired
    bootstrap interval: each resample draws examples and takes both systems' errors on them,
    so what the two share (the hard words) cancels, and the interval is narrower than the
    two WER intervals side by side."""
    diff = np.subtract(wrong_words(hyps, refs), wrong_words(base, refs))
    ones = np.ones(len(diff))
    ci = bootstrap_ci(rate_stats(diff, ones), rate, num_samples=bootstrap_samples, seed=seed)
    return float(diff.mean()), ci

"""attnlab.metrics: BLEU/chrF (sacrebleu), G2P WER/PER, accuracies for tagging and NAT lengths."""

from attnlab.metrics.accuracy import length_accuracy, length_mae, token_accuracy
from attnlab.metrics.bleu import corpus_bleu, corpus_chrf
from attnlab.metrics.edit import edit_distance, exact_match, per, wer

__all__ = [
    "corpus_bleu",
    "corpus_chrf",
    "edit_distance",
    "exact_match",
    "length_accuracy",
    "length_mae",
    "per",
    "token_accuracy",
    "wer",
]

"""attnlab.metrics: BLEU/chrF (sacrebleu), span F1 (seqeval), G2P WER/PER, tagging and NAT
length accuracies."""

from attnlab.metrics.accuracy import length_accuracy, length_mae, token_accuracy
from attnlab.metrics.bleu import corpus_bleu, corpus_chrf
from attnlab.metrics.edit import edit_distance, exact_match, per, wer
from attnlab.metrics.spans import bio_segments, span_f1

__all__ = [
    "bio_segments",
    "corpus_bleu",
    "corpus_chrf",
    "edit_distance",
    "exact_match",
    "length_accuracy",
    "length_mae",
    "per",
    "span_f1",
    "token_accuracy",
    "wer",
]

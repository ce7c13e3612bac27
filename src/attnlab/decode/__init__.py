"""attnlab.decode: AT greedy and beam search (model-agnostic) and the Seq2Seq glue.

The NAT strategies belong to their recipes: ``attnlab.nat.decoding``.
"""

from attnlab.decode.at import at_decode, at_log_prob, at_search
from attnlab.decode.search import beam_search, greedy_search

__all__ = [
    "at_decode",
    "at_log_prob",
    "at_search",
    "beam_search",
    "greedy_search",
]

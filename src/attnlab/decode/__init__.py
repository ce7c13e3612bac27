"""attnlab.decode: AT greedy and beam search (model-agnostic), Seq2Seq glue, NAT strategies."""

from attnlab.decode.at import at_decode, at_log_prob, at_search
from attnlab.decode.nat import NATOutput, nat_decode, parse_strategy
from attnlab.decode.search import beam_search, greedy_search

__all__ = [
    "NATOutput",
    "at_decode",
    "at_log_prob",
    "at_search",
    "beam_search",
    "greedy_search",
    "nat_decode",
    "parse_strategy",
]

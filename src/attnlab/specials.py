"""Special token ids shared by every vocabulary, model, loss and decoder: the one definition.

Ids 0..4 are reserved in every vocabulary, in this order; real tokens start at ``NUM_SPECIALS``.
Padding is always on the right.
"""

PAD = 0
BOS = 1
EOS = 2
UNK = 3
MASK = 4

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
MASK_TOKEN = "<mask>"

SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, MASK_TOKEN)
NUM_SPECIALS = len(SPECIAL_TOKENS)


def strip(tokens, eos_id: int = EOS, pad_id: int = PAD) -> list[int]:
    """Output ids up to the first EOS, without PAD: a decoded sequence as its tokens."""
    ids = [int(t) for t in tokens]
    ids = ids[: ids.index(eos_id)] if eos_id in ids else ids
    return [t for t in ids if t != pad_id]

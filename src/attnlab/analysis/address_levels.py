"""Province, city and district names of an address: the tagger's pieces and cpca's answer,
compared as full names (``adcodes.csv``). An address is right for a system when every level
written in it is right; levels it leaves out are not scored (cpca fills them in, the tagger
cannot).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

from attnlab.data.builders.cn_address import LEVELS, admin_areas, short_form

Names = dict[str, str]


@functools.lru_cache(maxsize=1)
def _index() -> tuple[list[tuple[str, str | None, str]], list[dict[str, set[int]]]]:
    """The areas, and per level a map from each written form of a name to the areas using it."""
    areas = admin_areas()
    forms: list[dict[str, set[int]]] = [{} for _ in LEVELS]
    for i, area in enumerate(areas):
        for level, name in enumerate(area):
            if name:
                for form in {name, short_form(name)}:
                    forms[level].setdefault(form, set()).add(i)
    return areas, forms


def normalize(pieces: Mapping[str, str]) -> Names:
    """Full names for the written ``pieces`` ``{level: text}``; ``""`` for a level not written.

    A piece is read as a name of its level or its abbreviation (``short_form``: ``南山 ->
    南山区``). Among the areas whose names fit every piece, the first in sorted order names
    each level (the province or city written beside an ambiguous ``朝阳`` decides). A piece
    that fits no area is kept as written, so it is wrong."""
    areas, forms = _index()
    present = [(k, lvl) for k, lvl in enumerate(LEVELS) if pieces.get(lvl)]
    fits = [forms[k].get(pieces[lvl], set()) for k, lvl in present]
    consistent = set.intersection(*fits) if fits and all(fits) else set()
    out = {lvl: "" for lvl in LEVELS}
    for (k, lvl), fit in zip(present, fits, strict=True):
        pool = consistent or fit
        names = sorted({areas[i][k] for i in pool if areas[i][k]})
        out[lvl] = names[0] if names else pieces[lvl]
    return out


def tagger_pieces(text: str, tags: Sequence[str]) -> dict[str, str]:
    """The text of the first span of each level in a BIO tagging (seqeval's spans)."""
    from seqeval.metrics.sequence_labeling import get_entities

    pieces: dict[str, str] = {}
    for kind, start, last in get_entities(list(tags)):
        if kind in LEVELS and kind not in pieces:
            pieces[kind] = text[start : last + 1]
    return pieces


def cpca_names(texts: Sequence[str]) -> list[Names]:
    """cpca's province, city and district full names for each text (``""`` where it has none)."""
    import cpca

    frame = cpca.transform(list(texts))
    columns = dict(zip(LEVELS, ("省", "市", "区"), strict=True))

    def clean(value) -> str:
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value

    return [
        {lvl: clean(frame[col].iloc[i]) for lvl, col in columns.items()} for i in range(len(frame))
    ]


def level_outcomes(system: Sequence[Names], refs: Sequence[Names]) -> list[dict[str, int]]:
    """Per address: for each level, ``<level>_written`` and ``<level>_right`` (0/1), and
    ``all_right`` (every written level right)."""
    rows = []
    for got, ref in zip(system, refs, strict=True):
        row = {}
        for lvl in LEVELS:
            written = bool(ref[lvl])
            row[f"{lvl}_written"] = int(written)
            row[f"{lvl}_right"] = int(written and got.get(lvl, "") == ref[lvl])
        row["all_right"] = int(all(row[f"{lvl}_right"] for lvl in LEVELS if ref[lvl]))
        rows.append(row)
    return rows

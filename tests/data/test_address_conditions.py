"""cn_address 2.0.0: the held-out-district split and the noise split do what they say."""

import numpy as np
from data_testing import tiny

from attnlab.data.builders.cn_address import (
    HELDOUT_SPLIT,
    LEVELS,
    NOISE_SPLIT,
    SEPARATORS,
    TAGS,
    add_noise,
    admin_areas,
    bio_tags,
    compose_area_address,
    heldout_district,
    typo_alphabet,
)
from attnlab.data.builders.common import bucket
from attnlab.data.datasets import prepare
from attnlab.data.sources import iter_records, text


def _records(prepared, split):
    return [{k: text(v) if k != "tags" else list(v) for k, v in r.items()} for r in
            iter_records(prepared.source(split))]  # fmt: skip


def _district_spans(record) -> set[str]:
    tags = [TAGS[t] for t in record["tags"]] + ["O"]
    spans, start = set(), None
    for i, tag in enumerate(tags):
        if start is not None and tag != "I-district":
            spans.add(record["text"][start:i])
            start = None
        if tag == "B-district":
            start = i
    return spans


def test_no_address_of_a_held_out_district_is_trained_on(data_dir):
    prepared = prepare(tiny(data_dir, "cn_address", max_source_examples=1500))
    held = _records(prepared, HELDOUT_SPLIT)
    assert len(held) > 30
    names = {r["district"] for r in held if r["district"]}
    assert names and all(heldout_district(n) for n in names)
    for split in ("train", "validation", "test", NOISE_SPLIT):
        for r in _records(prepared, split):
            assert not heldout_district(r["district"] or "-"), (split, r["text"])
            assert not _district_spans(r) & names, (split, r["text"])
    # the rule is a stable 5% of district names (sha256, not Python's hash)
    every = {d for _, _, d in admin_areas()}
    share = sum(heldout_district(d) for d in every) / len(every)
    assert 0.03 < share < 0.07
    assert all(heldout_district(d) == (bucket(d, "cn_address_heldout") < 500) for d in every)


def test_records_name_exactly_the_levels_the_address_writes(data_dir):
    prepared = prepare(tiny(data_dir, "cn_address", max_source_examples=1500))
    rows = _records(prepared, "test")
    for r in rows:
        kinds = {TAGS[t][2:] for t in r["tags"] if TAGS[t] != "O"}
        for level in LEVELS:
            assert bool(r[level]) == (level in kinds), (r["text"], level)
    assert any(r["province"] and r["province"][:2] in r["text"] for r in rows)


def test_the_noise_split_is_the_test_split_with_noise(data_dir):
    prepared = prepare(tiny(data_dir, "cn_address", max_source_examples=1500))
    clean, noisy = _records(prepared, "test"), _records(prepared, NOISE_SPLIT)
    assert len(clean) == len(noisy)
    bare = lambda t: "".join(ch for ch in t if ch not in SEPARATORS)  # noqa: E731
    unmatched = [(bare(r["text"]), [r[k] for k in LEVELS]) for r in clean]
    for n in noisy:  # each noisy address: a clean one, separators aside, with one typo
        assert len(n["tags"]) == len(n["text"])
        key, names = bare(n["text"]), [n[k] for k in LEVELS]
        match = [
            i
            for i, (text_, levels) in enumerate(unmatched)
            if levels == names
            and len(text_) == len(key)
            and sum(a != b for a, b in zip(text_, key, strict=True)) == 1
        ]
        assert match, n["text"]
        unmatched.pop(match[0])


def test_noise_changes_separators_and_makes_exactly_one_typo_in_an_entity():
    areas, alphabet = admin_areas(), typo_alphabet()
    seen_modes = set()
    for seed in range(200):
        rng = np.random.default_rng(seed)
        parts, _ = compose_area_address(rng, areas)
        noisy = add_noise(parts, np.random.default_rng(seed + 1000), alphabet)
        plain = [(p, e) for p, e in parts if not (e is None and p in SEPARATORS)]
        content = [(p, e) for p, e in noisy if not (e is None and p in SEPARATORS)]
        seps = [p for p, e in noisy if e is None and p in SEPARATORS]
        # separators: none at all, or exactly one between every two adjacent parts
        if seps:
            assert len(seps) == len(plain) - 1
            assert all((e is None and p in SEPARATORS) for p, e in noisy[1::2])
            seen_modes.add("extra")
        else:
            seen_modes.add("missing")
        # every part kept, with its entity; one character of one entity part replaced
        assert [e for _, e in content] == [e for _, e in plain]
        diffs = [
            (e, i)
            for (a, e), (b, _) in zip(plain, content, strict=True)
            for i in range(len(a))
            if a[i] != b[i]
        ]
        assert len(diffs) == 1 and diffs[0][0] is not None
        assert [len(a) for a, _ in plain] == [len(b) for b, _ in content]
        text, tags = bio_tags(noisy)
        assert len(text) == len(tags)
    assert seen_modes == {"missing", "extra"}

"""The address study's scoring: name normalization, cpca's answers, span counts vs seqeval."""

import numpy as np
import pytest

from attnlab.analysis.address import span_counts, tagging_metrics
from attnlab.analysis.address_levels import (
    cpca_names,
    level_outcomes,
    normalize,
    tagger_pieces,
)
from attnlab.data.builders.cn_address import ENTITIES, TAGS
from attnlab.metrics import span_f1


@pytest.mark.parametrize(
    "pieces, expected",
    [
        (  # abbreviations become the full names
            {"province": "广东", "city": "深圳", "district": "南山"},
            {"province": "广东省", "city": "深圳市", "district": "南山区"},
        ),
        (  # full names stay; an autonomous region's short name
            {"province": "广西", "city": "南宁市", "district": "上林县"},
            {"province": "广西壮族自治区", "city": "南宁市", "district": "上林县"},
        ),
        # 云龙 is 云龙区 in Xuzhou (Jiangsu) and 云龙县 in Dali (Yunnan): the parents decide
        (
            {"province": "云南", "district": "云龙"},
            {"province": "云南省", "city": "", "district": "云龙县"},
        ),
        (
            {"city": "徐州", "district": "云龙"},
            {"province": "", "city": "徐州市", "district": "云龙区"},
        ),
        # a piece that names no area is kept as written (so it is scored wrong)
        ({"district": "火星区"}, {"province": "", "city": "", "district": "火星区"}),
        ({}, {"province": "", "city": "", "district": ""}),
    ],
)
def test_normalize_gives_full_names(pieces, expected):
    assert normalize(pieces) == expected


def test_cpca_leaves_an_abbreviated_district_without_a_district():
    short, full = cpca_names(["广东深圳南山科技路128号", "广东省深圳市南山区科技路128号"])
    assert short == {"province": "广东省", "city": "深圳市", "district": ""}
    assert full == {"province": "广东省", "city": "深圳市", "district": "南山区"}


def test_only_the_levels_an_address_writes_are_scored():
    ref = {"province": "", "city": "深圳市", "district": "南山区"}
    inferred = {"province": "广东省", "city": "深圳市", "district": "南山区"}  # cpca fills in
    wrong_province = {"province": "湖南省", "city": "深圳市", "district": "南山区"}
    no_district = {"province": "广东省", "city": "深圳市", "district": ""}
    rows = level_outcomes([inferred, wrong_province, no_district], [ref] * 3)
    assert [r["all_right"] for r in rows] == [1, 1, 0]
    assert rows[0]["province_written"] == 0 and rows[0]["district_written"] == 1
    assert rows[2]["district_right"] == 0 and rows[2]["city_right"] == 1


def test_tagger_pieces_takes_the_first_span_of_each_level():
    text = "广东深圳南山科技路"
    tags = ["B-province", "I-province", "B-city", "I-city", "B-district", "I-district"]
    tags += ["B-street", "I-street", "I-street"]
    assert tagger_pieces(text, tags) == {"province": "广东", "city": "深圳", "district": "南山"}


def test_span_counts_reproduce_seqeval_overall_and_per_type():
    rng = np.random.default_rng(0)
    refs = [[TAGS[i] for i in rng.integers(0, len(TAGS), size=n)] for n in rng.integers(3, 15, 60)]
    hyps = [[TAGS[i] if rng.random() < 0.3 else r for i, r in zip(rng.integers(0, 13, len(x)), x)]
            for x in refs]  # fmt: skip
    expected = span_f1(hyps, refs)
    total = sum(span_counts(h, r) for h, r in zip(hyps, refs))
    for k, kind in enumerate(("overall", *ENTITIES)):
        want = expected if kind == "overall" else expected["per_type"].get(kind)
        if want is None:
            continue
        correct, predicted, reference = total[3 * k : 3 * k + 3]
        assert reference == want["support"]
        assert np.isclose(correct / predicted if predicted else 0.0, want["precision"])
        assert np.isclose(correct / reference if reference else 0.0, want["recall"])
    metrics = tagging_metrics(hyps, refs)
    assert np.isclose(metrics["span"]["f1"], expected["f1"])
    low, high = metrics["span"]["f1_ci"]
    assert low <= expected["f1"] <= high
    right = sum(a == b for h, r in zip(hyps, refs) for a, b in zip(h, r))
    assert np.isclose(metrics["token_accuracy"], right / sum(map(len, refs)))
    assert metrics["exact_match"] == np.mean([h == r for h, r in zip(hyps, refs)])

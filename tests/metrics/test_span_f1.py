"""Span F1 is seqeval's default (conlleval) scoring, and its counts are the ones done by hand."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from attnlab.data.builders.cn_address import ENTITIES, TAGS, admin_areas, bio_tags, compose_address
from attnlab.metrics import bio_segments, span_f1


def test_hand_counted_example():
    # Reference spans: province[0:2] city[2:4] | city[0:1] district[2:4]   -> 4 spans
    # Predicted spans: province[0:2] city[2:3] city[3:4] (I after B of another chunk: conlleval
    #                  starts a new chunk at a lone I-) | city[0:1] district[1:4]  -> 5 spans
    # Correct: province[0:2], city[0:1]                                     -> 2
    refs = [
        ["B-province", "I-province", "B-city", "I-city", "O"],
        ["B-city", "O", "B-district", "I-district"],
    ]
    hyps = [
        ["B-province", "I-province", "B-city", "B-city", "O"],
        ["B-city", "I-district", "I-district", "I-district"],
    ]
    got = span_f1(hyps, refs)
    p, r = 2 / 5, 2 / 4
    assert got["precision"] == pytest.approx(p)
    assert got["recall"] == pytest.approx(r)
    assert got["f1"] == pytest.approx(2 * p * r / (p + r))
    assert got["support"] == 4
    # city: 3 predicted, 2 reference, 1 correct; district: 1 / 1 / 0; province: 1 / 1 / 1.
    city = got["per_type"]["city"]
    assert (city["precision"], city["recall"], city["support"]) == pytest.approx((1 / 3, 1 / 2, 2))
    assert city["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert got["per_type"]["district"] == {"precision": 0, "recall": 0, "f1": 0, "support": 1}
    assert got["per_type"]["province"] == {"precision": 1, "recall": 1, "f1": 1, "support": 1}
    assert list(got["per_type"]) == ["city", "district", "province"]


def test_a_type_only_predicted_has_zero_support():
    got = span_f1([["B-street", "O"]], [["O", "B-city"]])
    assert got["per_type"]["street"] == {"precision": 0, "recall": 0, "f1": 0, "support": 0}
    assert got["per_type"]["city"]["support"] == 1
    assert (got["precision"], got["recall"], got["f1"]) == (0, 0, 0)


TYPES = ("province", "city", "other")
tag = st.sampled_from(["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"])


@st.composite
def tagged_corpus(draw):
    lengths = draw(st.lists(st.integers(0, 9), min_size=1, max_size=6))
    refs = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    # Predictions: the reference with some tags replaced, so that some spans match.
    hyps = [[t if draw(st.booleans()) else draw(tag) for t in ref] for ref in refs]
    return hyps, refs


@settings(max_examples=60)
@given(tagged_corpus())
def test_equals_seqeval_on_random_sequences(data):
    hyps, refs = data
    got = span_f1(hyps, refs)
    kw = dict(zero_division=0)
    assert got["precision"] == precision_score(refs, hyps, **kw)
    assert got["recall"] == recall_score(refs, hyps, **kw)
    assert got["f1"] == f1_score(refs, hyps, **kw)
    if not got["per_type"]:
        return
    report = classification_report(refs, hyps, output_dict=True, **kw)
    for name, scores in got["per_type"].items():
        ref = report[name]
        assert scores == {
            "precision": ref["precision"],
            "recall": ref["recall"],
            "f1": ref["f1-score"],
            "support": ref["support"],
        }
    assert set(got["per_type"]) == set(report) - {"micro avg", "macro avg", "weighted avg"}


def test_no_entities_scores_zero():
    got = span_f1([["O", "O"], []], [["O", "O"], []])
    assert got == {"precision": 0, "recall": 0, "f1": 0, "support": 0, "per_type": {}}


@pytest.mark.parametrize(
    "hyps, refs, match",
    [
        ([], [], "empty corpus"),
        ([["O"]], [["O"], ["O"]], "differ in length: 1 != 2"),
        ([["O", "O"]], [["O"]], "sequence 0: 2 predicted tags for 1 reference tags"),
        ([["city"]], [["O"]], "bad tag 'city'; valid: O, B-<type>, I-<type>"),
        ([["B-"]], [["O"]], "bad tag 'B-'"),
        (["O"], ["O"], "is a string"),
    ],
)
def test_bad_input_is_one_clear_value_error(hyps, refs, match):
    with pytest.raises(ValueError, match=match):
        span_f1(hyps, refs)


def test_cn_address_tags_parse_into_their_entities():
    """The dataset's own tag names fit seqeval's BIO parsing: each composed part is one span."""
    rng = np.random.default_rng(0)
    areas = admin_areas()
    names = [tuple(TAGS[i] for i in bio_tags(compose_address(rng, areas))[1]) for _ in range(50)]
    assert all(t == "O" or t.split("-", 1)[1] in ENTITIES for tags in names for t in tags)
    rng = np.random.default_rng(0)
    for tags in names:
        parts = compose_address(rng, areas)
        expected = [(e, len(piece)) for piece, e in parts if e is not None]
        spans = [(k, end - start) for k, start, end in bio_segments(tags) if k != "O"]
        assert spans == expected
    got = span_f1([list(t) for t in names], [list(t) for t in names])
    assert got["f1"] == 1.0 and set(got["per_type"]) <= set(ENTITIES)


@given(st.lists(tag, max_size=12))
def test_segments_partition_the_positions(tags):
    pieces = bio_segments(tags)
    covered = [i for _, start, end in pieces for i in range(start, end)]
    assert covered == list(range(len(tags)))
    assert all(end > start for _, start, end in pieces)
    for kind, start, end in pieces:
        if kind == "O":
            assert all(t == "O" for t in tags[start:end])
        else:  # an entity piece is one B-/I- run of its type
            assert all(t.endswith("-" + kind) for t in tags[start:end])
            assert all(t.startswith("I-") for t in tags[start + 1 : end])
    # and the segments' entities are exactly what span_f1 counts
    assert span_f1([tags], [tags])["support"] == sum(k != "O" for k, _, _ in pieces)


def test_segments_by_hand():
    tags = ["O", "B-city", "I-city", "I-district", "O", "O", "I-city"]
    assert bio_segments(tags) == [
        ("O", 0, 1),
        ("city", 1, 3),
        ("district", 3, 4),
        ("O", 4, 6),
        ("city", 6, 7),
    ]

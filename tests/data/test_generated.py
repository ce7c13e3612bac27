"""synthetic_seq2seq and cn_address: correct targets and tags, disjoint splits, real areas."""

import csv
import re
from importlib import resources

import pytest
from data_testing import tiny

from attnlab.data.builders.cn_address import TAGS
from attnlab.data.datasets import prepare
from attnlab.data.sources import iter_records, text

SPLITS = ("train", "validation", "test")


def all_records(prepared):
    return {split: list(iter_records(prepared.source(split))) for split in SPLITS}


@pytest.mark.parametrize(
    "task, expected",
    [("copy", lambda s: s), ("reverse", lambda s: s[::-1]), ("sort", lambda s: sorted(s, key=int))],
)
def test_synthetic_targets_are_the_task_applied_to_the_source(data_dir, task, expected):
    cfg = tiny(data_dir, "synthetic_seq2seq", synthetic_task=task, synthetic_vocab_size=12)
    cfg.update(synthetic_min_length=2, synthetic_max_length=9)
    prepared = prepare(cfg)
    recs = all_records(prepared)
    sources = {split: [text(r["inputs"]) for r in rs] for split, rs in recs.items()}
    assert not set(sources["train"]) & (set(sources["validation"]) | set(sources["test"]))
    for r in (r for rs in recs.values() for r in rs):
        src, tgt = text(r["inputs"]).split(), text(r["targets"]).split()
        assert 2 <= len(src) <= 9 and all(0 <= int(s) < 12 for s in src)
        assert tgt == expected(src)
    assert prepared.info.max_len == 9 and prepared.info.max_target_len == 10  # + EOS


def test_synthetic_generation_is_fixed_by_the_seed(data_dir, tmp_path):
    first = all_records(prepare(tiny(data_dir, "synthetic_seq2seq")))
    second = all_records(prepare(tiny(str(tmp_path), "synthetic_seq2seq")))
    assert first == second


def _areas():
    rows = list(
        csv.DictReader(
            resources.files("cpca")
            .joinpath("resources", "adcodes.csv")
            .read_text("utf-8")
            .splitlines()
        )
    )
    return {r["adcode"]: r["name"] for r in rows}


def _forms(name: str) -> set[str]:
    """The full name and any abbreviation a reader accepts: a known suffix removed."""
    forms = {name}
    for suffix in (
        "省",
        "市",
        "区",
        "县",
        "壮族自治区",
        "回族自治区",
        "维吾尔自治区",
        "自治区",
        "特别行政区",
    ):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            forms.add(name[: -len(suffix)])
    return forms


def _spans(address: str, tags: list[int]) -> list[tuple[str, str]]:
    """(entity, text) spans read back from BIO tags; an I- tag must continue its entity."""
    spans = []
    for char, tag in zip(address, (TAGS[t] for t in tags)):
        if tag.startswith("B-"):
            spans.append((tag[2:], char))
        elif tag.startswith("I-"):
            assert spans and spans[-1][0] == tag[2:], (address, tags)
            spans[-1] = (spans[-1][0], spans[-1][1] + char)
    return spans


def test_address_tags_mark_real_areas_in_a_consistent_hierarchy(data_dir):
    prepared = prepare(tiny(data_dir, "cn_address"))
    assert prepared.info.task == "tagging" and prepared.info.num_classes == 13
    codes = _areas()
    level = {"province": {}, "city": {}, "district": {}}
    for code, name in codes.items():
        key = "province" if code[2:] == "0" * 10 else "city" if code[4:] == "0" * 8 else "district"
        for form in _forms(name):
            level[key].setdefault(form, set()).add(code)
    recs = all_records(prepared)
    texts = {split: {text(r["text"]) for r in rs} for split, rs in recs.items()}
    assert not texts["train"] & (texts["validation"] | texts["test"])
    kinds = set()
    for r in (r for rs in recs.values() for r in rs):
        address, tags = text(r["text"]), [int(t) for t in r["tags"]]
        assert len(tags) == len(address)
        spans = _spans(address, tags)
        kinds |= {e for e, _ in spans}
        places = {e: s for e, s in spans if e in level}
        for entity, span in places.items():
            assert span in level[entity], (entity, span, address)
        if "province" in places and "district" in places:  # the district lies in the province
            provinces = {c[:2] for c in level["province"][places["province"]]}
            assert any(c[:2] in provinces for c in level["district"][places["district"]]), address
        for entity, span in spans:
            if entity == "number":
                assert re.fullmatch(r"\d+号(之一)?|[一二三四五六七八九十]+号", span), span
    assert kinds == {"province", "city", "district", "street", "number", "other"}

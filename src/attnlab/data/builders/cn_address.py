"""``cn_address``: Chinese address segmentation as per-character BIO tagging.

Real administrative areas come from ``cpca``'s ``resources/adcodes.csv`` (34 provinces, about
340 prefecture-level cities and 3100 county-level districts, each with its 12-digit code; the
first 2 / 4 / 6 digits link a district to its city and province). An address is composed from
one district and its parents, in the order people write them:

``[中国] province city district [township] street [number] [other]``

- Missing levels: the province, the city or the district is left out at random; a
  municipality (北京, 上海, 天津, 重庆) and a province-level county have no city.
- Abbreviations: ``广东省 -> 广东``, ``广西壮族自治区 -> 广西``, ``深圳市 -> 深圳``,
  ``南山区 -> 南山`` (only when at least two characters remain).
- Street: a township (``XX镇``, ``XX街道``) and/or a road (``XX路``, ``XX东路``, ``XX大道``).
- Number: ``128号``, sometimes in Chinese numerals (``十八号``) or with ``之一``.
- Other: building, unit and room, or an estate name (``阳光花园3栋502室``).
- Noise, tagged ``O``: a ``中国`` prefix, separators between parts (space, comma, dash).

Tags are ``O`` and ``B-``/``I-`` for each of province, city, district, street, number, other
(13 labels), one per character. Addresses are drawn from a fixed seed, duplicates removed,
and split by the stable hash of the text (90/2/8), so no test address appears in train.
Characters seen only in dev/test become UNK in the pipeline, as in real data. Each record also
holds the full names (as in adcodes.csv) of the province, city and district written in it
(``""`` for a level the address leaves out), the reference of the cpca comparison.

Two more test conditions (version 2.0.0), to tell learning from memorizing names:

- ``test_heldout``: every address drawn from a district whose full name is held out
  (``heldout_district(name)``: 5% of district names by a stable hash, all areas of that name).
  No address of a held-out district is in ``train``, ``validation`` or ``test``.
- ``test_noise``: each ``test`` address after ``add_noise`` (its docstring gives the model):
  separators all removed or added between every two parts, and one character typo.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
from importlib import resources

import numpy as np
import tensorflow_datasets as tfds

from attnlab.data.builders.common import SPLITS, AttnlabBuilder, LimitedConfig, bucket, split_of

ENTITIES = ("province", "city", "district", "street", "number", "other")
TAGS = ("O",) + tuple(f"{p}-{e}" for e in ENTITIES for p in ("B", "I"))
SEED = 1949
DEFAULT_NUM_EXAMPLES = 30000
LEVELS = ("province", "city", "district")
HELDOUT_SPLIT, NOISE_SPLIT = "test_heldout", "test_noise"
TEST_CONDITIONS = ("test", HELDOUT_SPLIT, NOISE_SPLIT)
HELDOUT_BUCKETS = 500  # of 10000: 5% of district names are held out

_PLACEHOLDERS = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"}
_REGION_SHORT = {
    "内蒙古自治区": "内蒙古",
    "广西壮族自治区": "广西",
    "西藏自治区": "西藏",
    "宁夏回族自治区": "宁夏",
    "新疆维吾尔自治区": "新疆",
    "香港特别行政区": "香港",
    "澳门特别行政区": "澳门",
}
_ROAD_WORDS = (
    "人民 解放 中山 建设 和平 新华 胜利 文化 长江 黄河 东风 朝阳 光明 青年 幸福 花园 学府 "
    "科技 滨江 环城 北京 南京 上海 延安 友谊 工业 迎宾 金沙 凤凰 红旗 振兴 育才 府前 "
    "新城 湖滨 江滨 体育 商业 健康 团结 民主 兴华 锦绣 银河 永安 广场 开发 高新"
).split()
_DIRECTIONS = ("", "", "", "东", "西", "南", "北", "中")
_ROAD_SUFFIX = ("路", "路", "路", "街", "大街", "大道", "巷")
_TOWN_SUFFIX = ("镇", "街道", "乡")
_ESTATES = (
    "阳光花园 碧桂园 万科城 金色家园 华润大厦 国贸中心 世纪花园 翠苑小区 锦江公寓 "
    "丽景湾 名都大厦 时代广场 幸福里 水岸新城 银泰中心 紫荆苑 天一家园 海悦华府"
).split()
SEPARATORS = (" ", ",", "，", "-", "、")
_CN_DIGITS = "零一二三四五六七八九"


def _resource_csv() -> str:
    return resources.files("cpca").joinpath("resources", "adcodes.csv").read_text("utf-8")


@functools.lru_cache(maxsize=1)
def admin_areas() -> list[tuple[str, str | None, str]]:
    """``(province, city or None, district)`` for every county-level area in adcodes.csv."""
    rows = list(csv.DictReader(_resource_csv().splitlines()))
    by_code = {r["adcode"]: r["name"] for r in rows}
    areas = []
    for code, name in by_code.items():
        if code[6:] != "000000" or code[4:6] == "00" or name in _PLACEHOLDERS:
            continue
        province = by_code[code[:2] + "0" * 10]
        city = by_code.get(code[:4] + "0" * 8)
        areas.append((province, None if city in _PLACEHOLDERS else city, name))
    return areas


def short_form(name: str) -> str:
    """The common abbreviation of an area name (``广东省 -> 广东``), or the name itself."""
    if name in _REGION_SHORT:
        return _REGION_SHORT[name]
    for suffix in ("省", "市", "区", "县"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def _chinese_number(n: int) -> str:
    """1..99 in Chinese numerals (十八, 二十, 九十九)."""
    tens, ones = divmod(n, 10)
    if tens == 0:
        return _CN_DIGITS[ones]
    head = "" if tens == 1 else _CN_DIGITS[tens]
    return head + "十" + ("" if ones == 0 else _CN_DIGITS[ones])


def compose_address(rng: np.random.Generator, areas) -> list[tuple[str, str | None]]:
    """One address as ``(text piece, entity or None)`` parts; ``None`` parts are tagged ``O``."""
    return compose_area_address(rng, areas)[0]


def compose_area_address(
    rng: np.random.Generator, areas
) -> tuple[list[tuple[str, str | None]], tuple[str, str | None, str]]:
    """``(parts, area)``: the parts of ``compose_address`` and the area they were drawn from."""
    area = areas[int(rng.integers(len(areas)))]
    province, city, district = area
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    parts: list[tuple[str, str | None]] = []
    if rng.random() < 0.08:
        parts.append(("中国", None))
    if rng.random() < 0.75:
        parts.append((province if rng.random() < 0.5 else short_form(province), "province"))
    if city is not None and rng.random() < 0.85:
        parts.append((city if rng.random() < 0.6 else short_form(city), "city"))
    if rng.random() < 0.9:
        parts.append((district if rng.random() < 0.8 else short_form(district), "district"))
    if rng.random() < 0.3:
        parts.append((pick(_ROAD_WORDS) + pick(_TOWN_SUFFIX), "street"))
    if rng.random() < 0.9:
        parts.append((pick(_ROAD_WORDS) + pick(_DIRECTIONS) + pick(_ROAD_SUFFIX), "street"))
    if rng.random() < 0.8:
        number = int(rng.integers(1, 1000))
        if rng.random() < 0.1:
            text = _chinese_number(number % 99 + 1) + "号"
        else:
            text = f"{number}号" + ("之一" if rng.random() < 0.05 else "")
        parts.append((text, "number"))
    if rng.random() < 0.6:
        other = pick(_ESTATES) if rng.random() < 0.5 else ""
        if not other or rng.random() < 0.7:
            building, floor, room = (int(rng.integers(1, n)) for n in (40, 33, 5))
            other += f"{building}栋{floor}{room:02d}室"
        parts.append((other, "other"))
    noisy: list[tuple[str, str | None]] = []
    for i, part in enumerate(parts):
        if i and rng.random() < 0.12:
            noisy.append((pick(SEPARATORS), None))
        noisy.append(part)
    return noisy, area


def written_names(parts: list[tuple[str, str | None]], area) -> dict[str, str]:
    """The full name of each level the address writes (abbreviated or not), ``""`` if absent."""
    entities = {entity for _, entity in parts}
    return {
        level: (name or "") if level in entities else ""
        for level, name in zip(LEVELS, area, strict=True)
    }


def heldout_district(name: str) -> bool:
    """Whether the district ``name`` (full name) is held out of training: a stable 5%."""
    return bucket(name, "cn_address_heldout") < HELDOUT_BUCKETS


def typo_alphabet() -> str:
    """The characters a typo draws from: those of the area names and the street vocabulary."""
    names = "".join(n for area in admin_areas() for n in area if n)
    return "".join(sorted(set(names + "".join(_ROAD_WORDS))))


def add_noise(
    parts: list[tuple[str, str | None]], rng: np.random.Generator, alphabet: str
) -> list[tuple[str, str | None]]:
    """The noise model of ``test_noise``: separators changed, then one character typo.

    1. Separators (the ``O`` pieces of ``SEPARATORS``): with probability 1/2 every one is
       removed (missing separators); otherwise one separator, drawn from ``SEPARATORS``,
       stands between every two adjacent parts (extra separators).
    2. A typo: one character of an entity piece, drawn uniformly over all entity characters,
       is replaced by a different character drawn uniformly from ``alphabet``. Its tag stays.
    Tags follow the pieces, so the reference tagging of the noisy text is exact.
    """
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    kept = [(p, e) for p, e in parts if not (e is None and p in SEPARATORS)]
    if rng.random() < 0.5:
        out = kept
    else:
        out = []
        for i, part in enumerate(kept):
            if i:
                out.append((pick(SEPARATORS), None))
            out.append(part)
    slots = [(i, j) for i, (p, e) in enumerate(out) if e is not None for j in range(len(p))]
    if slots:
        i, j = slots[int(rng.integers(len(slots)))]
        piece, entity = out[i]
        new = pick(alphabet)
        while new == piece[j]:
            new = pick(alphabet)
        out[i] = (piece[:j] + new + piece[j + 1 :], entity)
    return out


def _noise_rng(text: str) -> np.random.Generator:
    return np.random.default_rng(bucket(text, "cn_address_noise") * 7919 + SEED)


def bio_tags(parts: list[tuple[str, str | None]]) -> tuple[str, list[int]]:
    """The address text and one tag id per character."""
    index = {t: i for i, t in enumerate(TAGS)}
    text, tags = "", []
    for piece, entity in parts:
        text += piece
        if entity is None:
            tags += [index["O"]] * len(piece)
        else:
            tags += [index[f"B-{entity}"]] + [index[f"I-{entity}"]] * (len(piece) - 1)
    return text, tags


@dataclasses.dataclass(eq=False)
class AddressConfig(LimitedConfig):
    pass


class CnAddress(AttnlabBuilder):
    """Chinese address tagging; see the module docstring."""

    name = "cn_address"
    DESCRIPTION = __doc__
    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First version.",
        "2.0.0": "Held-out districts (test_heldout, excluded from train), test_noise, and the "
        "full names of the written levels.",
    }
    SPLITS = (*SPLITS, HELDOUT_SPLIT, NOISE_SPLIT)
    BUILDER_CONFIGS = [
        AddressConfig(name="default", description="30000 composed addresses, BIO tags")
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        features = {
            "text": tfds.features.Text(),
            "tags": tfds.features.Sequence(tfds.features.ClassLabel(names=TAGS)),
        }
        features.update({level: tfds.features.Text() for level in LEVELS})
        return self._make_info(tfds.features.FeaturesDict(features))

    def _examples(self):
        areas = admin_areas()
        alphabet = typo_alphabet()
        rng = np.random.default_rng(SEED)
        n = self.builder_config.max_source_examples or DEFAULT_NUM_EXAMPLES
        seen = set()
        for _ in range(n):
            parts, area = compose_area_address(rng, areas)
            text, tags = bio_tags(parts)
            if text in seen:
                continue
            seen.add(text)
            names = written_names(parts, area)
            split = HELDOUT_SPLIT if heldout_district(area[2]) else split_of(text, "cn_address")
            yield split, text, {"text": text, "tags": tags, **names}
            if split == "test":
                noisy, noisy_tags = bio_tags(add_noise(parts, _noise_rng(text), alphabet))
                yield NOISE_SPLIT, text, {"text": noisy, "tags": noisy_tags, **names}

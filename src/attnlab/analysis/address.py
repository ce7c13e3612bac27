"""The address-segmentation study: ``run(config, workdir)`` trains (or resumes) the tagger and
scores it and cpca on the ``cn_address`` test conditions (``TEST_CONDITIONS``: in-distribution,
held-out districts, noise). Span P/R/F1 overall and per type (seqeval), token accuracy, exact
match and, against cpca, the normalized province, city and district names (``address_levels``),
each with a 95% bootstrap interval over addresses. Writes ``results.json`` and the attention
map, then renders ``report.md`` from the results (``address_report.render``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from attnlab.analysis import address_levels as levels
from attnlab.analysis import address_report
from attnlab.analysis.plots import save
from attnlab.analysis.stats import bootstrap_ci, rate, rate_stats
from attnlab.data.builders.cn_address import (
    ENTITIES,
    HELDOUT_SPLIT,
    LEVELS,
    NOISE_SPLIT,
    SEPARATORS,
    TAGS,
    TEST_CONDITIONS,
)
from attnlab.data.datasets import prepare
from attnlab.data.sources import iter_records, text
from attnlab.inference import load
from attnlab.metrics import span_f1
from attnlab.train import train_and_evaluate

SPLITS = TEST_CONDITIONS
NUM_SAMPLES = 1000
EXAMPLES = 6  # disagreements shown per direction and condition
# Addresses written by hand, scored by both systems in the report: abbreviations that cpca's
# dictionary lookup misses, a municipality, a shared district name, a typo, no separators.
HAND_EXAMPLES = (
    "广东深圳南山科技路128号",
    "广东省深圳市南山区科技路128号",
    "北京朝阳建国路5号院3栋",
    "吉林长春朝阳人民大街88号",
    "浙江杭州西湖文三路478号华星大厦",
    "四川省成都市武候区人民南路四段",
    "上海市 浦东新区，世纪大道100号",
)


def read_split(data_cfg: Any, split: str) -> list[dict[str, Any]]:
    """Every record of ``split``: ``text``, ``tags`` (names) and the written levels' names."""
    records = []
    for record in iter_records(prepare(data_cfg).source(split)):
        row = {"text": text(record["text"]), "tags": [TAGS[int(t)] for t in record["tags"]]}
        row.update({lvl: text(record[lvl]) for lvl in LEVELS})
        records.append(row)
    return records


def span_counts(hyp: Sequence[str], ref: Sequence[str]) -> np.ndarray:
    """``[correct, predicted, reference]`` spans, overall then per entity type (``ENTITIES``)."""
    from seqeval.metrics.sequence_labeling import get_entities

    got, want = set(get_entities(list(hyp))), set(get_entities(list(ref)))
    row = [len(got & want), len(got), len(want)]
    for kind in ENTITIES:
        g = {s for s in got if s[0] == kind}
        w = {s for s in want if s[0] == kind}
        row += [len(g & w), len(g), len(w)]
    return np.array(row, np.float64)


def _prf(summed: np.ndarray, k: int) -> tuple[float, float, float]:
    correct, predicted, reference = summed[3 * k : 3 * k + 3]
    p = correct / predicted if predicted else 0.0
    r = correct / reference if reference else 0.0
    return float(p), float(r), float(2 * p * r / (p + r) if p + r else 0.0)


def _interval(stats: np.ndarray, aggregate, seed: int) -> list[float]:
    return list(bootstrap_ci(stats, aggregate, num_samples=NUM_SAMPLES, seed=seed))


def tagging_metrics(hyps: list[list[str]], refs: list[list[str]], *, seed: int = 0) -> dict:
    """Span P/R/F1 overall and per type, token accuracy, exact match; each with its interval.
    The interval resamples each address's span counts, which reproduce ``span_f1`` exactly."""
    scores = span_f1(hyps, refs)
    counts = np.stack([span_counts(h, r) for h, r in zip(hyps, refs, strict=True)])
    total = counts.sum(0)
    if not np.isclose(_prf(total, 0)[2], scores["f1"]):
        raise AssertionError("span counts disagree with seqeval's span_f1")
    blocks = []
    for k in range(len(ENTITIES) + 1):  # overall, then each type
        blocks.append({})
        for j, metric in enumerate(("precision", "recall", "f1")):
            blocks[-1][metric] = _prf(total, k)[j]
            blocks[-1][f"{metric}_ci"] = _interval(counts, lambda s, k=k, j=j: _prf(s, k)[j], seed)
        blocks[-1]["support"] = int(total[3 * k + 2])
    out: dict[str, Any] = {"span": blocks[0], "per_type": dict(zip(ENTITIES, blocks[1:]))}
    right = [sum(a == b for a, b in zip(h, r, strict=True)) for h, r in zip(hyps, refs)]
    tokens = rate_stats(right, [len(r) for r in refs])
    exact = rate_stats([h == r for h, r in zip(hyps, refs, strict=True)], [1] * len(refs))
    for name, stats in (("token_accuracy", tokens), ("exact_match", exact)):
        out[name] = rate(stats.sum(0))
        out[f"{name}_ci"] = _interval(stats, rate, seed)
    out["addresses"] = len(refs)
    return out


def level_metrics(outcomes: list[dict[str, int]], *, seed: int = 0) -> dict[str, Any]:
    """Accuracy per level (over addresses that write it) and of whole addresses, with CIs."""
    out: dict[str, Any] = {}
    for lvl in LEVELS:
        stats = rate_stats(*([o[f"{lvl}_{k}"] for o in outcomes] for k in ("right", "written")))
        out[lvl] = rate(stats.sum(0))
        out[f"{lvl}_ci"] = _interval(stats, rate, seed)
        out[f"{lvl}_written"] = int(stats[:, 1].sum())
    stats = rate_stats([o["all_right"] for o in outcomes], [1] * len(outcomes))
    out["address"] = rate(stats.sum(0))
    out["address_ci"] = _interval(stats, rate, seed)
    return out


def score_split(records: list[dict], hyps: list[list[str]], cpca: list[dict], *, seed=0) -> dict:
    """Everything the report says about one test condition, and examples of failures."""
    refs = [r["tags"] for r in records]
    names = [{lvl: r[lvl] for lvl in LEVELS} for r in records]
    tagger_names = [
        levels.normalize(levels.tagger_pieces(r["text"], h)) for r, h in zip(records, hyps)
    ]
    tagger_out = levels.level_outcomes(tagger_names, names)
    cpca_out = levels.level_outcomes(cpca, names)
    examples, differ = [], {True: 0, False: 0}  # by whether the tagger is the one right
    for i, (t, c) in enumerate(zip(tagger_out, cpca_out, strict=True)):
        right = bool(t["all_right"])
        if t["all_right"] != c["all_right"]:
            differ[right] += 1
            if differ[right] <= EXAMPLES:
                ex = dict(text=records[i]["text"], reference=names[i], tagger=tagger_names[i])
                examples.append(
                    {**ex, "cpca": cpca[i], "tagger_right": right, "cpca_right": not right}
                )
    return {
        "tagging": tagging_metrics(hyps, refs, seed=seed),
        "levels": {
            "tagger": level_metrics(tagger_out, seed=seed),
            "cpca": level_metrics(cpca_out, seed=seed),
        },
        "disagreements": examples,
        "counts": {
            "cpca_right_tagger_wrong": differ[False],
            "tagger_right_cpca_wrong": differ[True],
        },
    }


def heldout_facts(data_cfg: Any, heldout: list[dict]) -> dict[str, Any]:
    """How unseen the held-out districts are: their names in train, their characters' UNKs."""
    train_districts = {r["district"] for r in read_split(data_cfg, "train") if r["district"]}
    districts = sorted({r["district"] for r in heldout if r["district"]})
    vocab = set(prepare(data_cfg).info.src_vocab.tokens)
    unseen = [d for d in districts if any(ch not in vocab for ch in d)]
    return {
        "districts": len(districts),
        "districts_in_train": len(set(districts) & train_districts),
        "districts_with_unknown_characters": len(unseen),
    }


def noise_facts(clean: list[dict], noisy: list[dict]) -> dict[str, Any]:
    """Where ``test_noise``'s typos fell (by the tag of the changed character), and how many
    addresses lost their separators: each noisy address is paired with the clean one that
    equals it, separators aside, but for one character."""
    seps = set(SEPARATORS)
    bare = lambda r: "".join(ch for ch in r["text"] if ch not in seps)  # noqa: E731
    pool: dict[tuple, list[dict]] = {}
    for r in clean:
        pool.setdefault((tuple(r[lvl] for lvl in LEVELS), len(bare(r))), []).append(r)
    hits: dict[str, int] = dict.fromkeys(ENTITIES, 0)
    without = 0
    for r in noisy:
        key, text_ = (tuple(r[lvl] for lvl in LEVELS), len(bare(r))), bare(r)
        without += not any(ch in seps for ch in r["text"])
        for c in pool.get(key, []):
            diff = [i for i, (a, b) in enumerate(zip(bare(c), text_, strict=True)) if a != b]
            if len(diff) == 1:
                tags = [t for t, ch in zip(r["tags"], r["text"], strict=True) if ch not in seps]
                hits[tags[diff[0]][2:]] += 1
                pool[key].remove(c)
                break
    return {"typos_by_type": hits, "without_separators": without, "addresses": len(noisy)}


def run(
    config: Any, workdir: str | Path, *, command: str = "", attention_index: int = 0
) -> dict[str, Any]:
    """Train (or resume) the tagger in ``workdir``, score it and cpca, write the report."""
    workdir = Path(workdir)
    final = train_and_evaluate(config, str(workdir))
    if final.get("preempted"):
        return {"preempted": True, "step": final.get("step")}
    predictor = load(workdir)
    data_cfg = predictor.config.data
    results: dict[str, Any] = {"step": predictor.step, "splits": {}}
    records = {}
    for split in SPLITS:
        records[split] = read_split(data_cfg, split)
        texts = [r["text"] for r in records[split]]
        hyps = [list(p.tags) for p in predictor.predict(texts, unknown="unk")]
        results["splits"][split] = score_split(records[split], hyps, levels.cpca_names(texts))
    results["heldout"] = heldout_facts(data_cfg, records[HELDOUT_SPLIT])
    results["noise"] = noise_facts(records["test"], records[NOISE_SPLIT])
    hand = predictor.predict(list(HAND_EXAMPLES), unknown="unk")
    results["hand_examples"] = [
        {
            "text": t,
            "tagger": [list(piece) for piece in p.spans],
            "tagger_names": levels.normalize(levels.tagger_pieces(t, p.tags)),
            "cpca": c,
        }
        for t, p, c in zip(HAND_EXAMPLES, hand, levels.cpca_names(HAND_EXAMPLES), strict=True)
    ]
    params = jax.tree.leaves(nnx.state(predictor.model, nnx.Param))
    results["params"] = int(sum(np.size(x) for x in params))
    record = records["test"][attention_index]
    fig, labels = address_report.attention_figure(predictor, record)
    save(fig, workdir / "attention_map.png")
    results.update(command=command, attention_example=record["text"])
    results["attention_glyphs"] = labels[0] != "0"
    (workdir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    address_report.render(workdir)
    return results

"""The address study's ``report.md`` and figures, rendered from its ``results.json``. The
attention map shows the address's characters where matplotlib finds a CJK font (``cjk_font``),
else each character's position.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.analysis.plots import attention_maps_figure, percent_axis, plt, save
from attnlab.analysis.report import pct, table
from attnlab.data.builders.cn_address import (
    ENTITIES,
    HELDOUT_SPLIT,
    LEVELS,
    NOISE_SPLIT,
    TEST_CONDITIONS,
)
from attnlab.nn.attention import capture_self_attention

SPLITS = TEST_CONDITIONS
TITLES = {
    "test": "in-distribution test",
    HELDOUT_SPLIT: "held-out districts",
    NOISE_SPLIT: "noise (separators, one typo)",
}
_CJK_HINTS = ("wqy", "wenquanyi", "notosanscjk", "notoserifcjk", "droidsansfallback")


@functools.lru_cache(maxsize=1)
def cjk_font() -> Any:
    """A ``FontProperties`` of an installed CJK font, or None when there is none."""
    from matplotlib import font_manager

    for path in sorted(font_manager.findSystemFonts()):
        if any(h in Path(path).name.lower().replace("-", "").replace(" ", "") for h in _CJK_HINTS):
            try:
                return font_manager.FontProperties(fname=path)
            except (OSError, RuntimeError):  # an unreadable font file: try the next
                continue
    return None


def per_type_figure(results: dict[str, Any]) -> Any:
    """Span F1 per entity type (and overall) for each test condition, with 95% interval bars."""
    kinds = ("overall", *ENTITIES)
    fig, ax = plt.subplots(figsize=(9.5, 4.2), layout="constrained")
    width = 0.8 / len(SPLITS)
    for s, split in enumerate(SPLITS):
        tagging = results["splits"][split]["tagging"]
        blocks = [tagging["span"], *(tagging["per_type"][k] for k in ENTITIES)]
        f1 = np.array([b["f1"] for b in blocks])
        low = np.array([b["f1_ci"][0] for b in blocks])
        high = np.array([b["f1_ci"][1] for b in blocks])
        xs = np.arange(len(kinds)) + (s - (len(SPLITS) - 1) / 2) * width
        ax.bar(xs, f1, width, label=TITLES[split])
        ax.errorbar(xs, f1, yerr=[f1 - low, high - f1], fmt="none", ecolor="black", capsize=2)
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_ylabel("span F1 (95% bootstrap interval)")
    lowest = min(
        results["splits"][s]["tagging"]["per_type"][k]["f1_ci"][0] for s in SPLITS for k in ENTITIES
    )
    ax.set_ylim(max(0.0, lowest - 0.05), 1.0)
    percent_axis(ax)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Address tagger: span F1 per entity type (seqeval)")
    ax.grid(axis="y", alpha=0.3)
    return fig


def attention_figure(predictor: Any, record: dict[str, Any]) -> tuple[Any, list[str]]:
    """The head-averaged self-attention of each encoder layer for one address; tick labels."""
    tokens = list(record["text"])
    ids = predictor.encode([record["text"]], unknown="unk")[0][1]
    model = predictor.model
    _, maps = capture_self_attention(model, model, np.asarray([ids], np.int32))
    font = cjk_font()
    labels = tokens if font is not None else [f"{i}" for i in range(len(tokens))]
    panels = [
        (f"layer {i + 1} (mean of {m.shape[1]} heads)", np.asarray(m[0]).mean(0), labels, labels)
        for i, m in enumerate(maps)
    ]
    fig = attention_maps_figure(panels)
    for ax in fig.axes[: len(panels)]:
        ax.set_xlabel("key (attended character)")
        ax.set_ylabel("query character")
        if font is not None:
            for tick in (*ax.get_xticklabels(), *ax.get_yticklabels()):
                tick.set_fontproperties(font)
    return fig, labels


def _names(ex: dict[str, Any], key: str) -> str:
    return " / ".join(ex[key].get(lvl) or "-" for lvl in LEVELS)


def _tagging_lines(results: dict[str, Any]) -> list[str]:
    head = ["condition", "addresses", "span P", "span R", "span F1", "token accuracy"]
    rows = []
    for split in SPLITS:
        t = results["splits"][split]["tagging"]
        cells = [pct(t["span"][m], t["span"][f"{m}_ci"]) for m in ("precision", "recall", "f1")]
        cells += [pct(t[m], t[f"{m}_ci"]) for m in ("token_accuracy", "exact_match")]
        rows.append([TITLES[split], t["addresses"], *cells])
    per_type = []
    for kind in ENTITIES:
        blocks = [results["splits"][split]["tagging"]["per_type"][kind] for split in SPLITS]
        per_type.append([kind, *(f"{pct(b['f1'], b['f1_ci'])} (n={b['support']})" for b in blocks)])
    return [
        "## Tagging (seqeval span scores)",
        "",
        *table([*head, "exact match"], rows),
        "",
        "Span F1 per entity type:",
        "",
        *table(["type", *(TITLES[s] for s in SPLITS)], per_type),
    ]


def _cpca_lines(results: dict[str, Any]) -> list[str]:
    rows = []
    for split in SPLITS:
        for system in ("tagger", "cpca"):
            m = results["splits"][split]["levels"][system]
            rows.append(
                [TITLES[split], system, *(pct(m[k], m[f"{k}_ci"]) for k in (*LEVELS, "address"))]
            )
    return [
        "",
        "## Against cpca (`cpca.transform`)",
        "",
        "Accuracy of the full names (adcodes.csv) of each level, over the addresses that write "
        "that level; `address` = every written level right. Tagger pieces are normalized to "
        "full names (`attnlab.analysis.address_levels.normalize`).",
        "",
        *table(["condition", "system", *LEVELS, "address"], rows),
    ]


def _heldout_lines(results: dict[str, Any]) -> list[str]:
    """The bars (in-distribution F1, held-out districts against cpca), noise and held-out facts."""
    test = results["splits"]["test"]["tagging"]["span"]
    held = results["splits"][HELDOUT_SPLIT]
    district, cpca = held["tagging"]["per_type"]["district"], held["levels"]["cpca"]
    beats = district["f1"] > cpca["district"]
    lines = [
        "",
        "Bar: in-distribution span F1 >= 97%: "
        + ("met" if test["f1"] >= 0.97 else "**missed**")
        + f" ({pct(test['f1'], test['f1_ci'])}). Held-out districts, the tagger's district "
        f"span F1 {pct(district['f1'], district['f1_ci'])} against cpca's district "
        f"accuracy {pct(cpca['district'], cpca['district_ci'])}: "
        + ("beats it." if beats else "**does not beat it**."),
    ]
    noise = results.get("noise")
    if noise:
        where = ", ".join(f"{k} {v}" for k, v in noise["typos_by_type"].items())
        lines += [
            "",
            f"Noise: {noise['without_separators']} of {noise['addresses']} noisy addresses have "
            f"no separator left; the typo fell in: {where}. A typo inside a province, city or "
            "district name makes that name unknown to both systems' name lookup (cpca's "
            "dictionary, the tagger's normalization), so the level counts as wrong for both "
            "even when the tagger segments it right; span F1 scores the segmentation alone.",
        ]
    facts = results["heldout"]
    return lines + [
        "",
        f"Held-out districts: {facts['districts']} district names, "
        f"{facts['districts_in_train']} of them in the training split, "
        f"{facts['districts_with_unknown_characters']} with a character the tagger's "
        "vocabulary lacks (read as `<unk>`). cpca's dictionary holds every one of them: on this "
        "condition it knows the names the tagger has never seen.",
    ]


def _example_lines(results: dict[str, Any]) -> list[str]:
    """The addresses written by hand, and where the two systems disagree."""
    lines, escape = [], lambda text: text.replace("|", "\\|")
    if results.get("hand_examples"):
        rows = [
            [ex["text"], " ".join(f"{p}/{k}" for p, k in ex["tagger"])]
            + [_names(ex, "tagger_names"), _names(ex, "cpca")]
            for ex in results["hand_examples"]
        ]
        head = ["address", "tagger", "tagger names", "cpca"]
        lines += [
            "",
            "## Addresses written by hand",
            "",
            *table(head, (map(escape, r) for r in rows)),
        ]
    for split in SPLITS:
        data = results["splits"][split]
        c = data["counts"]
        lines += [
            "",
            f"### Where they disagree: {TITLES[split]}",
            "",
            f"cpca right, tagger wrong: {c['cpca_right_tagger_wrong']} addresses; tagger "
            f"right, cpca wrong: {c['tagger_right_cpca_wrong']}. The first examples of each "
            "(names as province / city / district; - where none):",
            "",
        ]
        rows = []
        for ex in data["disagreements"]:
            marks = {"tagger": ex["tagger_right"], "cpca": ex["cpca_right"]}
            rows.append([escape(ex["text"]), _names(ex, "reference")])
            rows[-1] += [_names(ex, k) + (" ✓" if marks[k] else " ✗") for k in ("tagger", "cpca")]
        lines += table(["address", "reference", "tagger", "cpca"], rows)
    return lines


def report_lines(results: dict[str, Any], command: str = "") -> list[str]:
    """The Markdown report: tables per condition, the cpca comparison, and examples."""
    lines = ["# Chinese address segmentation: tagger and cpca", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [
        f"Tagger at step {results['step']}, {results['params']:,} parameters. Every figure is in "
        "percent with its 95% percentile-bootstrap interval over addresses (1000 resamples).",
        "",
    ]
    lines += _tagging_lines(results) + _cpca_lines(results) + _heldout_lines(results)
    return lines + _example_lines(results)


def render(workdir: str | Path) -> Path:
    """``report.md`` and ``per_type_f1.png`` of ``workdir``, from its ``results.json`` alone
    (``attention_map.png`` is drawn by the run, from the model)."""
    workdir = Path(workdir)
    results = json.loads((workdir / "results.json").read_text())
    save(per_type_figure(results), workdir / "per_type_f1.png")
    lines = report_lines(results, results.get("command", ""))
    lines += ["", "## Plots", "", "![per-type F1](per_type_f1.png)", ""]
    text = results["attention_example"]
    lines += [f"![attention map](attention_map.png): the address `{text}`."]
    if not results.get("attention_glyphs", True):
        pairs = ", ".join(f"{i} {ch}" for i, ch in enumerate(text))
        lines += [f"No CJK font was found, so the ticks are positions: {pairs}."]
    path = workdir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path

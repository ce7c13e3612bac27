"""The syllable classifier's report: ``run(workdir)`` classifies every word of a split with
the trained ``cmudict_syllables`` classifier and scores it against the vowel-group rule
(``analysis.syllables``) on the same words: accuracies with 95% bootstrap intervals, their
paired difference, accuracy per word length, the confusion matrix. Writes
``syllables_results.json``, then renders the report and figure from it (``render``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.analysis.plots import plt, save
from attnlab.analysis.report import pct
from attnlab.analysis.stats import bootstrap_ci, rate, rate_stats
from attnlab.analysis.syllables import vowel_group_label
from attnlab.data.datasets import prepare
from attnlab.data.sources import iter_records, text
from attnlab.inference import load

NUM_SAMPLES = 1000
CONFUSION = "confusion_matrix.png"


def read_words(data_cfg: Any, split: str) -> tuple[list[str], list[int]]:
    """The words of ``split`` and their class ids, in file order."""
    words, labels = [], []
    for record in iter_records(prepare(data_cfg).source(split)):
        words.append(text(record["word"]))
        labels.append(int(record["label"]))
    return words, labels


def confusion(truth: list[int], predicted: list[int], num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``."""
    table = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(table, (np.asarray(truth), np.asarray(predicted)), 1)
    return table


def confusion_figure(table: np.ndarray, names: tuple[str, ...]) -> Any:
    """Row-normalized colours (the share of each true class), counts written in the cells."""
    rows = table.sum(1, keepdims=True)
    shares = np.divide(table, rows, out=np.zeros(table.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7.2, 6.0), layout="constrained")
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (r, c), n in np.ndenumerate(table):
        if n:
            ax.text(c, r, str(n), ha="center", va="center", fontsize=7,
                    color="white" if shares[r, c] > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), [f"{n} ({rows[i, 0]})" for i, n in enumerate(names)])
    ax.set_xlabel("predicted syllables")
    ax.set_ylabel("true syllables (words)")
    ax.set_title("Syllable classifier on the test words: counts; colour = share of the row")
    fig.colorbar(image, ax=ax, label="share of the true class")
    return fig


def score(words: list[str], truth: list[int], predicted: list[int]) -> dict[str, Any]:
    """Model and rule accuracies, their paired difference, and accuracy per word length."""
    rule = [vowel_group_label(w) for w in words]
    model_right = np.array([p == t for p, t in zip(predicted, truth, strict=True)], float)
    rule_right = np.array([p == t for p, t in zip(rule, truth, strict=True)], float)
    ones = np.ones(len(words))
    out: dict[str, Any] = {"words": len(words)}
    for name, right in (("model", model_right), ("rule", rule_right)):
        stats = rate_stats(right, ones)
        out[name] = {"accuracy": rate(stats.sum(0))}
        out[name]["accuracy_ci"] = list(bootstrap_ci(stats, rate, num_samples=NUM_SAMPLES))
    paired = np.stack([model_right, rule_right, ones], axis=1)
    diff = lambda s: float((s[0] - s[1]) / s[2])  # noqa: E731
    out["difference"] = diff(paired.sum(0))
    out["difference_ci"] = list(bootstrap_ci(paired, diff, num_samples=NUM_SAMPLES))
    out["only_model_right"] = int(((model_right == 1) & (rule_right == 0)).sum())
    out["only_rule_right"] = int(((model_right == 0) & (rule_right == 1)).sum())
    lengths = np.array([len(w) for w in words])
    out["by_length"] = {}
    for n in np.unique(lengths):
        k = lengths == n
        out["by_length"][int(n)] = {"words": int(k.sum()), "model": float(np.mean(model_right[k]))}
        out["by_length"][int(n)]["rule"] = float(np.mean(rule_right[k]))
    every = [
        {"word": w, "true": t, "rule": r, "model": p}
        for w, t, r, p in zip(words, truth, rule, predicted, strict=True)
    ]
    out["rule_mistakes"] = [e for e in every if e["rule"] != e["true"] == e["model"]][:10]
    out["model_mistakes"] = [e for e in every if e["model"] != e["true"]][:10]
    return out


def report_lines(results: dict[str, Any], command: str = "") -> list[str]:
    """The Markdown report."""
    m, r = results["model"], results["rule"]
    lines = ["# Syllable counting: the classifier against the vowel-group rule", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [
        f"Classifier at step {results['step']}, {results['split']} split, "
        f"{results['words']} words. Accuracy in percent with 95% bootstrap intervals "
        "(1000 resamples of words).",
        "",
        "| system | accuracy % |",
        "|---|---|",
        f"| classifier (mean-pooled encoder) | {pct(m['accuracy'], m['accuracy_ci'])} |",
        f"| vowel-group rule (`count_vowel_groups`) | {pct(r['accuracy'], r['accuracy_ci'])} |",
        "",
        f"Classifier - rule: {pct(results['difference'], results['difference_ci'])} points "
        f"(paired bootstrap). Words only the classifier gets right: "
        f"{results['only_model_right']}; only the rule: {results['only_rule_right']}.",
        "",
        "Accuracy per word length (letters):",
        "",
        "| letters | words | classifier % | rule % |",
        "|---|---|---|---|",
    ]
    for n, row in results["by_length"].items():
        lines.append(f"| {n} | {row['words']} | {pct(row['model'])} | {pct(row['rule'])} |")
    names = results["class_names"]
    for title, key in (
        ("Words the rule gets wrong and the classifier right", "rule_mistakes"),
        ("Words the classifier gets wrong", "model_mistakes"),
    ):
        lines += ["", f"{title} (first 10; true / rule / classifier):", ""]
        lines += [
            f"- `{e['word']}`: {names[e['true']]} / {names[e['rule']]} / {names[e['model']]}"
            for e in results[key]
        ]
    lines += ["", "![confusion matrix](confusion_matrix.png)"]
    return lines


def render(results_path: str | Path, report_path: str | Path | None = None) -> Path:
    """The report (default ``syllables_report.md`` beside ``results_path``) and
    ``confusion_matrix.png`` beside it, from the results file alone."""
    results_path = Path(results_path)
    results = json.loads(results_path.read_text())
    report = Path(report_path or results_path.with_name("syllables_report.md"))
    table = np.asarray(results["confusion"])
    save(confusion_figure(table, tuple(results["class_names"])), report.with_name(CONFUSION))
    report.write_text("\n".join(report_lines(results, results.get("command", ""))) + "\n")
    return report


def run(workdir: str | Path, out_dir: str | Path | None = None, *, split: str = "test",
        command: str = "") -> dict[str, Any]:  # fmt: skip
    """Score the classifier of ``workdir`` and the rule; write the report into ``out_dir``."""
    predictor = load(workdir)
    if predictor.kind != "classifier" or predictor.config.data.name != "cmudict_syllables":
        raise ValueError(f"{workdir} holds no cmudict_syllables classifier")
    out = Path(out_dir or workdir)
    out.mkdir(parents=True, exist_ok=True)
    words, truth = read_words(predictor.config.data, split)
    predicted = [p.label for p in predictor.predict(words, unknown="unk")]
    results = {"step": predictor.step, "split": split, **score(words, truth, predicted)}
    names = list(predictor.info.label_names)
    results.update(class_names=names, command=command)
    results["confusion"] = confusion(truth, predicted, len(names)).tolist()
    (out / "syllables_results.json").write_text(json.dumps(results, indent=1))
    render(out / "syllables_results.json")
    return results

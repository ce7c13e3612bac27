"""``report.md`` and its plots for the AT-versus-NAT experiment."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from attnlab.analysis import plots
from attnlab.analysis.systems import valid_rows
from attnlab.decode.nat import nat_decode
from attnlab.nn.attention import capture_cross_attention
from attnlab.nn.config import BOS_ID, EOS_ID, MASK_ID, PAD_ID

_COLUMNS = (
    ("system", "system", "{}"),
    ("WER % [95% CI]", "wer", None),
    ("PER %", "per", "{:.2%}"),
    ("BLEU [95% CI]", "bleu", None),
    ("chrF", "chrf", "{:.1f}"),
    ("exact %", "exact_match", "{:.1%}"),
    ("len acc %", "length_accuracy", "{:.1%}"),
    ("len MAE", "length_mae", "{:.2f}"),
    ("ms/seq b=1", "latency_ms_b1", "{:.2f}"),
    ("seq/s b=64", "throughput_seq_s_b64", "{:.0f}"),
    ("x greedy", "speedup_vs_at_greedy", "{:.1f}"),
    ("x beam4", "speedup_vs_at_beam4", "{:.1f}"),
    ("params", "params", "{:,}"),
)


def _cell(row: dict[str, Any], key: str, fmt: str | None) -> str:
    if key == "wer":
        lo, hi = row.get("wer_ci95", (row["wer"], row["wer"]))
        return f"{100 * row['wer']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
    if key == "bleu":
        lo, hi = row.get("bleu_ci95", (row["bleu"], row["bleu"]))
        return f"{row['bleu']:.1f} [{lo:.1f}, {hi:.1f}]"
    return fmt.format(row[key]) if key in row else "-"


def results_table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(c[0] for c in _COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in _COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(r, k, f) for _, k, f in _COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _findings(rows: list[dict[str, Any]]) -> list[str]:
    by = {r["system"]: r for r in rows}
    lines = []
    best_at = min((r for r in rows if r["model"] == "at"), key=lambda r: r["wer"], default=None)
    nat_rows = [r for r in rows if r["model"] != "at"]
    if best_at:
        lines.append(
            f"- Best AT system: {best_at['system']}, WER {100 * best_at['wer']:.1f}%, "
            f"PER {100 * best_at['per']:.2f}%."
        )
    for r in nat_rows:
        if not best_at:
            break
        gap = 100 * (r["wer"] - best_at["wer"])
        speed = r.get("speedup_vs_at_beam4")
        speed_text = f", {speed:.1f}x the speed of AT beam 4 at batch 1" if speed else ""
        lines.append(
            f"- {r['system']}: {gap:+.1f} WER points against {best_at['system']}{speed_text}."
        )
    if "nat_length_pred" in by and "nat_oracle_length" in by:
        gain = 100 * (by["nat_length_pred"]["wer"] - by["nat_oracle_length"]["wer"])
        lines.append(f"- Knowing the true length is worth {gain:.1f} WER points to the NAT.")
    return lines


def _attention_figure(models, batches, info, path: Path, max_len: int) -> Path | None:
    """Cross-attention (last decoder layer, mean over heads) of the first test example."""
    if "at" not in models or "nat" not in models:
        return None
    src = jnp.asarray(batches[0]["inputs"][:1])
    n_src = int(np.sum(np.asarray(src) != PAD_ID))
    src_tokens = info.src_vocab.decode(np.asarray(src[0, :n_src]).tolist())
    from attnlab.decode.at import at_decode

    at, nat = models["at"], models["nat"]
    hyp = np.asarray(at_decode(at, src, method="greedy", max_len=max_len))[0]
    n_out = int(np.argmax(hyp == EOS_ID)) + 1 if (hyp == EOS_ID).any() else len(hyp)
    tgt_in = jnp.asarray([[BOS_ID, *hyp[: n_out - 1].tolist()]])
    _, at_maps = capture_cross_attention(at, at, src, tgt_in)
    out = nat_decode(nat, src, "length_pred", max_len=max_len)
    length = int(out.lengths[0])
    dec = jnp.where(jnp.arange(max_len)[None] < length, MASK_ID, PAD_ID).astype(jnp.int32)
    _, nat_maps = capture_cross_attention(nat, nat.decode, dec, nat.encode(src), src)
    if not at_maps or not nat_maps:
        return None
    label = lambda ids: info.tgt_vocab.decode([int(i) for i in ids]) + ["</s>"]
    at_w = np.asarray(at_maps[-1][0].mean(0))[:n_out, :n_src]
    nat_w = np.asarray(nat_maps[-1][0].mean(0))[:length, :n_src]
    return plots.attention_maps(
        [
            ("AT greedy: cross-attention, last layer", at_w, label(hyp[: n_out - 1]), src_tokens),
            (
                "NAT length_pred: cross-attention, last layer",
                nat_w,
                label(np.asarray(out.tokens[0, : length - 1])),
                src_tokens,
            ),
        ],
        path,
    )


def _samples(outputs, refs, batches, info, limit: int = 10) -> list[str]:
    if "at_beam4" not in outputs or "nat_length_pred" not in outputs:
        return []
    sources = [
        info.src_vocab.detokenize(info.src_vocab.decode(np.asarray(row).tolist()))
        for row in valid_rows(batches, "inputs")
    ]
    lines = ["| source | references | AT beam 4 | NAT length_pred |", "|---|---|---|---|"]
    detok = info.tgt_vocab.detokenize
    shown = 0
    for i, (a, n) in enumerate(zip(outputs["at_beam4"], outputs["nat_length_pred"], strict=True)):
        if a != n and shown < limit:
            ref_text = " / ".join(detok(r) for r in refs[i])
            lines.append(f"| {sources[i]} | {ref_text} | {detok(a)} | {detok(n)} |")
            shown += 1
    return lines if shown else []


def write_report(
    config, workdir: Path, rows, *, outputs, refs, length_errors, batches, models, info
) -> Path:
    """Write ``report.md`` and its PNGs into ``workdir``."""
    max_len = int(batches[0]["targets"].shape[1])
    figures = []
    if length_errors:
        figures.append(
            (
                "Length prediction: predicted minus true length",
                plots.length_error_histogram(length_errors, workdir / "length_errors.png"),
            )
        )
    g2p = config.at.data.name == "cmudict_g2p"
    figures.append(
        (
            "Quality versus latency",
            plots.quality_vs_latency(
                rows,
                workdir / "quality_vs_latency.png",
                quality="wer" if g2p else "bleu",
                lower_is_better=g2p,
            ),
        )
    )
    attn = _attention_figure(models, batches, info, workdir / "attention_maps.png", max_len)
    if attn:
        figures.append(("Cross-attention maps of one test example", attn))
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""
    lines = [
        f"# AT versus NAT: {config.task}",
        "",
        f"Command: `python experiments/{command}`" if command else "",
        "",
        f"Machine: {os.cpu_count()} CPU cores, jax devices {jax.devices()}. "
        f"Test split `{config.test_split}`, {rows[0]['examples']} examples. "
        "Latency is the median over single sequences at batch 1 after warm-up (compilation "
        "excluded); throughput is over the whole split at the eval batch size.",
        "",
    ]
    if g2p:
        lines += [
            "Split note: our CMUdict split hashes each word into train/dev/test (90/2/8), so "
            "figures are not directly comparable with published CMUdict G2P results "
            "(about 20-23% WER for Transformers on other splits). WER counts a word wrong when "
            "its output matches none of its reference pronunciations.",
            "",
        ]
    lines += ["## Results", "", results_table(rows), "", "## Findings", "", *_findings(rows), ""]
    for title, path in figures:
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    sample_lines = _samples(outputs, refs, batches, info)
    if sample_lines:
        lines += ["## Where AT and NAT differ", "", *sample_lines, ""]
    path = workdir / "report.md"
    path.write_text("\n".join(lines))
    return path

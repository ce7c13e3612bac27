"""Metric writing: ``DIR/metrics.jsonl``, TensorBoard event files and absl progress lines.

A resumed run first drops the JSON lines after the step it resumed from (and any line a kill
cut short), and tells TensorBoard to purge its later events, so a run interrupted and resumed
leaves the same record as one that was never interrupted.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from absl import logging

# Keys that measure the machine rather than the model; they differ between identical runs.
TIMING_KEYS = ("steps_per_sec", "tokens_per_sec", "eval_seconds")


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """Every complete JSON line of ``workdir/metrics.jsonl``."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MissingPackageError(ValueError):
    """A package the run needs is not installed (said before training, not at step 100)."""


class MetricWriter:
    """Write metric events from the primary process; other processes write nothing."""

    def __init__(self, workdir: str | os.PathLike, *, start_step: int, primary: bool = True):
        self.primary = primary
        self._workdir = str(workdir)
        self._path = Path(workdir) / "metrics.jsonl"
        self._start_step = start_step
        self._tb = None
        if not primary:
            return
        # TensorBoard is opened lazily (slow import), so look for it now: a missing package
        # must stop the run before its compile and first steps, not at the first event.
        if importlib.util.find_spec("tensorboardX") is None:
            raise MissingPackageError(
                "tensorboardX is not installed; every run writes TensorBoard events with it: "
                "`pip install tensorboardX` (`make setup` installs it)"
            )
        kept = [r for r in read_metrics(workdir) if r.get("step", math.inf) <= start_step]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        if not self._path.exists() or self._path.read_text() != text:
            tmp = self._path.with_suffix(".jsonl.tmp")
            tmp.write_text(text)
            os.replace(tmp, self._path)

    def _tensorboard(self):
        """The TensorBoard writer, opened at the first event (a run with nothing left to do
        adds no event file)."""
        if self._tb is None:
            from tensorboardX import SummaryWriter  # import here: it is slow to import

            purge = self._start_step + 1 if self._start_step > 0 else None
            self._tb = SummaryWriter(self._workdir, purge_step=purge, flush_secs=30)
        return self._tb

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one event: a JSON line and one TensorBoard scalar per value."""
        if not self.primary:
            return
        record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        with self._path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        tb = self._tensorboard()
        for key, value in metrics.items():
            tag = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
            tb.add_scalar(tag, float(value), int(step))

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def progress_line(
    step: int, total: int, metrics: Mapping[str, float], *, compiled: bool = False
) -> str:
    """``step 500/1000 (50%) | loss 1.234 | accuracy 0.567 | ... | 12.3 steps/s | ETA 0:00:41``.

    ``compiled``: the interval included compiling the step (the first one after a start or
    a resume), so its rate says nothing about the time left: no ETA, and the rate says so.
    """
    parts = [f"step {step}/{total} ({100 * step / total:.0f}%)"]
    for key, value in metrics.items():
        if key in TIMING_KEYS:
            continue
        parts.append(f"{key} {value:.3e}" if key == "learning_rate" else f"{key} {value:.4g}")
    rate = metrics.get("steps_per_sec")
    if rate:
        speed = f"{rate:.1f} steps/s, {metrics.get('tokens_per_sec', 0):.0f} tokens/s"
        parts.append(f"{speed} with compiling" if compiled else speed)
        if not compiled:
            parts.append(f"ETA {datetime.timedelta(seconds=round((total - step) / rate))}")
    return " | ".join(parts)


def log_progress(
    step: int, total: int, metrics: Mapping[str, float], *, compiled: bool = False
) -> None:
    logging.info("%s", progress_line(step, total, metrics, compiled=compiled))


def summary_line(result: Mapping[str, object]) -> str:
    """The final result of a run as one line: ``step 40 | loss 3.21 | eval_wer 0.971 | ...``."""
    parts = [f"step {result['step']}"]
    for key, value in result.items():
        if isinstance(value, float) and key not in TIMING_KEYS:
            parts.append(f"{key} {value:.4g}")
    return " | ".join(parts)

r"""A few minutes' check of an accelerator host: devices, benchmarks, bfloat16 training.

    make gpu-check                                  # = python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --quick          # tiny sizes: a smoke run, also on CPU

Issue 18. In order, each part in its own process (one that fails does not stop the others):
1. ``devices``: the backend and every device JAX sees, with its kind (the card's name);
2. ``attention``: ``benchmarks/attention.py`` (our attention against jax's);
3. ``long_sequences``: ``benchmarks/long_sequences.py`` (chunked against dense attention);
4. ``train``: ``experiments/train.py`` on ``g2p.py:at`` for 300 steps with
   ``compute_dtype=bfloat16``, reporting the steps/s of its last logged window (compilation
   excluded) and the wall time;
5. ``decoding``: ``benchmarks/decoding.py`` (KV cache, AT against NAT at batch 1).

The benchmarks write their sections into ``--results`` (``benchmarks/gpu_results.json`` by
default, so that the CPU figures of ``benchmarks/results.json`` stay as they are), and this
script adds a ``gpu_check`` section: devices, each part's status and seconds, and the training
figures. ``--quick`` shrinks every part (small lengths, one repetition, 20 training steps of
``synthetic.py:at,quick``) to test the script itself on a CPU (2 min on 2 shared cores);
``--parts`` runs a subset, and ``--part_timeout`` stops a part that runs longer (a device lease
is short: one slow part must not use it up). The exit status is 1 if any part failed. The
first run on a GPU (an H200, 2026-11-28) and how its packages got there: docs/performance.md,
"Accelerators".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

PY = sys.executable
FULL = {
    "attention": [],
    "long_sequences": [],
    "decoding": [],
}
PARTS = ("devices", "attention", "long_sequences", "train", "decoding")
QUICK = {
    "attention": ["--quick", "--lengths=16,32", "--tokens=64", "--heads=2", "--head_dim=8"]
    + ["--repeats=1", "--min_seconds=0"],
    "long_sequences": [
        "--quick",
        "--lengths=256",
        "--memory_target_T=256",
        "--time_target_T=256",
        "--repeats=1",
        "--min_seconds=0",
    ],
    "decoding": [
        "--quick",
        "--words=2",
        "--positions=8",
        "--cache_len=32",
        "--loop_steps=4",
        "--decode_length=8",
        "--repeats=1",
        "--min_seconds=0",
    ],
}
DEVICES = (
    "import json, jax; print(json.dumps({'backend': jax.default_backend(), 'devices': "
    "[f'{d.platform}:{d.id} {d.device_kind}' for d in jax.devices()]}))"
)


def _run(name: str, command: list[str], log_dir: Path, timeout: float = 0) -> dict[str, Any]:
    """Run one part, its output into ``log_dir/<name>.log``; its status and seconds.

    ``timeout`` > 0 stops a part that runs longer (its process is killed), so that one slow
    or hung part cannot use up a lease that the others need.
    """
    print(f"gpu_check: {name} ...", flush=True)
    start = time.perf_counter()
    log = log_dir / f"{name}.log"
    with log.open("w") as out:
        try:
            code = subprocess.call(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout or None
            )
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.perf_counter() - start
    if code is None:
        status = f"failed (stopped after the --part_timeout of {timeout:g} s; see {log})"
    else:
        status = "ok" if code == 0 else f"failed (exit {code}; see {log})"
    print(f"gpu_check: {name} {status} in {seconds:.0f} s", flush=True)
    return {"status": status, "seconds": round(seconds, 1), "log": str(log)}


def _train_command(args: argparse.Namespace, workdir: Path) -> list[str]:
    steps = args.train_steps or (20 if args.quick else 300)
    spec = args.train_config or (
        "experiments/configs/synthetic.py:at,quick"
        if args.quick
        else "experiments/configs/g2p.py:at"
    )
    return [
        PY,
        "experiments/train.py",
        f"--config={spec}",
        f"--workdir={workdir}",
        "--config.compute_dtype=bfloat16",
        f"--config.num_train_steps={steps}",
        f"--config.log_every_steps={max(steps // 3, 1)}",
        f"--config.eval_every_steps={steps}",
        f"--config.checkpoint_every_steps={steps}",
        f"--config.eval_decode_examples={16 if args.quick else 256}",
    ]


def _train_figures(workdir: Path) -> dict[str, Any]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "steps_per_sec" in r]
    return {
        "steps": train[-1]["step"],
        "steps_per_sec": round(train[-1]["steps_per_sec"], 2),  # the last window: compiled
        "final_loss": round(train[-1]["loss"], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/gpu_results.json")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs/gpu_check")
    parser.add_argument("--train_config", default="", help="config of the training part")
    parser.add_argument("--train_steps", type=int, default=0, help="0: 300, or 20 with --quick")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument(
        "--part_timeout", type=float, default=0, help="seconds per part, 0: no limit"
    )
    args = parser.parse_args(argv)
    chosen = [p for p in args.parts.split(",") if p]
    unknown = [p for p in chosen if p not in PARTS]
    if unknown or not chosen:
        parser.error(f"unknown --parts {','.join(unknown)!r}; valid: {', '.join(PARTS)}")
    if not 0 <= args.part_timeout < float("inf"):
        parser.error(f"--part_timeout must be a number of seconds >= 0, got {args.part_timeout}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    extra = QUICK if args.quick else FULL
    results = str(args.results.resolve())

    parts: dict[str, Any] = {}
    report: dict[str, Any] = {"command": common.command_line(__file__, argv), "parts": parts}
    for name in (p for p in PARTS if p in chosen):
        if name == "devices":
            parts[name] = _run(name, [PY, "-c", DEVICES], args.workdir, args.part_timeout)
            if parts[name]["status"] == "ok":
                log = (args.workdir / "devices.log").read_text().strip().splitlines()
                report.update(json.loads(log[-1]))
                print(f"gpu_check: {report['backend']}: {', '.join(report['devices'])}")
        elif name == "train":
            train_dir = args.workdir / "train"
            shutil.rmtree(train_dir, ignore_errors=True)  # a resumed run would train nothing
            parts[name] = _run(
                name, _train_command(args, train_dir), args.workdir, args.part_timeout
            )
            if parts[name]["status"] == "ok":
                report["train"] = _train_figures(train_dir)
                print(f"gpu_check: bfloat16 training: {json.dumps(report['train'])}")
        else:
            command = [PY, f"benchmarks/{name}.py", f"--results={results}", *extra[name]]
            parts[name] = _run(name, command, args.workdir, args.part_timeout)
    common.write_section("gpu_check", report, args.results)
    failed = [name for name, part in parts.items() if part["status"] != "ok"]
    print(f"gpu_check: {'failed: ' + ', '.join(failed) if failed else 'all parts ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

"""A stand-in for experiments/train.py that the runner tests launch: no JAX, instant.

``--config.mode`` picks what it does: ``ok`` writes a config.json (a real tiny model config)
and a metrics.jsonl that reaches ``--config.num_train_steps``; ``nan`` exits 1 the way
train.py reports a diverged loss; ``crash`` exits 3. ``--config.sleep`` seconds are spent
first, and the start and end times are written to ``times.json``. Like train.py, SIGTERM
makes it stop early and exit 0 (after half a second of "saving"); every SIGTERM it receives
is counted in ``sigterms.txt``. Its CPU affinity goes to ``cpus.json``, and each start adds a
line to ``started``.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

SIGTERMS = []


def main() -> int:
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
    workdir = Path(args["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: SIGTERMS.append(time.time()))
    with (workdir / "started").open("a") as f:  # one line per start
        f.write(f"{os.getpid()}\n")
    if hasattr(os, "sched_getaffinity"):  # the CPUs the runner pinned it to
        (workdir / "cpus.json").write_text(json.dumps(sorted(os.sched_getaffinity(0))))
    started = time.time()
    while time.time() < started + float(args.get("config.sleep", 0)) and not SIGTERMS:
        time.sleep(0.02)
    if SIGTERMS:
        time.sleep(0.5)
        (workdir / "sigterms.txt").write_text(str(len(SIGTERMS)))
        return 0
    mode, steps, seed = (
        args["config.mode"],
        int(args["config.num_train_steps"]),
        int(args["config.seed"]),
    )
    (workdir / "times.json").write_text(json.dumps([started, time.time()]))
    if mode == "nan":
        print(
            "train.py: error: NaN/Inf at step 3 (loss=nan); stopped without saving it",
            file=sys.stderr,
        )
        return 1
    if mode == "crash":
        print("train.py: error: something broke", file=sys.stderr)
        return 3
    from attnlab.nn.config import model_config

    model = model_config(
        d_model=8, num_heads=2, d_ff=16, num_encoder_layers=1, num_decoder_layers=1
    )
    (workdir / "config.json").write_text(json.dumps({"model": model.to_dict(), "seed": seed}))
    records = [
        {"step": steps // 2, "loss": 2.0, "steps_per_sec": 10.0},
        {"step": steps, "loss": 1.0 + seed, "steps_per_sec": 30.0, "tokens_per_sec": 5.0},
        {"step": steps, "eval_wer": 0.5 - 0.1 * seed, "eval_seconds": 1.0},
    ]
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return 0


if __name__ == "__main__":
    sys.exit(main())

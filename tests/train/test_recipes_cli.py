"""Every NAT recipe's quick form from the shell: it trains, survives SIGKILL and resumes
bit-identically; and options its recipe cannot take fail with one line."""

import os
import subprocess
import time

import pytest
from train_testing import CONFIGS, assert_same_state, cli_command, model_metrics, quick_config

from attnlab.train import restore_model, train_and_evaluate

# Glancing on every recipe that takes it, so its schedule and keys are resumed too.
SPECS = {
    "vanilla": "synthetic.py:nat,copy,vanilla,glat,quick",
    "cmlm": "synthetic.py:nat,copy,cmlm,quick",
    "eos_canvas": "synthetic.py:nat,copy,eos_canvas,quick",
    "ctc": "synthetic.py:nat,copy,ctc,glat,quick",
    "dag": "synthetic.py:nat,copy,dag,glat,quick",
}
STEPS = {"num_train_steps": 20, "log_every_steps": 5, "eval_every_steps": 20}


def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def _checkpoints(workdir):
    path = workdir / "checkpoints"
    return [p for p in path.iterdir() if p.name.isdigit()] if path.exists() else []


def test_every_recipe_trains_from_the_shell_and_resumes_bit_identically_after_sigkill(
    data_dir, tmp_path
):
    # In-process references first: they build the data once and fill the compilation cache
    # that the subprocesses then read.
    for recipe, spec in SPECS.items():
        train_and_evaluate(quick_config(spec, data_dir, **STEPS), tmp_path / f"{recipe}_ref")

    def command(recipe):
        return cli_command(
            SPECS[recipe], tmp_path / recipe, data_dir, **STEPS, checkpoint_every_steps=5
        )

    logs = {r: open(tmp_path / f"{r}.log", "w+") for r in SPECS}  # noqa: SIM115

    def start(recipe):
        log = logs[recipe]
        return subprocess.Popen(command(recipe), stdout=log, stderr=log, env=_env())

    first = {r: start(r) for r in SPECS}
    deadline = time.monotonic() + 600
    while any(proc.poll() is None for proc in first.values()):
        for recipe, proc in first.items():
            if proc.poll() is None and _checkpoints(tmp_path / recipe):
                proc.kill()  # SIGKILL, at whatever moment the first save lands
                proc.wait()
        assert time.monotonic() < deadline, "the runs saved no checkpoint in time"
        time.sleep(0.05)
    second = {r: start(r) for r in SPECS}
    for recipe, proc in second.items():
        assert proc.wait(timeout=600) == 0, (tmp_path / f"{recipe}.log").read_text()[-3000:]
    for recipe in SPECS:
        text = (tmp_path / f"{recipe}.log").read_text()
        assert "resumed from step" in text, (recipe, text[-2000:])
        reference = tmp_path / f"{recipe}_ref"
        assert_same_state(restore_model(tmp_path / recipe)[0], restore_model(reference)[0])
        metrics = model_metrics(reference)
        assert model_metrics(tmp_path / recipe) == metrics, recipe
        losses = [r["loss"] for r in metrics if "loss" in r]
        assert losses[-1] < losses[0], (recipe, losses)
        assert 0.0 <= metrics[-1]["eval_wer"] <= 1.0, recipe


@pytest.mark.parametrize(
    ("variant", "flag", "message"),
    [
        ("nat,ctc", "--config.model.length_mode=offset",
         "model.length_mode 'offset' does not apply to nat_recipe 'ctc'; valid: none"),
        ("nat,cmlm", "--config.glancing=True",
         "glancing does not apply to nat_recipe 'cmlm'; valid: vanilla, ctc, dag"),
        ("nat,dag", "--config.nat_strategy=ctc_beam:4",
         "NAT strategy 'ctc_beam:4' does not apply to nat_recipe 'dag'; valid: dag_greedy, "
         "dag_lookahead, dag_viterbi"),
        ("nat,vanilla", "--config.model.upsample=3",
         "model.upsample 3 does not apply to nat_recipe 'vanilla'; valid: 0 (it applies to "
         "ctc, dag)"),
        ("at,ctc", "", "synthetic.py variants ['ctc'] need nat"),
    ],
)  # fmt: skip
def test_an_option_the_recipe_cannot_take_exits_2_with_one_line(
    variant, flag, message, tmp_path, data_dir
):
    args = [f"--config={CONFIGS / 'synthetic.py'}:{variant},quick", f"--workdir={tmp_path}"]
    base = cli_command("synthetic.py:nat,quick", tmp_path, data_dir)[:2]
    run = subprocess.run(
        [*base, *args, *([flag] if flag else [])],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0] == "train.py: error: " + message

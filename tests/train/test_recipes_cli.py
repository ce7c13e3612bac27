"""Every NAT recipe's quick form: it trains, resumes bit-identically after dying between
saves (in process; one recipe also from the shell, SIGKILLed); and options its recipe cannot
take are refused in one line."""

import os
import subprocess
import time

import pytest
from train_testing import (
    CONFIGS,
    Crash,
    assert_same_state,
    cli_command,
    crash_after,
    model_metrics,
    quick_config,
)

from attnlab.train import restore_model, train_and_evaluate

# Glancing on every recipe that takes it, so its schedule and keys are resumed too.
SPECS = {
    "vanilla": "synthetic.py:nat,copy,vanilla,glat,quick",
    "cmlm": "synthetic.py:nat,copy,cmlm,quick",
    "eos_canvas": "synthetic.py:nat,copy,eos_canvas,quick",
    "ctc": "synthetic.py:nat,copy,ctc,glat,quick",
    "dag": "synthetic.py:nat,copy,dag,glat,quick",
}
STEPS = {
    "num_train_steps": 20,
    "log_every_steps": 5,
    "eval_every_steps": 20,
    "checkpoint_every_steps": 5,
}


def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def _checkpoints(workdir):
    path = workdir / "checkpoints"
    return [p for p in path.iterdir() if p.name.isdigit()] if path.exists() else []


def _assert_resumed_equals(workdir, reference, recipe):
    assert_same_state(restore_model(workdir)[0], restore_model(reference)[0])
    metrics = model_metrics(reference)
    assert model_metrics(workdir) == metrics, recipe
    losses = [r["loss"] for r in metrics if "loss" in r]
    assert losses[-1] < losses[0], (recipe, losses)
    assert 0.0 <= metrics[-1]["eval_wer"] <= 1.0, recipe


@pytest.fixture(scope="module")
def references(data_dir, tmp_path_factory):
    """Each recipe trained uninterrupted, in process (this also fills the compilation cache)."""
    root = tmp_path_factory.mktemp("recipes")
    for recipe, spec in SPECS.items():
        train_and_evaluate(quick_config(spec, data_dir, **STEPS), root / recipe)
    return root


@pytest.mark.parametrize("recipe", list(SPECS))
def test_every_recipe_resumes_bit_identically_after_a_crash(
    recipe, references, data_dir, tmp_path, monkeypatch
):
    """In process: the run dies between saves (step 7, saves every 5) and is run again."""
    config = quick_config(SPECS[recipe], data_dir, **STEPS)
    crash_after(monkeypatch, 7)
    with pytest.raises(Crash):
        train_and_evaluate(config, tmp_path)
    monkeypatch.undo()
    train_and_evaluate(quick_config(SPECS[recipe], data_dir, **STEPS), tmp_path)
    _assert_resumed_equals(tmp_path, references / recipe, recipe)


def test_the_richest_recipe_survives_sigkill_from_the_shell(references, data_dir, tmp_path):
    """DA-Transformer with glancing (a DAG head, a glancing schedule and its keys) from the
    shell: SIGKILLed at whatever moment its first save lands, then the same command again.
    (Every recipe's crash-and-resume is checked in process above; one shell run here.)"""
    recipe = "dag"
    command = cli_command(SPECS[recipe], tmp_path, data_dir, **STEPS)
    with open(tmp_path.parent / f"{tmp_path.name}.log", "w+") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, env=_env())
        deadline = time.monotonic() + 600
        while proc.poll() is None and not _checkpoints(tmp_path):
            assert time.monotonic() < deadline, "the run saved no checkpoint in time"
            time.sleep(0.05)
        proc.kill()  # SIGKILL
        proc.wait()
        assert subprocess.run(command, stdout=log, stderr=log, env=_env()).returncode == 0
        log.seek(0)
        text = log.read()
    assert "resumed from step" in text, text[-2000:]
    _assert_resumed_equals(tmp_path, references / recipe, recipe)


# Each recipe's check of its options, in process: the message train.py prints, and no workdir.
# The one-line exit itself is the CLI's, the same for every ValueError; it is checked from the
# shell below for one of these, and in test_cli.py for a bad variant (the path of the last one).
REFUSED = [
    ("nat,ctc", {"model.length_mode": "offset"},
     "model.length_mode 'offset' does not apply to nat_recipe 'ctc'; valid: none"),
    ("nat,cmlm", {"glancing": True},
     "glancing does not apply to nat_recipe 'cmlm'; valid: vanilla, ctc, dag"),
    ("nat,dag", {"nat_strategy": "ctc_beam:4"},
     "NAT strategy 'ctc_beam:4' does not apply to nat_recipe 'dag'; valid: dag_greedy, "
     "dag_lookahead, dag_viterbi"),
    ("nat,vanilla", {"model.upsample": 3},
     "model.upsample 3 does not apply to nat_recipe 'vanilla'; valid: 0 (it applies to "
     "ctc, dag)"),
    ("at,ctc", {}, "synthetic.py variants ['ctc'] need nat"),
]  # fmt: skip


@pytest.mark.parametrize(("variant", "override", "message"), REFUSED)
def test_an_option_the_recipe_cannot_take_is_refused_before_any_work(
    variant, override, message, tmp_path, data_dir
):
    with pytest.raises(ValueError) as err:
        train_and_evaluate(
            quick_config(f"synthetic.py:{variant},quick", data_dir, **override), tmp_path / "run"
        )
    assert str(err.value) == message
    assert not (tmp_path / "run").exists()


def test_a_refused_recipe_option_exits_2_with_one_line(tmp_path, data_dir):
    """From the shell, the third case of REFUSED: ``--config.nat_strategy=ctc_beam:4``."""
    variant, override, message = REFUSED[2]
    ((key, value),) = override.items()
    args = [f"--config={CONFIGS / 'synthetic.py'}:{variant},quick", f"--workdir={tmp_path}"]
    base = cli_command("synthetic.py:nat,quick", tmp_path, data_dir)[:2]
    run = subprocess.run(
        [*base, *args, f"--config.{key}={value}"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0] == "train.py: error: " + message

"""The training loop, in process: it learns, resumes exactly, and refuses bad states."""

import json
import os
import shutil
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_testing import (
    RESUME,
    Crash,
    assert_same_state,
    crash_after,
    model_metrics,
    quick_config,
    state_leaves,
)

from attnlab.train import NonFiniteLossError, restore_model, train_and_evaluate
from attnlab.train import loop as loop_module


def _resume_config(data_dir):
    return quick_config("synthetic.py:nat,quick", data_dir, **RESUME)


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    result = train_and_evaluate(_resume_config(data_dir), workdir)
    model, _ = restore_model(workdir)
    return workdir, result, model


def _assert_trained(workdir, result, name, steps):
    train = [r for r in model_metrics(workdir) if "loss" in r]
    assert [r["step"] for r in train] == steps
    assert train[-1]["loss"] < 0.9 * train[0]["loss"]
    assert result["step"] == steps[-1] and not result["preempted"]
    assert 0.0 <= result["eval_accuracy"] <= 1.0
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"]["name"] == name and saved["model"]["vocab_size"] > 5
    assert list(workdir.glob("events.out.tfevents.*"))


def test_quick_seq2seq_run_trains_evaluates_decodes_and_keeps_two_checkpoints(at_quick_run):
    workdir, result = at_quick_run
    _assert_trained(workdir, result, "seq2seq", list(range(5, 41, 5)))
    assert 0.0 <= result["eval_wer"] <= 1.0 and result["eval_per"] >= 0.0
    assert sorted(os.listdir(workdir / "checkpoints")) == ["20", "40"]


@pytest.mark.parametrize(
    ("spec", "name"), [("address.py:quick", "tagger"), ("syllables.py:quick", "classifier")]
)
def test_taggers_and_classifiers_train_too(spec, name, data_dir, tmp_path):
    result = train_and_evaluate(quick_config(spec, data_dir), tmp_path)
    _assert_trained(tmp_path, result, name, [10, 20, 30, 40])
    assert "eval_wer" not in result  # nothing to decode


def test_reference_run_writes_every_event(reference):
    workdir, result, _ = reference
    steps = [(r["step"], "loss" in r) for r in model_metrics(workdir)]
    assert steps[:4] == [(2, True), (4, True), (5, False), (6, True)]
    assert sorted(int(s) for s in os.listdir(workdir / "checkpoints")) == [3, 6, 9, 12]
    assert {"eval_loss", "eval_length_accuracy", "eval_wer"} <= set(result)


@pytest.mark.parametrize("k", [2, 5, 9])
def test_crash_at_step_k_then_resume_is_bit_identical(
    k, reference, data_dir, tmp_path, monkeypatch
):
    ref_dir, _, ref_model = reference
    crash_after(monkeypatch, k)
    with pytest.raises(Crash):
        train_and_evaluate(_resume_config(data_dir), tmp_path)
    monkeypatch.undo()
    train_and_evaluate(_resume_config(data_dir), tmp_path)
    model, _ = restore_model(tmp_path)
    assert_same_state(model, ref_model)
    assert model_metrics(tmp_path) == model_metrics(ref_dir)


def test_sigterm_during_eval_saves_and_the_eval_is_redone(
    reference, data_dir, tmp_path, monkeypatch
):
    ref_dir, _, ref_model = reference
    real = loop_module.teacher_forced_metrics

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the step-5 evaluation runs
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "teacher_forced_metrics", interrupted)
    result = train_and_evaluate(_resume_config(data_dir), tmp_path)
    monkeypatch.undo()
    assert result["preempted"] and result["step"] == 5
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "5"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was given back
    train_and_evaluate(_resume_config(data_dir), tmp_path)
    model, _ = restore_model(tmp_path)
    assert_same_state(model, ref_model)
    assert model_metrics(tmp_path) == model_metrics(ref_dir)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corrupt_latest_checkpoint_falls_back_and_still_matches(reference, data_dir, tmp_path):
    ref_dir, _, ref_model = reference
    workdir = tmp_path / "run"
    shutil.copytree(ref_dir, workdir)
    shutil.rmtree(workdir / "checkpoints" / "12")
    for f in (workdir / "checkpoints" / "9" / "state").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(b"")
    train_and_evaluate(_resume_config(data_dir), workdir)
    assert (workdir / "corrupt_checkpoints" / "9").is_dir()
    model, _ = restore_model(workdir)
    assert_same_state(model, ref_model)
    assert model_metrics(workdir) == model_metrics(ref_dir)


def _diverging_from(monkeypatch, first_bad_step):
    """Make the train step's update NaN from ``first_bad_step`` on (a stand-in for a run that
    diverges mid-way: resuming with another learning rate is refused, test_first_hour.py)."""
    real = loop_module.make_train_step

    def make(*args, **kwargs):
        step_fn = real(*args, **kwargs)

        def step(state, batch, step_no):
            state, metrics = step_fn(state, batch, step_no)
            if int(step_no) >= first_bad_step:
                poison = lambda x: x * jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else x
                state = jax.tree.map(poison, state)
                metrics = {**metrics, "loss": metrics["loss"] * jnp.nan}
            return state, metrics

        return step

    monkeypatch.setattr(loop_module, "make_train_step", make)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    data_dir, tmp_path, monkeypatch
):
    steps = {"num_train_steps": 4, "checkpoint_every_steps": 2, "eval_every_steps": 100}
    train_and_evaluate(quick_config("synthetic.py:at,quick", data_dir, **steps), tmp_path)
    good = state_leaves(restore_model(tmp_path)[0])
    _diverging_from(monkeypatch, 5)
    expected = r"NaN/Inf at step 5 .*last good checkpoint: step 4"
    with pytest.raises(NonFiniteLossError, match=expected):
        longer = {**steps, "num_train_steps": 10}
        train_and_evaluate(quick_config("synthetic.py:at,quick", data_dir, **longer), tmp_path)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
    after = state_leaves(restore_model(tmp_path)[0])
    for key in good:
        np.testing.assert_array_equal(after[key], good[key])
        assert np.all(np.isfinite(after[key].astype(np.float64)))
    assert max(r["step"] for r in model_metrics(tmp_path)) == 4


def test_a_learning_rate_that_explodes_at_once_says_nothing_was_saved(data_dir, tmp_path):
    steps = {"num_train_steps": 10, "checkpoint_every_steps": 2, "learning_rate": 1e30}
    with pytest.raises(NonFiniteLossError, match=r"no checkpoint was saved before it"):
        train_and_evaluate(quick_config("synthetic.py:at,quick", data_dir, **steps), tmp_path)
    assert not list((tmp_path / "checkpoints").iterdir())


def test_a_checkpoint_of_another_shape_is_a_one_line_error(data_dir, tmp_path):
    steps = {"num_train_steps": 2, "checkpoint_every_steps": 2}
    train_and_evaluate(quick_config("synthetic.py:at,quick", data_dir, **steps), tmp_path)
    wider = quick_config("synthetic.py:at,quick", data_dir, **steps, **{"model.d_model": 48})
    # config.json would refuse the change first (test_first_hour.py); without it, the
    # checkpoint's own record of the model still names the difference.
    (tmp_path / "config.json").unlink()
    with pytest.raises(ValueError) as err:
        train_and_evaluate(wider, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert "does not match the config: parameter params/" in message
    assert "model.d_model is 32 in the checkpoint, 48 now" in message


def test_kept_checkpoint_steps_are_saved_off_the_grid_and_kept(data_dir, tmp_path):
    """``keep_checkpoint_steps``: step 3 is saved though checkpoints fall every 4 steps, and
    stays beside the last ``max_to_keep`` (the AT-vs-NAT report decodes a model there again)."""
    steps = {"num_train_steps": 9, "checkpoint_every_steps": 4, "eval_every_steps": 100}
    steps.update(max_to_keep=1, keep_checkpoint_steps=(3,))
    train_and_evaluate(quick_config("synthetic.py:at,quick", data_dir, **steps), tmp_path)
    assert sorted(int(s) for s in os.listdir(tmp_path / "checkpoints")) == [3, 9]
    with pytest.raises(ValueError, match="keep_checkpoint_steps must be steps in"):
        bad = {**steps, "keep_checkpoint_steps": (0,)}
        train_and_evaluate(quick_config("synthetic.py:at,quick", data_dir, **bad), tmp_path / "b")

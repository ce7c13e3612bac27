"""Checkpoints: exact round trips, unfinished and corrupt steps, shape mismatches."""

import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attnlab.train.checkpoint import (
    Checkpointer,
    CheckpointMismatchError,
    flatten_state,
    unflatten_state,
)
from attnlab.train.steps import init_state


class Tiny(nnx.Module):
    def __init__(self, width, rngs):
        self.linear = nnx.Linear(3, width, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.drop(self.linear(x), deterministic=False)


def _state(width=4, seed=0):
    return init_state(Tiny(width, nnx.Rngs(seed)), optax.adam(1e-3))


def _leaves_equal(a, b):
    fa, fb = flatten_state(a), flatten_state(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(np.asarray(fa[k]), np.asarray(fb[k]), err_msg=k)


def test_names_read_like_parameter_paths_and_keys_become_raw_data():
    _, state = _state()
    flat = flatten_state(state)
    assert "params/linear/kernel" in flat
    assert "opt/0/mu/linear/kernel" in flat
    key_names = [k for k in flat if k.endswith("rngs/key")]
    assert key_names and all(flat[k].dtype == jnp.uint32 for k in key_names)


def test_round_trip_restores_every_leaf_exactly_including_rng(tmp_path):
    graphdef, state = _state(seed=3)
    model = nnx.merge(graphdef, state["params"], state["rest"])
    model(jnp.ones((2, 3)))  # advance the dropout stream so the counter is non-zero
    _, params, rest = nnx.split(model, nnx.Param, ...)
    state = {"params": params, "rest": rest, "opt": state["opt"]}
    ckpt = Checkpointer(tmp_path / "ckpt", max_to_keep=2)
    ckpt.save(7, state, {"step": 7, "data": {"index": 3}})
    ckpt.wait()
    _, template = _state(seed=99)
    restored, meta = ckpt.restore(template, model_config={})
    ckpt.close()
    assert meta == {"step": 7, "data": {"index": 3}}
    _leaves_equal(restored, state)
    a = nnx.merge(graphdef, restored["params"], restored["rest"])(jnp.ones((2, 3)))
    b = model(jnp.ones((2, 3)))
    np.testing.assert_array_equal(a, b)  # same dropout mask: the RNG stream was restored


def test_max_to_keep_and_unfinished_saves_are_removed(tmp_path):
    _, state = _state()
    ckpt = Checkpointer(tmp_path, max_to_keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, state, {"step": step})
    ckpt.wait()
    ckpt.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2", "3"]
    # A run killed mid-save leaves a temporary directory; it is never a step.
    shutil.copytree(tmp_path / "3", tmp_path / "4.orbax-checkpoint-tmp-1234")
    ckpt = Checkpointer(tmp_path, max_to_keep=2)
    assert ckpt.all_steps() == [2, 3]
    assert not list(tmp_path.glob("*tmp*"))
    ckpt.close()


def test_kept_steps_outlive_max_to_keep_also_after_a_reopen(tmp_path):
    """``keep_steps`` (config ``keep_checkpoint_steps``): kept besides the last ``max_to_keep``,
    also by a manager opened later (a resumed run), and never kept where not asked."""
    _, state = _state()
    ckpt = Checkpointer(tmp_path, max_to_keep=2, keep_steps=(2, 4))
    for step in (1, 2, 3, 4, 5, 6):
        ckpt.save(step, state, {"step": step})
    ckpt.wait()
    ckpt.close()
    assert sorted(int(p.name) for p in tmp_path.iterdir()) == [2, 4, 5, 6]
    ckpt = Checkpointer(tmp_path, max_to_keep=2, keep_steps=(2, 4))
    for step in (7, 8):
        ckpt.save(step, state, {"step": step})
    ckpt.wait()
    assert ckpt.all_steps() == [2, 4, 7, 8]
    ckpt.close()
    ckpt = Checkpointer(tmp_path, max_to_keep=2)  # no kept steps: only the last two stay
    ckpt.save(9, state, {"step": 9})
    ckpt.wait()
    assert ckpt.all_steps() == [8, 9]
    ckpt.close()


def _kept(saves, **schedule):
    """The steps left after ``saves``, each a save and a close (a stop and a resume)."""
    _, state = _state()
    with tempfile.TemporaryDirectory() as path:
        for step in saves:
            ckpt = Checkpointer(path, max_to_keep=3, **schedule)
            ckpt.save(step, state, {"step": step})
            ckpt.wait()
            ckpt.close()
        return Checkpointer(path, max_to_keep=3, read_only=True).all_steps()


def test_a_save_off_the_schedule_is_kept_only_while_it_is_the_newest():
    """A run stopped at step 72 (saving every 10, 3 kept, 100 steps) and resumed ends with the
    checkpoints of the same run uninterrupted, so the last-3 average is the same too; without
    the schedule, the stop's save displaces step 60 (LatestN)."""
    schedule = dict(every_steps=10, last_step=100)
    uninterrupted = _kept(range(10, 101, 10), **schedule)
    assert uninterrupted == [80, 90, 100]
    assert _kept([10, 20, 30, 40, 50, 60, 70, 72, 80], **schedule) == [60, 70, 80]
    assert _kept([10, 20, 30, 40, 50, 60, 70, 72], **schedule) == [50, 60, 70, 72]  # resume
    stopped = [*range(10, 71, 10), 72, *range(80, 101, 10)]
    assert _kept(stopped, **schedule) == uninterrupted
    assert _kept([10, 20, 25], every_steps=10, last_step=25) == [10, 20, 25]  # the last step
    assert _kept([10, 20, 30, 40, 50, 60, 70, 72, 80]) == [70, 72, 80]  # no schedule: LatestN


# tensorstore reports the failed read once more from a closed event loop; harmless.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corrupt_latest_step_falls_back_to_previous_with_warning(tmp_path, caplog):
    _, s1 = _state(seed=1)
    _, s2 = _state(seed=2)
    ckpt = Checkpointer(tmp_path / "checkpoints", max_to_keep=3)
    ckpt.save(1, s1, {"step": 1})
    ckpt.save(2, s2, {"step": 2})
    ckpt.wait()
    ckpt.close()
    for f in (tmp_path / "checkpoints" / "2" / "state").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(f.read_bytes()[:5])  # truncate the array data
    ckpt = Checkpointer(tmp_path / "checkpoints", max_to_keep=3)
    with caplog.at_level("WARNING"):
        restored, meta = ckpt.restore(_state(seed=5)[1], model_config={})
    assert meta["step"] == 1
    _leaves_equal(restored, s1)
    assert "step 2 is unreadable" in caplog.text
    assert ckpt.all_steps() == [1]
    assert (tmp_path / "corrupt_checkpoints" / "2").is_dir()
    ckpt.close()


def test_shape_mismatch_names_the_parameter_and_the_config_key(tmp_path):
    _, state = _state(width=4)
    ckpt = Checkpointer(tmp_path, max_to_keep=1)
    ckpt.save(1, state, {"step": 1, "model": {"d_model": 4, "dropout": 0.1}})
    ckpt.wait()
    with pytest.raises(CheckpointMismatchError) as err:
        ckpt.restore(_state(width=6)[1], model_config={"d_model": 6, "dropout": 0.1})
    ckpt.close()
    message = str(err.value)
    assert "\n" not in message
    assert "params/linear/bias has shape (4,) in the checkpoint, (6,) in the model" in message
    assert "model.d_model is 4 in the checkpoint, 6 now" in message
    assert "dropout" not in message


def test_unflatten_rewraps_rng_keys():
    _, state = _state()
    back = unflatten_state(state, flatten_state(state))
    keys = [x for x in jax.tree.leaves(back) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)]
    assert keys


def test_restore_model_averages_the_last_checkpoints_weights(data_dir, tmp_path):
    """Averaging the checkpoints of steps 2 and 4 equals averaging two runs stopped there."""
    from train_testing import quick_config, state_leaves

    from attnlab.train import restore_model, train_and_evaluate
    from attnlab.train.restore import restore

    runs = {}
    for steps in (2, 4):
        config = quick_config(
            "synthetic.py:at,quick",
            data_dir,
            num_train_steps=steps,
            checkpoint_every_steps=2,
            eval_every_steps=100,
        )
        train_and_evaluate(config, tmp_path / f"run{steps}")
        runs[steps] = state_leaves(restore_model(tmp_path / f"run{steps}")[0])
    averaged = state_leaves(restore_model(tmp_path / "run4", average_last=2)[0])
    assert averaged.keys() == runs[4].keys()
    changed = 0
    for key, value in averaged.items():
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(
                value, (runs[2][key] + runs[4][key]) / 2, rtol=1e-6, atol=1e-7, err_msg=key
            )
            changed += not np.array_equal(value, runs[4][key])
        else:  # RNG keys and counters come from the latest checkpoint
            np.testing.assert_array_equal(value, runs[4][key], err_msg=key)
    assert changed > 10  # the two steps differ, so the average is not the latest checkpoint
    with pytest.raises(ValueError, match="average_last must be at least 1"):
        restore_model(tmp_path / "run4", average_last=0)
    # A chosen step: that checkpoint (averages end there), and the step is reported.
    model, _, step = restore(tmp_path / "run4", step=2, average_last=2)
    assert step == 2 and _same_leaves(state_leaves(model), runs[2])
    # An unreadable step: refused when asked for by name, skipped otherwise (read only).
    for f in (tmp_path / "run4" / "checkpoints" / "4" / "state").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="checkpoint of step 4 in .* is unreadable"):
        restore_model(tmp_path / "run4", step=4)
    model, _, step = restore(tmp_path / "run4")
    assert step == 2 and _same_leaves(state_leaves(model), runs[2])
    assert (tmp_path / "run4" / "checkpoints" / "4").is_dir()


def _same_leaves(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_asyncio_echoes_of_a_set_aside_read_are_dropped_and_other_reports_kept(monkeypatch):
    """A corrupt step's failed read may leave asyncio tasks whose exception is reported when
    they are collected, after the one-line warning; other asyncio errors still show."""
    import logging
    import threading

    from attnlab.train import checkpoint as ckpt

    set_aside = threading.Event()
    monkeypatch.setattr(ckpt, "_SET_ASIDE", set_aside)
    echoes = ckpt._AsyncioEchoes()

    def record(msg, error):
        exc_info = (type(error), error, None)
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, exc_info)

    unretrieved = record("Task exception was never retrieved\nfuture: <Task>", ValueError("x"))
    assert echoes.filter(unretrieved)  # no step set aside yet: shown
    closed = record("Exception in callback", RuntimeError("Event loop is closed"))
    assert not echoes.filter(closed)
    set_aside.set()
    assert not echoes.filter(unretrieved)
    assert echoes.filter(record("Unclosed client session", ValueError("x")))


def test_restore_compiles_nothing_and_equals_a_restore_into_a_built_state(
    data_dir, tmp_path, compilations
):
    """``restore`` reads into a template of shapes (``train_state_template``), not a state
    built by running the initialisers: same model, RNG keys included, and no compile."""
    from train_testing import quick_config, state_leaves

    from attnlab.train import train_and_evaluate
    from attnlab.train.resolve import create_train_state
    from attnlab.train.restore import restore
    from attnlab.train.steps import merge_model

    config = quick_config(
        "synthetic.py:at,quick", data_dir, num_train_steps=2, eval_every_steps=100
    )
    train_and_evaluate(config, tmp_path)
    with compilations() as events:
        model, trained, step = restore(tmp_path)
    assert step == 2 and events  # tracing for shapes (eval_shape) only:
    assert not [e for e in events if "backend_compile" in e or "lowering" in e], events
    graphdef, built, _ = create_train_state(trained)
    ckpt = Checkpointer(tmp_path / "checkpoints", max_to_keep=1, read_only=True)
    try:
        state, _ = ckpt.restore(built, model_config=trained.model.to_dict())
    finally:
        ckpt.close()
    reference = state_leaves(merge_model(graphdef, state))
    leaves = state_leaves(model)
    assert leaves.keys() == reference.keys()
    kinds = [x.dtype for x in jax.tree.leaves(nnx.state(model))]
    assert any(jax.dtypes.issubdtype(k, jax.dtypes.prng_key) for k in kinds)  # keys restored
    for key, value in reference.items():
        assert leaves[key].dtype == value.dtype, key
        np.testing.assert_array_equal(leaves[key], value, err_msg=key)

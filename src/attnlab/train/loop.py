"""``train_and_evaluate(config, workdir)``: the resumable training loop.

One run, step by step:
1. Check the config (first what needs no data, then the dataset's sizes), make the workdir
   and write ``DIR/config.json``: a refused config leaves nothing behind.
2. Build the model, split it into ``(graphdef, state)``, replicate the state over the mesh.
3. Restore the latest readable checkpoint, if any: state, data position, metric window.
4. Loop: fetch a batch, take a jitted step, check the previous step's loss on the host
   (one step behind, so the device never waits), log, evaluate, save.
5. Save at every ``checkpoint_every_steps``, at each of ``keep_checkpoint_steps`` (kept besides
   the last ``max_to_keep``), at the last step, and on SIGTERM (kept while it is the newest:
   ``max_to_keep`` counts the scheduled saves). A non-finite loss, gradient or parameter norm
   raises ``NonFiniteLossError`` before anything is saved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from attnlab.data import make_eval_batches, make_train_iterator, take_rows
from attnlab.train.checkpoint import Checkpointer
from attnlab.train.config import check_config
from attnlab.train.evaluate import decoding_metrics, teacher_forced_metrics
from attnlab.train.optim import learning_rate_schedule
from attnlab.train.preemption import PreemptionGuard
from attnlab.train.resolve import create_train_state, fit_to_data
from attnlab.train.sharding import (
    agree_any,
    assert_same_everywhere,
    host_local,
    make_mesh,
    process_rows,
    shard_batch,
    state_shardings,
)
from attnlab.train.steps import make_eval_step, make_train_step, merge_model
from attnlab.train.workdir import (
    WorkdirError,
    check_resume,
    check_writable,
    has_history,
    hold_workdir,
    write_config,
)
from attnlab.train.writers import MetricWriter, log_progress, read_metrics

_CHECKED = ("loss", "grad_norm", "param_norm")


class NonFiniteLossError(FloatingPointError):
    """The loss (or the update) became NaN or Inf; nothing from that step was saved."""


class NoReadableCheckpointError(ValueError):
    """Every checkpoint of the workdir is unreadable, and starting over was not asked for."""


def _count_tokens(batch: dict[str, np.ndarray]) -> int:
    """Non-PAD source and target tokens of this process's batch."""
    return sum(int(np.count_nonzero(batch[k])) for k in ("inputs", "targets") if k in batch)


@dataclasses.dataclass
class _Clock:
    """Training throughput since the last log line; evaluation time is not counted."""

    start: float = dataclasses.field(default_factory=time.perf_counter)
    steps: int = 0
    tokens: int = 0

    def rates(self) -> tuple[float, float]:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return self.steps / elapsed, self.tokens * jax.process_count() / elapsed


class _Run:
    """The state of one training process; ``run()`` is the loop."""

    def __init__(self, config: ml_collections.ConfigDict, info: Any, workdir: Path) -> None:
        self.config, self.info = config, info  # accepted: checked and fitted to the data
        self.workdir = workdir
        self.primary = jax.process_index() == 0
        had_checkpoints = has_history(workdir)
        if self.primary:
            write_config(workdir, config)  # makes the workdir if it is new
        self.mesh = make_mesh()
        rows = process_rows(config.batch_size, self.mesh)
        self.eval_rows = process_rows(config.eval_batch_size, self.mesh)
        logging.info(
            "data parallel over %d devices in %d processes: global batch %d, %d per device; "
            "state: %s; compute: %s",
            self.mesh.size,
            jax.process_count(),
            config.batch_size,
            config.batch_size // self.mesh.size,
            config.sharding,
            config.compute_dtype,
        )
        self.graphdef, self.state, optimizer = create_train_state(
            config, lambda abstract: state_shardings(abstract, self.mesh, config.sharding)
        )
        shardings = jax.tree.map(lambda x: x.sharding, self.state)
        self.train_step = make_train_step(
            self.graphdef, optimizer, config, state_sharding=shardings
        )
        self.eval_step = make_eval_step(self.graphdef, config)
        self.schedule = learning_rate_schedule(config)
        self.ckpt = Checkpointer(
            workdir / "checkpoints",
            max_to_keep=config.max_to_keep,
            keep_steps=config.keep_checkpoint_steps,
            every_steps=config.checkpoint_every_steps,
            last_step=config.num_train_steps,
        )

        try:  # the checkpointer's threads must not outlive a failed set-up (nor a signal)
            started = time.perf_counter()
            restored = self.ckpt.restore(self.state, model_config=config.model.to_dict())
            if restored is None and had_checkpoints:
                if not config.restart_if_unreadable:
                    raise NoReadableCheckpointError(
                        f"no readable checkpoint in {workdir / 'checkpoints'} (the unreadable ones "
                        f"are in {workdir / 'corrupt_checkpoints'}); refusing to start over from "
                        "step 0: add --config.restart_if_unreadable=true to do that"
                    )
                logging.warning("no readable checkpoint: starting over from step 0, as asked")
            self.step, self.window, self.pending_eval, data_state = 0, _empty_window(), False, None
            if restored is not None:
                self.state, meta = restored
                self.step, self.window = int(meta["step"]), meta["window"]
                self.pending_eval, data_state = bool(meta.get("pending_eval")), meta["data"]
            # One global batch plan, the same on every process; each process takes its rows.
            self.train_iter = make_train_iterator(
                config.data, batch_size=config.batch_size, seed=config.seed, rows=rows
            )
            if data_state is not None:
                self.train_iter.set_state(data_state)
                logging.info(
                    "resumed from step %d in %.2f s", self.step, time.perf_counter() - started
                )
            self.eval_batches = [
                take_rows(batch, self.eval_rows)
                for batch in make_eval_batches(
                    config.data, config.eval_split, batch_size=config.eval_batch_size
                )
            ]
            self.writer = MetricWriter(workdir, start_step=self.step, primary=self.primary)
            self.last_train: dict[str, float] = {}
            self.last_eval: dict[str, float] = {}
            self.saved_step = self.step if restored is not None else None
        except BaseException:
            self.ckpt.close()
            raise

    # --- host-side bookkeeping -------------------------------------------------------------
    def _absorb(self, step: int, metrics: dict) -> None:
        """Check one step's metrics on the host and add them to the logging window."""
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not all(np.isfinite(values[k]) for k in _CHECKED):
            detail = ", ".join(f"{k}={values[k]:.4g}" for k in _CHECKED)
            raise NonFiniteLossError(
                f"NaN/Inf at step {step} ({detail}); stopped without saving it; "
                + (
                    f"last good checkpoint: step {self.ckpt.latest_step()}"
                    if self.ckpt.latest_step() is not None
                    else "no checkpoint was saved before it"
                )
            )
        sums = self.window["sums"]
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        self.window["steps"] += 1

    def _log_train(self, step: int) -> None:
        n = max(self.window["steps"], 1)
        metrics = {k: v / n for k, v in self.window["sums"].items()}
        metrics["learning_rate"] = float(self.schedule(jnp.asarray(step - 1)))
        metrics["steps_per_sec"], metrics["tokens_per_sec"] = self.clock.rates()
        self.writer.write(step, metrics)
        # The first interval of this process includes compiling the step: no ETA from it.
        log_progress(step, self.config.num_train_steps, metrics, compiled=not self.last_train)
        self.last_train = metrics
        self.window = _empty_window()
        self.clock = _Clock()

    def _stop_requested(self, guard: PreemptionGuard) -> bool:
        """Whether any process was asked to stop (a collective: every process calls it at the
        same points, so all of them stop, and save, at the same step)."""
        self.stopping = agree_any(guard.requested) or self.stopping
        return self.stopping

    def _evaluate(self, step: int, guard: PreemptionGuard) -> bool:
        """Evaluate and write the metrics; False if SIGTERM cut it short."""
        started = time.perf_counter()
        stop = lambda: self._stop_requested(guard)  # noqa: E731
        metrics = teacher_forced_metrics(
            self.eval_step, self.state, self.eval_batches, self.mesh, should_stop=stop
        )
        if metrics is None:
            return False
        model = merge_model(self.graphdef, host_local(self.state))
        decoded = decoding_metrics(
            model,
            self.eval_batches,
            self.config,
            self.info.tgt_vocab,
            should_stop=stop,
            global_batch_size=self.config.eval_batch_size,
            rows=self.eval_rows,
        )
        if decoded is None:
            return False
        metrics.update(decoded)
        metrics["eval_seconds"] = time.perf_counter() - started
        self.writer.write(step, metrics)
        logging.info("eval at step %d: %s", step, json.dumps(metrics))
        self.last_eval = metrics
        return True

    def _save(self, step: int, *, pending_eval: bool = False) -> None:
        # The plan's position is global: the primary writes it, and it must hold everywhere.
        data = self.train_iter.get_state()
        assert_same_everywhere(np.asarray([step, data["position"]]), "the step or data position")
        meta = {
            "step": step,
            "data": data,
            "window": self.window,
            "pending_eval": pending_eval,
            "model": self.config.model.to_dict(),
        }
        self.ckpt.save(step, self.state, meta)
        self.saved_step = step
        self.writer.flush()

    # --- the loop --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        config = self.config
        total = int(config.num_train_steps)
        preempted, self.stopping = False, False
        self.clock = _Clock()
        with PreemptionGuard() as guard:
            if self.pending_eval and not self._evaluate(self.step, guard):
                return self._finish(preempted=True, guard=guard)
            pending = None
            for step in range(self.step + 1, total + 1):
                batch = next(self.train_iter)
                self.clock.tokens += _count_tokens(batch)
                self.state, metrics = self.train_step(
                    self.state, shard_batch(batch, self.mesh), jnp.asarray(step, jnp.int32)
                )
                self.clock.steps += 1
                if pending is not None:
                    self._absorb(*pending)
                pending = (step, metrics)
                self.step = step
                last = step == total
                log_now = step % config.log_every_steps == 0 or last
                eval_now = step % config.eval_every_steps == 0 or last
                stop = self._stop_requested(guard)
                save_now = step % config.checkpoint_every_steps == 0 or last or stop
                save_now = save_now or step in config.keep_checkpoint_steps
                if not (log_now or eval_now or save_now):
                    continue
                self._absorb(*pending)
                pending = None
                if log_now:
                    self._log_train(step)
                paused = time.perf_counter()
                evaluated = eval_now and self._evaluate(step, guard)
                self.clock.start += time.perf_counter() - paused
                if save_now or self.stopping:
                    self._save(step, pending_eval=eval_now and not evaluated)
                if self.stopping:
                    preempted = True
                    break
            if self.saved_step != self.step and self.stopping:
                self._save(self.step)
            # Inside the guard: a second Ctrl-C cannot interrupt the save's last writes.
            return self._finish(preempted=preempted or self.stopping, guard=guard)

    def _finish(self, *, preempted: bool, guard: PreemptionGuard) -> dict[str, Any]:
        self.close()
        result = {"step": self.step, "preempted": preempted}
        if preempted:
            result["signal"] = guard.signal_name or "a signal to another process"
            logging.info("stopped at step %d on %s; checkpoint saved", self.step, result["signal"])
        if not (self.last_train or self.last_eval):  # nothing ran now: report the record
            return {**_recorded_metrics(self.workdir), **result}
        return {**result, **self.last_train, **self.last_eval}

    def close(self) -> None:
        self.ckpt.wait()
        self.ckpt.close()
        self.writer.close()


def _empty_window() -> dict[str, Any]:
    return {"sums": {}, "steps": 0}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
    """Train ``config`` in ``workdir`` (resuming from its latest checkpoint); final metrics.

    Returns ``{"step", "preempted", <last train metrics>, <last eval metrics>}``. Raises
    ValueError for a bad config or a checkpoint of another shape, and ``NonFiniteLossError``
    when the loss diverges.
    """
    workdir = Path(workdir)
    # Every check that needs no data, a changed config on resume and an unwritable workdir
    # are refused before the dataset, the backend or the logs start; then the checks that
    # need the data. Nothing is written before the run is accepted (no new directory).
    config = check_config(config)
    check_resume(workdir, config, resolved=False)
    try:
        check_writable(workdir)
    except WorkdirError:  # a read-only workdir may still hold a finished run to report
        finished = _finished(config, workdir)
        if finished is None:
            raise
        return finished
    with hold_workdir(workdir):  # before the data starts or anything is written: one run per dir
        config, info = fit_to_data(config)
        check_resume(workdir, config)  # the dataset's sizes too
        run = _Run(config, info, workdir)
        try:
            return run.run()
        except BaseException:
            run.close()
            raise


def _finished(config: ml_collections.ConfigDict, workdir: Path) -> dict | None:
    """The result of a finished run, read from its files without building anything.

    Finished means: the latest checkpoint is at ``num_train_steps`` or later, its evaluation
    was not cut short, and the config may resume it. Only its metadata is read, so a corrupt
    state would go unnoticed: this is for workdirs we cannot write (a read-only mount), where
    nothing could be repaired anyway; a writable workdir takes the full restore.
    """
    if not (workdir / "checkpoints").is_dir() or not (workdir / "config.json").exists():
        return None
    config = fit_to_data(config)[0]
    check_resume(workdir, config)
    ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=1, read_only=True)
    try:
        meta = ckpt.latest_meta()
    finally:
        ckpt.close()
    if meta is None or int(meta["step"]) < config.num_train_steps or meta.get("pending_eval"):
        return None
    step = int(meta["step"])
    logging.info(
        "the run in %s is finished: step %d of %d (read-only workdir: nothing written)",
        workdir,
        step,
        config.num_train_steps,
    )
    return {**_recorded_metrics(workdir), "step": step, "preempted": False}


def _recorded_metrics(workdir: Path) -> dict[str, float]:
    """The latest value of every metric in ``metrics.jsonl``."""
    last: dict[str, float] = {}
    for record in read_metrics(workdir):
        last.update({k: v for k, v in record.items() if k != "step"})
    return last

"""Checkpoints: an orbax ``CheckpointManager`` under ``DIR/checkpoints``.

Each step directory holds two items:
- ``state``: the train state flattened to ``{"params/encoder/.../kernel": array, ...}`` (RNG key
  arrays stored as their raw ``key_data``), so names in errors read like parameter paths;
- ``meta``: JSON with the step, the data iterator position, the metric window and the model
  config that produced the state.

Orbax writes a step into ``<step>.orbax-checkpoint-tmp-*`` and renames it when complete, so a
run killed during a save leaves only a temporary directory, which is removed on start. A
latest step that cannot be read is moved to ``DIR/corrupt_checkpoints/`` with a warning and the
previous step is used. A step whose shapes differ from the model is a config error.

Given the run's saving schedule (``every_steps``), ``max_to_keep`` counts the saves on it; a
save off it (a preemption's) is kept only while it is the newest, as the point to resume from.
So a run stopped and resumed ends with the checkpoints of the same run uninterrupted, and
``restore(average_last=N)`` averages the same ones.
"""

from __future__ import annotations

import dataclasses
import gc
import logging as std_logging
import os
import re
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from attnlab.train import hooks

_TMP_MARK = ".orbax-checkpoint-tmp"


@dataclasses.dataclass
class _LatestOnSchedule:
    """An orbax preservation policy: the latest ``n`` steps of the schedule (multiples of
    ``every``, and ``last``), and the newest step whatever it is."""

    n: int
    every: int
    last: int = 0

    def should_preserve(self, checkpoints, *, context) -> list[bool]:
        del context
        steps = [int(c.step) for c in checkpoints]
        scheduled = [s for s in steps if s % self.every == 0 or s == self.last]
        kept = set(sorted(scheduled)[-self.n :]) | ({max(steps)} if steps else set())
        return [s in kept for s in steps]


def _name(path: tuple) -> str:
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
    if parts and parts[-1] == "value":  # nnx.Variable's payload
        parts.pop()
    return "/".join(parts)


def _is_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def flatten_state(state: Any) -> dict[str, Any]:
    """``{path name: array}`` with RNG keys replaced by their ``key_data``."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    flat = {_name(path): (jax.random.key_data(x) if _is_key(x) else x) for path, x in leaves}
    if len(flat) != len(leaves):
        raise ValueError("two state leaves share a checkpoint name")
    return flat


def unflatten_state(template: Any, flat: Mapping[str, Any]) -> Any:
    """Put ``flat`` arrays back into ``template``'s structure, re-wrapping RNG keys."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for path, like in leaves:
        value = flat[_name(path)]
        if _is_key(like):
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(like))
        out.append(value)
    return jax.tree_util.tree_unflatten(treedef, out)


def _abstract(template: Any) -> dict[str, jax.ShapeDtypeStruct]:
    def spec(x):
        sharding = getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return {name: spec(x) for name, x in flatten_state(template).items()}


def _config_diff(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str:
    if not saved:
        return ""
    keys = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    diffs = [
        f"model.{k} is {saved.get(k)!r} in the checkpoint, {current.get(k)!r} now" for k in keys
    ]
    return f" ({'; '.join(diffs)})" if diffs else ""


# What a failed orbax read leaves behind: TensorStore callbacks into asyncio loops that have
# closed, and coroutines that fail when collected, each printing a traceback from a worker
# thread or at exit (thousands of lines for one bad checkpoint). The read error itself is
# reported in one line; these echoes of it are dropped.
_LEFTOVER_ERRORS = ("Event loop is closed", "Encountered error while reading array index")
# Set once this process has set a step aside: from then on, asyncio's reports of read tasks
# whose exception nobody retrieved (logged when the task is collected, at any later moment)
# are echoes of that read.
_SET_ASIDE = threading.Event()


def _is_leftover(error: BaseException | None) -> bool:
    return any(text in str(error) for text in _LEFTOVER_ERRORS)


class _AsyncioEchoes(std_logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for a failed checkpoint read."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        unretrieved = str(record.msg).startswith("Task exception was never retrieved")
        return not (_is_leftover(error) or (unretrieved and _SET_ASIDE.is_set()))


_ASYNCIO_ECHOES = _AsyncioEchoes()


def _drop_leftover_reports() -> None:
    """Filter the echoes of a failed read out of Python's error hooks and asyncio's log."""
    hooks.drop(_is_leftover)
    std_logging.getLogger("asyncio").addFilter(_ASYNCIO_ECHOES)  # added once, however often called


def _reason(err: Exception) -> str:
    """The first sentence of a read error, without TensorStore's object dump."""
    text = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.split(r"\.?\s*See full TensorStore details", text)[0]
    return text if len(text) <= 160 else text[:157] + "..."


class CheckpointMismatchError(ValueError):
    """The checkpoint was written by a model of a different shape."""


class Checkpointer:
    """Save and restore ``(train state, meta)`` pairs by step."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int,
        keep_steps: Sequence[int] = (),
        every_steps: int = 0,
        last_step: int = 0,
        read_only: bool = False,
    ) -> None:
        """``max_to_keep`` latest steps are kept, and every step of ``keep_steps`` besides. With
        ``every_steps``, the latest ``max_to_keep`` of the schedule (its multiples, and
        ``last_step``) and the newest step (module doc)."""
        self.directory = Path(directory).absolute()
        self.read_only = read_only
        if not read_only and jax.process_index() == 0 and self.directory.exists():
            for tmp in self.directory.glob(f"*{_TMP_MARK}*"):
                logging.warning("removing unfinished checkpoint %s", tmp)
                shutil.rmtree(tmp, ignore_errors=True)
        if not read_only and jax.process_count() > 1:  # the others wait for that clean-up
            multihost_utils.sync_global_devices("attnlab:checkpoints-cleaned")
        # orbax's preservation policies: any step that one of them keeps stays.
        keep = ocp.checkpoint_managers
        latest = (
            _LatestOnSchedule(n=max_to_keep, every=every_steps, last=last_step)
            if every_steps > 0
            else keep.LatestN(n=max_to_keep)
        )
        policy = keep.AnyPreservationPolicy(
            [latest, keep.CustomSteps(steps=[int(s) for s in keep_steps])]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=None if read_only else policy,
            save_interval_steps=0 if read_only else 1,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            read_only=read_only,
        )
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=handlers
        )

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def latest_meta(self) -> dict[str, Any] | None:
        """The ``meta`` item of the latest step (cheap: no arrays), or None if unreadable."""
        step = self._manager.latest_step()
        if step is None:
            return None
        try:
            args = ocp.args.Composite(meta=ocp.args.JsonRestore())
            return dict(self._manager.restore(step, args=args)["meta"])
        except Exception:  # noqa: BLE001 - the full restore deals with (and reports) it
            return None

    def save(self, step: int, state: Any, meta: Mapping[str, Any]) -> None:
        """Start an (asynchronous) save of ``state`` and ``meta`` at ``step``."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(flatten_state(state)), meta=ocp.args.JsonSave(dict(meta))
        )
        self._manager.save(step, args=args, force=True)

    def wait(self) -> None:
        """Block until every started save is on disk."""
        if self._manager is not None:
            self._manager.wait_until_finished()

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    def restore(
        self, template: Any, *, model_config: Mapping[str, Any], only_step: int | None = None
    ) -> tuple[Any, dict[str, Any]] | None:
        """Restore the latest readable step (or just ``only_step``) into ``template``'s structure.

        Returns ``(state, meta)``, or None when there is no (readable) checkpoint. Unreadable
        steps are set aside with a warning; a shape mismatch raises ``CheckpointMismatchError``.
        """
        abstract = _abstract(template)
        _drop_leftover_reports()  # before any read: a failure's echoes start at once
        steps = reversed(self.all_steps()) if only_step is None else [only_step]
        for step in steps:
            found = self._read_step(step, template, abstract, model_config)
            if found is not None:
                return found
        return None

    def _read_step(self, step, template, abstract, model_config):
        """``(state, meta)`` of ``step``, or None after setting an unreadable step aside."""
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            saved = self._manager.item_metadata(step)["state"]
            saved = {name: tuple(md.shape) for name, md in saved.tree.items()}
        except Exception as err:  # noqa: BLE001 - any read failure means a bad step
            self._set_aside(step, err)
            return None
        meta = dict(meta["meta"])
        self._check_shapes(step, saved, abstract, meta.get("model"), model_config)
        try:
            args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            flat = self._manager.restore(step, args=args)["state"]
        except Exception as err:  # noqa: BLE001
            self._set_aside(step, err)
            return None
        return unflatten_state(template, flat), meta

    def _check_shapes(self, step, saved, abstract, saved_model, model_config) -> None:
        where = f"checkpoint {self.directory / str(step)} does not match the config"
        hint = _config_diff(saved_model, dict(model_config))
        order = {"params": 0, "rest": 1}  # name a parameter first, optimizer slots last
        for name in sorted(abstract, key=lambda n: order.get(n.split("/")[0], 2)):
            spec = abstract[name]
            if name not in saved:
                raise CheckpointMismatchError(f"{where}: parameter {name} is not in it{hint}")
            if tuple(saved[name]) != tuple(spec.shape):
                raise CheckpointMismatchError(
                    f"{where}: parameter {name} has shape {tuple(saved[name])} in the checkpoint, "
                    f"{tuple(spec.shape)} in the model{hint}"
                )
        extra = sorted(set(saved) - set(abstract))
        if extra:
            raise CheckpointMismatchError(
                f"{where}: parameter {extra[0]} is in the checkpoint, not in the model{hint}"
            )

    def _set_aside(self, step: int, err: Exception) -> None:
        _SET_ASIDE.set()
        gc.collect()  # the failed read's coroutines report now, through the filter
        target = self.directory.parent / "corrupt_checkpoints" / str(step)
        if self.read_only:
            logging.warning("checkpoint step %d is unreadable (%s); skipped", step, _reason(err))
            return
        logging.warning(
            "checkpoint step %d is unreadable (%s); moved it to %s", step, _reason(err), target
        )
        if jax.process_index() == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(self.directory / str(step)), str(target))
        self._manager.reload()

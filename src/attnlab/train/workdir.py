"""The run directory: can we write it, and may this config resume the run it holds?

A workdir remembers the config it was trained with in ``DIR/config.json``. Running again
resumes that run, so the new config must describe the same run: only the keys of
``RESUMABLE_KEYS`` (``attnlab.train.config``) may differ. Anything else is refused with one
line naming each changed key and both values, before anything is written, and before the
dataset, the backend or the logs start (``check_resume(..., resolved=False)`` on the config
before the dataset sets its sizes; once they are set, the full check). ``check_writable``
asks whether the workdir could be written without making it; the directory and its
``config.json`` are written only once the run is accepted (``write_config``), so a refused
config leaves nothing behind, and atomically (a temporary file, then a rename), so an
interrupted write never leaves a half file.

One workdir, one run: ``hold_workdir`` locks ``DIR/.lock`` (``flock``) for as long as the run
trains, before anything is written there. Process 0 of a run takes it and tells the others,
so the N processes of one run share it, while two runs (or N independent 1-process runs that
``srun`` started without cluster detection: each is process 0) collide. The kernel releases
the lock of a killed process, so a SIGKILLed run resumes without any cleaning.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import ml_collections

from attnlab.data import data_config
from attnlab.nn.config import model_config
from attnlab.train.config import RESUMABLE_KEYS, base_config

CONFIG_FILE = "config.json"
# Set by ``fit_to_data`` from the dataset (its sizes and length bound); a config not yet
# resolved holds their defaults, so the check before the data is read leaves them out.
DATASET_KEYS = ("model.max_len", "model.vocab_size", "model.target_vocab_size", "model.num_classes")
LOCK_FILE = ".lock"


class WorkdirError(ValueError):
    """The workdir cannot be used: not writable, under a file, or trained with another config."""


def check_writable(workdir: Path) -> None:
    """Refuse a ``workdir`` that cannot take a file nor be made, in one line. Nothing is left
    behind: a temporary file in the nearest folder that exists, removed at once."""
    nearest = next(path for path in (workdir, *workdir.parents) if path.exists())
    reason = f"{nearest} is a file, not a directory"
    if nearest.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=nearest, prefix=".write_test_"):
                return
        except OSError as err:
            reason = err.strerror or type(err).__name__
    raise WorkdirError(f"cannot write to workdir {workdir}: {reason}; pick another --workdir")


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_as_json(config: ml_collections.ConfigDict) -> str:
    return config.to_json_best_effort(indent=2, sort_keys=True) + "\n"


def saved_config(workdir: Path) -> dict[str, Any] | None:
    path = workdir / CONFIG_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise WorkdirError(f"{path} is unreadable ({err}); pick another --workdir") from None


def config_changes(
    saved: Mapping[str, Any], config: ml_collections.ConfigDict, ignore: tuple[str, ...] = ()
) -> list[str]:
    """``key: old -> new`` for each key that differs and may not change on resume (and is
    not in ``ignore``).

    A key the saved config lacks was added to the code since the run started; the run was
    trained as its default says (a new key's default keeps the old behaviour), so it is
    compared with that default. A key only the saved config has was removed: not a change.
    """
    old, new = _flat(with_defaults(saved)), _flat(json.loads(config_as_json(config)))
    changed = [k for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]
    kept = [k for k in changed if k not in RESUMABLE_KEYS and k not in ignore]
    return [f"{k} is {old[k]!r} there, {new[k]!r} now" for k in kept]


def default_config() -> ml_collections.ConfigDict:
    """Every training, model and data key with its default."""
    config = base_config()
    config.model, config.data = model_config(), data_config()
    return config


def with_defaults(saved: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict:
    """``saved`` (a ``config.json``) with each key it lacks added at its default.

    A run's ``config.json`` lacks the keys added to the code after it started; it trained as
    their defaults say (a new key's default keeps the old behaviour). Filling them in here
    lets the code read every key directly, with its default written once (``model_config``,
    ``data_config``, ``base_config``).
    """
    if defaults is None:
        defaults = json.loads(config_as_json(default_config()))
    out = dict(saved)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, Mapping) and isinstance(out[key], Mapping):
            out[key] = with_defaults(out[key], value)
    return out


def read_trained_config(workdir: Path) -> ml_collections.ConfigDict:
    """The config in ``workdir/config.json``, keys added since the run started at defaults."""
    return ml_collections.ConfigDict(with_defaults(json.loads((workdir / CONFIG_FILE).read_text())))


def has_history(workdir: Path) -> bool:
    """True when the workdir holds checkpoints (readable or set aside as corrupt)."""
    return any(
        p.name.isdigit()
        for d in ("checkpoints", "corrupt_checkpoints")
        if (workdir / d).is_dir()
        for p in (workdir / d).iterdir()
    )


def check_resume(
    workdir: Path, config: ml_collections.ConfigDict, *, resolved: bool = True
) -> None:
    """Refuse a config that differs from the one ``workdir`` was trained with; a config not
    yet ``resolved`` (its dataset's sizes unset) is compared on every other key."""
    saved = saved_config(workdir)
    if saved is None or not has_history(workdir):
        return
    changes = config_changes(saved, config, ignore=() if resolved else DATASET_KEYS)
    if changes:
        raise WorkdirError(
            f"workdir {workdir} was trained with another config: {'; '.join(changes)}. "
            f"Only {', '.join(RESUMABLE_KEYS)} may change on resume; "
            "to train the new config, give a new --workdir"
        )


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (no half files)."""
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_config(workdir: Path, config: ml_collections.ConfigDict) -> None:
    """Record ``config`` as the run's ``config.json``, making the workdir if it is new."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(workdir / CONFIG_FILE, config_as_json(config))


def try_lock(path: Path, holder: str) -> int | None:
    """``flock`` ``path`` (created if missing) and write ``holder`` into it; the descriptor, or
    None when another process holds it. The lock lasts until the descriptor is closed or the
    process ends, however it ends. OSError when ``path`` cannot be created."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode(), 0)
    return fd


def lock_holder(path: Path) -> str:
    """What the holder of ``path`` wrote: host, pid and start time."""
    try:
        return path.read_text(errors="replace").strip() or "holder unknown"
    except OSError:
        return "holder unknown"


def this_process(extra: str = "") -> str:
    """``host H, pid P, started T`` for a lock file."""
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"host {socket.gethostname()}, pid {os.getpid()}, started {started}{extra}"


@contextlib.contextmanager
def hold_workdir(workdir: Path) -> Iterator[None]:
    """One run per workdir: hold ``workdir/.lock`` inside the block (see the module docstring).

    Raises ``WorkdirError`` on every process of the run, with one line naming the holder
    (host, pid, start time), when another run holds it. A workdir this call made is removed
    again when the block raises before writing anything there (a refused run leaves none).
    """
    import jax  # the processes of this run (after jax.distributed is initialized)
    import numpy as np
    from jax.experimental import multihost_utils

    fd, why, path = None, "", workdir / LOCK_FILE
    created = False
    if jax.process_index() == 0:
        count = jax.process_count()
        try:
            created = not workdir.exists()
            workdir.mkdir(parents=True, exist_ok=True)
            fd = try_lock(path, this_process(f", {count} processes" if count > 1 else ""))
        except OSError as err:
            why = f"cannot create {path}: {err.strerror}; pick another --workdir"
        else:
            if fd is None:
                why = (
                    f"workdir {workdir} is in use by another trainer ({lock_holder(path)}); "
                    "wait for it to end or give another --workdir"
                )
    if jax.process_count() > 1:  # every process hears process 0's answer, then all go on or stop
        text = np.zeros(1024, np.uint8)
        raw = why.encode()[: text.size]
        text[: len(raw)] = np.frombuffer(raw, np.uint8)
        text = np.asarray(multihost_utils.broadcast_one_to_all(text))
        why = bytes(text[text != 0]).decode(errors="replace")
    if why:
        raise WorkdirError(why)
    try:
        yield
    except BaseException:
        if created and {p.name for p in workdir.iterdir()} == {LOCK_FILE}:
            path.unlink()  # refused before anything was written: leave no new directory
            workdir.rmdir()
        raise
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock

"""Orbax checkpoints of a whole population, one directory per step.

``ROOT/checkpoints/STEP`` (``ROOT``: a single run's directory, or a sweep's root) holds every
member at once, on a leading member axis: the learner (``learner``; ``buffer`` with
``--checkpoint-buffer``), each member's policy at its best evaluation (``best``), the MJX
envs (``env``), the backend's host state as arrays (``host``), the loop's counters and
records (``loop``) and the layout version (``format``). Orbax writes a step to a temporary
directory and renames it when complete: the latest state, the best policy and the records
are committed together, and a process killed at any moment leaves the previous step whole.
"""

from __future__ import annotations

import gc
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp

from spikerl_jax.config import ConfigError
from spikerl_jax.reporting.population import population_of
from spikerl_jax.rl.algorithms import FORMAT_2_STATE_KEY
from spikerl_jax.schema import SchemaError, from_jsonable, to_jsonable
from spikerl_jax.training.state import LoopState, RunState
from spikerl_jax.version import __version__

# The layout of a checkpoint's items, saved with it as the ``format`` item. Bump it when the
# items change in a way older code cannot read. Format 1 (checkpoints/latest and best,
# one per member) was written before version 0.2; format 2 (up to f02ead7) holds the
# learner's algorithm state under the one algorithm's name.
FORMAT = 3
# The formats this code reads, and the learner item's key of the algorithm state in each.
AGENT_KEYS = {2: FORMAT_2_STATE_KEY, FORMAT: "agent"}


class CheckpointError(ConfigError):
    """A checkpoint that is missing, corrupted or belongs to another configuration."""


class SaveError(RuntimeError):
    """A checkpoint could not be written (e.g. the disk is full); the message names the path,
    the free space and the last complete checkpoint, which is kept."""


def orbax_path(path: str) -> str:
    """``path`` as Orbax may be given it: Orbax finds its per-process files with ``glob``,
    so a directory whose name holds glob's special characters (``[``, ``*``, ``?``) is
    reached through a symbolic link of a plain name in the temporary directory."""
    path = os.path.abspath(path)
    if glob.escape(path) == path:
        return path
    links = os.path.join(tempfile.gettempdir(), f"spikerl_jax-{os.getuid()}")
    os.makedirs(links, exist_ok=True)
    link = os.path.join(links, hashlib.sha1(path.encode()).hexdigest())
    # Made first: a link left from a directory since deleted dangles, and realpath resolves
    # a dangling link to its target all the same.
    os.makedirs(path, exist_ok=True)
    if os.path.realpath(link) != os.path.realpath(path):
        tmp = f"{link}.{os.getpid()}"
        os.symlink(path, tmp)
        os.replace(tmp, link)
    return link


def _manager(root: str, keep: int | None = None, create: bool = True) -> ocp.CheckpointManager:
    # Synchronous saves: a save has finished (or failed, with its error raised here) before
    # training goes on, and the live state may be donated right after. Half-written steps
    # have one cleaner, ``Checkpointer.remove_temporary`` (run by the process that holds the
    # run's lock): Orbax's own runs in a thread of every manager, readers' included, and two
    # cleaners race on the same directory.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        cleanup_tmp_directories=False,
        enable_async_checkpointing=False,
        create=create,
    )
    return ocp.CheckpointManager(orbax_path(os.path.join(root, "checkpoints")), options=options)


def device_items(state: RunState, with_buffer: bool, layout: int | None = None) -> dict:
    """The device arrays a checkpoint of format ``layout`` (None: ``FORMAT``) holds (see the
    module's docstring)."""
    learner = state.learner
    items = {
        "learner": {
            AGENT_KEYS[FORMAT if layout is None else layout]: learner.agent,
            "normalizer": learner.normalizer,
            "key": learner.key,
        },
        "best": state.best,
    }
    if with_buffer:
        items["buffer"] = learner.buffer
    if state.env is not None:
        items["env"] = env_leaves(state.env)
    return items


def env_leaves(env) -> dict:
    """The MJX envs' state as ``{path: array}`` without its empty arrays (MJX keeps
    zero-size fields, which Orbax refuses to save)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(env)
    return {jax.tree_util.keystr(path): leaf for path, leaf in flat if leaf.size}


def env_from_leaves(like, leaves: dict):
    """The inverse of ``env_leaves``: the empty arrays are taken from ``like``."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(like)
    rebuilt = [leaves[jax.tree_util.keystr(p)] if x.size else x for p, x in flat]
    return jax.tree_util.tree_unflatten(treedef, rebuilt)


class Checkpointer:
    """Saves a population's checkpoints under ``root/checkpoints`` (synchronously), keeping
    the newest ``keep``."""

    def __init__(self, root: str, keep: int, save_buffer: bool):
        self.root = os.path.join(root, "checkpoints")
        self.manager = _manager(root, keep)
        self.save_buffer = save_buffer
        if jax.process_index() == 0:  # what a killed or failed save left
            self.remove_temporary()

    def save(self, step: int, state: RunState, host: dict, loop: LoopState) -> None:
        """Checkpoints the population at ``step``.

        Raises:
          SaveError: the checkpoint could not be written; temporary files are removed and
            the previous checkpoints stay.
        """
        args = {
            k: ocp.args.StandardSave(v) for k, v in device_items(state, self.save_buffer).items()
        }
        args["host"] = ocp.args.StandardSave(host)
        args["loop"] = ocp.args.JsonSave(to_jsonable(loop))
        members = len(loop.members)
        args["format"] = ocp.args.JsonSave(
            {"format": FORMAT, "spikerl_jax": __version__, "members": members}
        )
        running = set(threading.enumerate())
        try:
            self.manager.save(step, args=ocp.args.Composite(**args))
        except Exception as e:  # orbax wraps OS errors in several types: report the cause
            # Orbax raises the first failing write while its other writers still run: wait
            # for them, so that nothing writes into the temporary directory once it is gone.
            _wait_for_writers(running)
            self.remove_temporary()
            raise SaveError(self._explain(step, e)) from None

    def _explain(self, step: int, error: Exception) -> str:
        reason = _reason(error)
        try:
            free = f"{shutil.disk_usage(self.root).free / 2**20:.0f} MB free"
        except OSError:
            free = "free space unknown"
        steps = self.manager.all_steps()
        kept = f"the last complete checkpoint (step {max(steps)}) is kept" if steps else ""
        kept = kept or "no complete checkpoint exists yet"
        return f"cannot save checkpoint {step} to {self.root}: {reason} ({free}); {kept}"

    def remove_temporary(self) -> None:
        """Deletes half-written checkpoint directories (Orbax's ``*.orbax-checkpoint-tmp*``),
        until none is left (a write that was under way may make one again)."""
        for _ in range(50):
            left = _temporary(self.root)
            if not left:
                return
            for path in left:
                shutil.rmtree(path, ignore_errors=True)
            time.sleep(0.02)

    def close(self) -> None:
        try:  # after a failed save Orbax's writers may raise again: it was reported once
            self.manager.wait_until_finished()
            self.manager.close()
        except Exception as e:
            logging.getLogger("spikerl_jax").debug("checkpoint manager close: %r", e)
        self.remove_temporary()


def _temporary(root: str) -> list[str]:
    try:
        return [os.path.join(root, n) for n in os.listdir(root) if "tmp" in n]
    except OSError:
        return []


# Orbax's writers: threads a failed save leaves running (not the idle pools of asyncio).
_POOL_THREADS = ("asyncio_", "ThreadPoolExecutor")


def _wait_for_writers(running: set, timeout: float = 60.0) -> None:
    """Waits (up to ``timeout`` seconds) for the threads started since ``running`` was taken,
    and lets go of the coroutines a failed save left unawaited, without their warnings."""
    deadline = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - running:
        if not thread.name.startswith(_POOL_THREADS):
            try:  # Orbax's threads raise their error again from join: it is reported once
                thread.join(max(0.0, deadline - time.monotonic()))
            except Exception as e:
                logging.getLogger("spikerl_jax").debug("checkpoint writer: %r", e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "coroutine ... was never awaited"
        gc.collect()


# The OS errors TensorStore reports in its status text, e.g. ``RESOURCE_EXHAUSTED: Error
# writing local file "PATH": Failed writing: "PATH/d/X": ...: No space left on device
# [os_error_code='28']``.
_OS_CODE = re.compile(r"\[os_error_code='?(\d+)'?\]")
_STATUS = re.compile(r"^[A-Z][A-Z_]+: ")
_QUOTED_PATH = re.compile(r'"(/[^"]*)"')


def _reason(error: BaseException) -> str:
    """Why ``error`` happened, in one line with its paths whole: an OS error's message and
    file; TensorStore's status text (its OS error and the file it was writing, or the whole
    status without the TensorStore spec it appends); otherwise ``Type: message``."""
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    for e in chain:
        if isinstance(e, OSError) and e.strerror:
            return f"{e.strerror} ({e.filename})" if e.filename else e.strerror
    for e in chain:
        text = _one_line(str(e))
        code = _OS_CODE.search(text)
        if code:
            paths = _QUOTED_PATH.findall(text)
            what = os.strerror(int(code.group(1)))
            return f"{what} ({paths[-1]})" if paths else what
    for e in chain:
        text = _one_line(str(e))
        if _STATUS.match(text):
            return text
    return f"{type(chain[0]).__name__}: {_one_line(str(chain[0]))}"


def _one_line(text: str) -> str:
    text = text.split(" See full TensorStore details")[0]
    return " ".join(text.split())


def latest_step(root: str) -> int | None:
    """The newest complete checkpoint step under ``root`` (None: none)."""
    if not os.path.isdir(os.path.join(root, "checkpoints")):
        return None
    manager = _manager(root, create=False)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def legacy_checkpoints(root: str) -> bool:
    """Whether ``root`` holds checkpoints of format 1 (``checkpoints/latest``)."""
    return os.path.isdir(os.path.join(root, "checkpoints", "latest"))


def _newest(root: str, members: int | None = None) -> tuple[str, int, int]:
    """The newest step directory under ``root``, its step and its format (one this code
    reads), its member count checked if given."""
    step, where = latest_step(root), os.path.join(root, "checkpoints")
    if step is None and legacy_checkpoints(root):
        raise _other_format(f"{where}/latest and best", 1, "0.1")
    if step is None:
        raise CheckpointError(f"no complete checkpoint in {where}")
    path = os.path.join(os.path.abspath(where), str(step))
    saved = _json(path, "format")
    if saved.get("format") not in AGENT_KEYS:
        raise _other_format(path, saved.get("format", 1), saved.get("spikerl_jax", "?"))
    if members is not None and saved.get("members") != members:
        raise CheckpointError(
            f"checkpoint {path} holds {saved.get('members')} member(s), this run has {members}"
        )
    return path, step, saved["format"]


def _other_format(where: str, layout: int, version: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {where} has format {layout} (written by spikerl_jax {version}); this "
        f"spikerl_jax ({__version__}) reads format {FORMAT}: read it with the version that wrote it"
    )


def _damaged(path: str, problem: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} {problem}: delete that step directory to fall back to the previous one"
    )


def _json(path: str, item: str, cls=None):
    """A JSON item of a step directory (as ``cls`` if given)."""
    try:
        with open(os.path.join(path, item, "metadata")) as f:
            data = json.load(f)
        return data if cls is None else from_jsonable(cls, data)
    except (OSError, ValueError, SchemaError) as e:
        raise _damaged(path, f"has no readable {item} ({e})") from None


def _restore_item(path: str, item: str, target=None):
    """One item of a step directory onto ``target``'s shardings; None: as saved, on the
    default device whatever layout wrote it (numpy arrays as numpy, with their dtypes)."""
    checkpointer, absl = ocp.StandardCheckpointer(), logging.getLogger("absl")
    where, level = orbax_path(os.path.join(path, item)), absl.level
    absl.setLevel(logging.ERROR)  # Orbax's notes on metadata files that items do not have
    try:
        if target is None:
            device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
            target = jax.tree.map(
                lambda m: (
                    np.zeros(m.shape, m.dtype)
                    if m.sharding is None  # saved from numpy
                    else jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device)
                ),
                checkpointer.metadata(where).item_metadata.tree,
            )
        return checkpointer.restore(where, target)
    except Exception as e:  # orbax raises many types for bad files; name the checkpoint
        raise CheckpointError(
            f"cannot restore {where} ({_reason(e)}); it was written "
            "with a different configuration or it is corrupted: deleting that step "
            "directory falls back to the previous checkpoint"
        ) from None
    finally:
        checkpointer.close()
        absl.setLevel(level)


def restore_population(root: str, fresh: RunState) -> tuple[RunState, dict, LoopState, bool]:
    """The newest checkpoint under ``root``, onto the layout of ``fresh`` (a freshly built
    state of the same population).

    Returns:
      ``(state, host, loop, with_buffer)``; without a saved buffer ``state`` keeps the
      fresh (empty) one.

    Raises:
      CheckpointError: no checkpoint, or one that cannot be read with this configuration.
    """
    path, step, layout = _newest(root, jax.tree.leaves(fresh.learner.key)[0].shape[0])
    like = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), fresh
    )
    saved = set(os.listdir(path))
    missing = {"learner", "best", "host", "loop"} - saved | (
        {"env"} - saved if fresh.env else set()
    )
    if missing:
        raise _damaged(path, f"lacks {', '.join(sorted(missing))}")
    items = {
        k: _restore_item(path, k, v)
        for k, v in device_items(like, True, layout).items()
        if k in saved
    }
    learner = fresh.learner.replace(
        **_current(items["learner"], layout), buffer=items.get("buffer", fresh.learner.buffer)
    )
    env = env_from_leaves(fresh.env, items["env"]) if "env" in items else fresh.env
    loop = _json(path, "loop", LoopState)
    if loop.step != step:
        raise _damaged(path, f"records step {loop.step}, not {step} (edited or moved)")
    state = RunState(learner=learner, best=items["best"], env=env)
    return state, _restore_item(path, "host"), loop, "buffer" in items


def read_checkpoint(run_dir: str, items=None) -> tuple[dict, LoopState, int]:
    """The newest checkpoint of ``run_dir``'s population, every item (or those named) as
    saved: arrays on the default device (numpy ones as numpy), nested dicts, a member axis
    first; the learner's algorithm state under ``agent`` whichever format holds it. No
    training code is built. Returns ``(items, loop, step)``."""
    path, step, layout = _newest(population_of(run_dir)[0])
    names = items or [
        k
        for k in sorted(os.listdir(path))
        if k not in ("loop", "format") and os.path.isdir(os.path.join(path, k))
    ]
    items = {k: _restore_item(path, k) for k in names}
    if "learner" in items:
        items["learner"] = _current(items["learner"], layout)
    return items, _json(path, "loop", LoopState), step


def _current(learner: dict, layout: int) -> dict:
    """A learner item of format ``layout`` with its algorithm state under ``agent``."""
    rest = {k: v for k, v in learner.items() if k != AGENT_KEYS[layout]}
    return {"agent": learner[AGENT_KEYS[layout]], **rest}

"""Orbax checkpoints of a whole run: the device state (learner, the MJX envs, optionally the
replay buffer) and the host state (``HostCheckpoint``: counters, records, env states, RNGs),
committed together.

Layout of ``RUN_DIR/checkpoints``: ``latest/STEP`` (the last ``keep`` checkpoints, for resume)
and ``best/STEP`` (the best evaluation so far, without the buffer, for eval and export). Orbax
writes each checkpoint to a temporary directory and renames it when complete, so a process
killed mid-save leaves the previous checkpoint restorable.

A checkpoint is always one member's (a single run's) state, with a member axis of one: a
population saves each member into its own run directory, so that every member's directory is
a run of its own (``spikerl-jax eval``, ``compare``, ``plot`` and resume work on it).
"""

from __future__ import annotations

import os
import shutil
from importlib import metadata

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from spikerl_jax.config import ConfigError
from spikerl_jax.schema import SchemaError, from_jsonable, to_jsonable
from spikerl_jax.training.state import HostCheckpoint, RunState

LEARNER_KEYS = ("td3", "normalizer", "key")
# The layout of a checkpoint's items, saved with it as the ``format`` item. Bump it when the
# items change in a way older code cannot read. Checkpoints without the item were written
# before it existed, in the layout of format 1.
FORMAT = 1


def _version() -> str:
    try:
        return metadata.version("spikerl_jax")
    except metadata.PackageNotFoundError:  # a source tree on the path, not installed
        return "unknown"


class CheckpointError(ConfigError):
    """A checkpoint that is missing, corrupted or belongs to another configuration."""


def _manager(path: str, keep: int | None, create: bool = True) -> ocp.CheckpointManager:
    # Synchronous saves: a save has finished (or failed, with its error raised here) before
    # training goes on, and the live state may be donated right after (a learner state is a
    # few MB; the optional buffer, some hundred MB, takes under a second).
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, cleanup_tmp_directories=True, enable_async_checkpointing=False,
        create=create,
    )  # fmt: skip
    return ocp.CheckpointManager(os.path.abspath(path), options=options)


def device_items(state: RunState, with_buffer: bool) -> dict:
    """The device arrays a checkpoint holds: the learner (not the buffer unless asked), and
    the MJX envs when the run has them (as ``env_leaves``)."""
    learner = state.learner
    items = {"learner": {k: getattr(learner, k) for k in LEARNER_KEYS}}
    if with_buffer:
        items["buffer"] = learner.buffer
    if state.env is not None:
        items["env"] = env_leaves(state.env)
    return items


def env_leaves(env) -> dict:
    """The MJX envs' state as ``{path: array}`` without its empty arrays (MJX keeps
    zero-size fields, e.g. activations of a model without actuator states, which Orbax
    refuses to save)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(env)
    return {jax.tree_util.keystr(path): leaf for path, leaf in flat if leaf.size}


def env_from_leaves(abstract_env, leaves: dict):
    """The inverse of ``env_leaves``: the empty arrays are rebuilt from their shapes."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(abstract_env)
    rebuilt = [leaves[jax.tree_util.keystr(path)] if x.size else
               jnp.zeros(x.shape, x.dtype, device=getattr(x, "sharding", None))
               for path, x in flat]  # fmt: skip
    return jax.tree_util.tree_unflatten(treedef, rebuilt)


class SaveError(RuntimeError):
    """A checkpoint could not be written (e.g. the disk is full); the message names the path,
    the free space and the last complete checkpoint, which is kept."""


class RunCheckpointer:
    """Saves a run's checkpoints under ``run_dir/checkpoints`` (synchronously)."""

    def __init__(self, run_dir: str, keep: int, save_buffer: bool):
        self.root = os.path.join(run_dir, "checkpoints")
        self.latest = _manager(os.path.join(self.root, "latest"), keep)
        self.best = _manager(os.path.join(self.root, "best"), 1)
        self.save_buffer = save_buffer

    def save(self, step: int, state: RunState, host: HostCheckpoint, best: bool = False) -> None:
        """Checkpoints ``state`` and ``host`` at ``step`` (and as the best one).

        Raises:
          SaveError: the checkpoint could not be written; temporary files are removed and
            the previous checkpoints stay.
        """
        items = device_items(state, self.save_buffer)
        args = {k: ocp.args.StandardSave(v) for k, v in items.items()}
        args["host"] = ocp.args.JsonSave(to_jsonable(host))
        args["format"] = ocp.args.JsonSave({"format": FORMAT, "spikerl_jax": _version()})
        try:
            self.latest.save(step, args=ocp.args.Composite(**args))
            if best:
                kept = {k: v for k, v in args.items() if k != "buffer"}
                self.best.save(step, args=ocp.args.Composite(**kept))
        except Exception as e:  # orbax wraps OS errors in several types: report the cause
            self.remove_temporary()
            raise SaveError(self._explain(step, e)) from None

    def _explain(self, step: int, error: Exception) -> str:
        cause = error
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        reason = (cause.strerror or str(cause)) if cause is not None else str(error)[:200]
        try:
            free = f"{shutil.disk_usage(self.root).free / 2**20:.0f} MB free"
        except OSError:
            free = "free space unknown"
        steps = self.latest.all_steps()
        kept = (f"the last complete checkpoint (step {max(steps)}) is kept" if steps
                else "no complete checkpoint exists yet")  # fmt: skip
        return f"cannot save checkpoint {step} to {self.root}: {reason} ({free}); {kept}"

    def remove_temporary(self) -> None:
        """Deletes half-written checkpoint directories (Orbax's ``*.orbax-checkpoint-tmp*``)."""
        for folder in (os.path.join(self.root, "latest"), os.path.join(self.root, "best")):
            if not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                if "tmp" in name:
                    shutil.rmtree(os.path.join(folder, name), ignore_errors=True)

    def wait(self) -> None:
        """Blocks until every save has been committed."""
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def _placed(abstract_state):
    """Gives every unplaced leaf a place on the default device, so that a checkpoint written
    on another device layout (e.g. an 8-device run) restores here instead of orbax asking
    for the saved topology."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])

    def leaf(x):
        if getattr(x, "sharding", None) is not None:
            return x
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device)

    return jax.tree.map(leaf, abstract_state)


def _check_format(where: str, saved: dict) -> None:
    if saved.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {where} has format {saved.get('format')} (written by spikerl_jax "
            f"{saved.get('spikerl_jax', '?')}); this spikerl_jax ({_version()}) reads format "
            f"{FORMAT}: read it with the version that wrote it"
        )


def restore(
    run_dir: str, abstract_state: RunState, which: str = "latest", with_buffer: bool = True
) -> tuple[dict, HostCheckpoint, int]:
    """Restores the newest checkpoint of ``which`` (``"latest"`` or ``"best"``).

    Args:
      run_dir: the run directory.
      abstract_state: ``jax.eval_shape`` of the run's ``RunState`` (one member), with
        shardings where the arrays should go.
      which: ``"latest"`` (resume) or ``"best"`` (eval, export).
      with_buffer: also restore the replay buffer if the checkpoint holds it.

    Returns:
      ``(items, host, step)``: ``items`` has ``learner`` (a dict of ``LEARNER_KEYS``), and
      ``buffer`` and ``env`` where the checkpoint holds them.

    Raises:
      CheckpointError: no checkpoint, or one that cannot be read with this configuration.
    """
    path = os.path.abspath(os.path.join(run_dir, "checkpoints", which))
    if not os.path.isdir(path):
        raise CheckpointError(f"no checkpoints in {path}: the run saved none yet")
    manager = _manager(path, None, create=False)
    step = manager.latest_step()
    if step is None:
        manager.close()
        raise CheckpointError(f"no complete checkpoint in {path}")
    abstract = device_items(_placed(abstract_state), with_buffer)
    saved_items = set(os.listdir(os.path.join(path, str(step))))
    args = {"host": ocp.args.JsonRestore()}
    args.update({k: ocp.args.StandardRestore(v) for k, v in abstract.items() if k in saved_items})
    try:
        if "format" in saved_items:
            saved = manager.restore(step, args=ocp.args.Composite(format=ocp.args.JsonRestore()))
            _check_format(f"{path}/{step}", saved["format"])
        restored = manager.restore(step, args=ocp.args.Composite(**args))
    except CheckpointError:
        raise
    except Exception as e:  # orbax raises many types for bad files; name the checkpoint
        raise CheckpointError(
            f"cannot restore checkpoint {path}/{step} ({type(e).__name__}: {str(e)[:200]}); "
            "it was written with a different configuration or by another spikerl_jax "
            "version (read it with that version), or it is corrupted: then deleting that "
            "step directory falls back to the previous checkpoint"
        ) from None
    finally:
        manager.close()
    try:
        host = from_jsonable(HostCheckpoint, restored["host"])
    except SchemaError as e:
        raise CheckpointError(
            f"checkpoint {path}/{step} has an unreadable host state ({e}); delete that step "
            "directory to fall back to the previous checkpoint"
        ) from None
    items = {k: restored[k] for k in abstract if k in args}
    if "env" in items:
        items["env"] = env_from_leaves(abstract_state.env, items["env"])
    return items, host, step

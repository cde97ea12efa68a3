"""Orbax checkpoints of a whole run: the learner on device, optionally the replay buffer, and
the host loop's state (counters, RNGs, environment states), committed together.

Layout of ``RUN_DIR/checkpoints``: ``latest/STEP`` (the last ``keep`` checkpoints, for resume)
and ``best/STEP`` (the best evaluation so far, without the buffer, for eval and export). Orbax
writes each checkpoint to a temporary directory and renames it when complete, so a process
killed mid-save leaves the previous checkpoint restorable.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from spikerl_jax.config import ConfigError

LEARNER_KEYS = ("td3", "normalizer", "key")


class CheckpointError(ConfigError):
    """A checkpoint that is missing, corrupted or belongs to another configuration."""


def _manager(path: str, keep: int | None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, cleanup_tmp_directories=True, enable_async_checkpointing=True
    )
    return ocp.CheckpointManager(os.path.abspath(path), options=options)


def learner_tree(state) -> dict:
    """The device arrays of a ``TrainState`` that every checkpoint holds (not the buffer)."""
    return {k: getattr(state, k) for k in LEARNER_KEYS}


class RunCheckpointer:
    """Saves and restores a run's checkpoints under ``run_dir/checkpoints``.

    Saves are asynchronous: the device arrays are first copied into buffers of their own,
    because training donates (reuses in place) the live state's buffers on its next call.
    """

    def __init__(self, run_dir: str, keep: int, save_buffer: bool):
        root = os.path.join(run_dir, "checkpoints")
        self.latest = _manager(os.path.join(root, "latest"), keep)
        self.best = _manager(os.path.join(root, "best"), 1)
        self.save_buffer = save_buffer

    def save(self, step: int, state, host: dict, best: bool = False) -> None:
        """Checkpoints ``state`` (a ``TrainState``) and the JSON-able ``host`` state at ``step``."""
        items = {"learner": learner_tree(state)}
        if self.save_buffer:
            items["buffer"] = state.buffer
        items = jax.tree.map(jnp.copy, items)  # own buffers: the live ones get donated
        args = {k: ocp.args.StandardSave(v) for k, v in items.items()}
        self.latest.save(step, args=ocp.args.Composite(host=ocp.args.JsonSave(host), **args))
        if best:
            self.best.save(
                step,
                args=ocp.args.Composite(
                    host=ocp.args.JsonSave(host), learner=ocp.args.StandardSave(items["learner"])
                ),
            )

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


def restore(
    run_dir: str, abstract_state, which: str = "latest", with_buffer: bool = True
) -> tuple[dict, Any, dict, int]:
    """Restores the newest checkpoint of ``which`` (``"latest"`` or ``"best"``).

    Args:
      run_dir: the run directory.
      abstract_state: ``jax.eval_shape`` of the run's ``TrainState`` (shapes, dtypes, key types).
      which: ``"latest"`` (resume) or ``"best"`` (eval, export).
      with_buffer: also restore the replay buffer if the checkpoint holds it.

    Returns:
      ``(learner_tree, buffer or None, host_state, step)``.

    Raises:
      CheckpointError: no checkpoint, or one that cannot be read with this configuration.
    """
    path = os.path.abspath(os.path.join(run_dir, "checkpoints", which))
    if not os.path.isdir(path):
        raise CheckpointError(f"no checkpoints in {path}: the run saved none yet")
    manager = ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(create=False))
    step = manager.latest_step()
    if step is None:
        raise CheckpointError(f"no complete checkpoint in {path}")
    abstract_state = _placed(abstract_state)
    args = {
        "host": ocp.args.JsonRestore(),
        "learner": ocp.args.StandardRestore(learner_tree(abstract_state)),
    }
    if with_buffer and os.path.isdir(os.path.join(path, str(step), "buffer")):
        args["buffer"] = ocp.args.StandardRestore(abstract_state.buffer)
    try:
        restored = manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as e:  # orbax raises many types for bad files; name the checkpoint
        raise CheckpointError(
            f"cannot restore checkpoint {path}/{step} ({type(e).__name__}: {str(e)[:200]}); "
            "it is corrupted or was written by a different configuration — delete that step "
            "directory to fall back to the previous checkpoint"
        ) from None
    finally:
        manager.close()
    buffer = restored["buffer"] if "buffer" in args else None
    return restored["learner"], buffer, restored["host"], step

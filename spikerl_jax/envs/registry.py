"""The tasks and their shapes.

Config validation, network construction and checkpoint shapes need only ``EnvSpec``. A table
gives it for the MuJoCo tasks of the papers (a test checks it against Gymnasium's own envs),
so that ``spikerl-jax train --help`` or a bad flag never waits for MuJoCo to load; any other
Gymnasium task with Box observations and actions (``Pendulum-v1``, ``Pusher-v5``,
``mypackage.envs:MyEnv-v0``) is read off the env itself, made once.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import traceback

import numpy as np


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """What the networks and the replay buffer need to know of a task.

    Attributes:
      obs_dim: observation size ``D``.
      action_dim: action size ``A``.
      action_limit: actions lie in ``[-action_limit, action_limit]`` in every dim.
      max_episode_steps: the time limit (episodes are truncated there).
    """

    obs_dim: int
    action_dim: int
    action_limit: float
    max_episode_steps: int


_HUMANOID_LIMIT = float(np.float32(0.4))  # Gymnasium's float32 bound, read as a float

SPECS: dict[str, EnvSpec] = {
    "Ant-v4": EnvSpec(27, 8, 1.0, 1000),
    "Ant-v5": EnvSpec(105, 8, 1.0, 1000),
    "HalfCheetah-v4": EnvSpec(17, 6, 1.0, 1000),
    "HalfCheetah-v5": EnvSpec(17, 6, 1.0, 1000),
    "Hopper-v4": EnvSpec(11, 3, 1.0, 1000),
    "Hopper-v5": EnvSpec(11, 3, 1.0, 1000),
    "Humanoid-v4": EnvSpec(376, 17, _HUMANOID_LIMIT, 1000),
    "Humanoid-v5": EnvSpec(348, 17, _HUMANOID_LIMIT, 1000),
    "InvertedDoublePendulum-v4": EnvSpec(11, 1, 1.0, 1000),
    "InvertedDoublePendulum-v5": EnvSpec(9, 1, 1.0, 1000),
    "InvertedPendulum-v4": EnvSpec(4, 1, 3.0, 1000),
    "InvertedPendulum-v5": EnvSpec(4, 1, 3.0, 1000),
    "Reacher-v4": EnvSpec(11, 2, 1.0, 50),
    "Reacher-v5": EnvSpec(10, 2, 1.0, 50),
    "Swimmer-v4": EnvSpec(8, 2, 1.0, 1000),
    "Swimmer-v5": EnvSpec(8, 2, 1.0, 1000),
    "Walker2d-v4": EnvSpec(17, 6, 1.0, 1000),
    "Walker2d-v5": EnvSpec(17, 6, 1.0, 1000),
}
SUPPORTED_ENVS = frozenset(SPECS)  # the tasks known without importing a simulator
# Tasks with an MJX port (spikerl_jax.envs.mjx_tasks); Reacher's goal is a separate state.
MJX_ENVS = frozenset(e for e in SPECS if not e.startswith("Reacher"))
# The time limit of a task registered without one (an evaluation episode must end).
DEFAULT_TIME_LIMIT = 1000


class UnknownEnv(ValueError):
    """An env id no registry has; the message names the closest ids."""


def _registry():
    # Deferred: --help and a refused flag do not wait for Gymnasium's import (it loads no
    # simulator for the registry).
    import gymnasium

    return gymnasium.envs.registry


def resolve(env_id: str) -> str:
    """``env_id`` as a full id: an unversioned one (``Hopper``) as the newest version its
    registry has (``Hopper-v5``); others as they are."""
    if env_id in SPECS or ":" in env_id or "-v" in env_id:
        return env_id
    versions = [k for k in _registry() if k.rsplit("-v", 1)[0] == env_id and "-v" in k]
    if not versions:
        return env_id
    return max(
        versions, key=lambda k: int(k.rsplit("-v", 1)[1]) if k.rsplit("-v", 1)[1].isdigit() else -1
    )


def check_known(env_id: str) -> None:
    """Raises ``UnknownEnv`` unless Gymnasium can make ``env_id`` (a registered id, or
    ``module:EnvId``, whose module registers it on import)."""
    if env_id in SPECS:
        return
    module, _, name = env_id.rpartition(":")
    before = set(_registry())
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UnknownEnv(f"cannot import {module!r} for the env {env_id!r}: {e}") from None
        except Exception as e:  # the user's module itself fails: say where, in one line
            where = traceback.extract_tb(e.__traceback__)[-1]
            raise UnknownEnv(
                f"importing {module!r} for the env {env_id!r} failed: {type(e).__name__}: {e} "
                f"({where.filename}, line {where.lineno})"
            ) from None
    if name not in _registry():
        # A module's own ids first: those it registered on import.
        added = [k for k in _registry() if k not in before]
        close = difflib.get_close_matches(name, added or list(_registry()), n=3)
        close = [f"{module}:{c}" if c in added else c for c in close]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownEnv(
            f"unknown env {env_id!r}{hint}: give a Gymnasium id (gymnasium.pprint_registry() "
            "lists them), or MODULE:ID for an env that MODULE registers"
        )


@functools.cache
def env_spec(env_id: str) -> EnvSpec:
    """The spec of a task: the table's, or (any other Gymnasium task) read off the env, made
    once here.

    Raises:
      UnknownEnv: no registry has it.
      ValueError: its spaces are not a 1-D Box of observations and a Box of actions.
    """
    if env_id in SPECS:
        return SPECS[env_id]
    check_known(env_id)
    import gymnasium

    env = gymnasium.make(env_id)
    try:
        obs, act = env.observation_space, env.action_space
        unsuitable = [
            f"{name} {space}"
            for name, space in (("observations", obs), ("actions", act))
            if not (isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1)
        ]
        if unsuitable:
            kinds = " and ".join(name.split()[0] for name in unsuitable)
            raise ValueError(
                f"{env_id} has {' and '.join(unsuitable)}; the actor needs a 1-D Box of "
                f"{kinds} (continuous control)"
            )
        if not np.all(np.isfinite(act.low) & np.isfinite(act.high)):
            raise ValueError(
                f"{env_id}'s actions {act} are unbounded; the actor's tanh output is scaled "
                "to the action bounds: give the env's action space finite bounds"
            )
        limit = float(act.high[0]) if symmetric(act.low, act.high) else 1.0
        steps = env.spec.max_episode_steps if env.spec else None
        return EnvSpec(obs.shape[0], act.shape[0], limit, steps or DEFAULT_TIME_LIMIT)
    finally:
        env.close()


def symmetric(low, high) -> bool:
    """Whether action bounds are ``[-l, l]`` with one finite ``l`` in every dim (otherwise
    the env is rescaled to ``[-1, 1]``: ``gymnasium_backend.quiet_make``)."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    return bool(np.all(np.isfinite(high)) and np.all(high == high[0]) and np.all(low == -high))

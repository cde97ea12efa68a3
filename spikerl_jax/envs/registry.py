"""The supported tasks and their shapes, known without importing a simulator.

Config validation, network construction and checkpoint shapes need only ``EnvSpec``; this
table gives it for every supported id (a test checks it against Gymnasium's own envs), so
that ``spikerl-jax train --help`` or a bad flag never waits for MuJoCo to load.
"""

from __future__ import annotations

import dataclasses

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
SUPPORTED_ENVS = frozenset(SPECS)
# Tasks with an MJX port (spikerl_jax.envs.mjx_tasks); Reacher's goal is a separate state.
MJX_ENVS = frozenset(e for e in SPECS if not e.startswith("Reacher"))


def env_spec(env_id: str) -> EnvSpec:
    """The spec of a supported task id.

    Raises:
      KeyError: naming the supported ids (config validation refuses unknown ids first).
    """
    if env_id not in SPECS:
        raise KeyError(f"unknown env {env_id!r}; supported: {', '.join(sorted(SPECS))}")
    return SPECS[env_id]

"""The host backend: Gymnasium's MuJoCo tasks on native MuJoCo, stepped from Python."""

from __future__ import annotations

import base64
import dataclasses
import logging
import pickle
import warnings
import zlib

import gymnasium as gym
import numpy as np

FAMILIES = (
    "Hopper",
    "HalfCheetah",
    "Walker2d",
    "Ant",
    "Humanoid",
    "InvertedPendulum",
    "InvertedDoublePendulum",
    "Swimmer",
    "Reacher",
)
SUPPORTED_ENVS = frozenset(f"{family}-v{v}" for family in FAMILIES for v in (4, 5))


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """What the networks need to know of a task."""

    obs_dim: int
    action_dim: int
    action_limit: float
    max_episode_steps: int


def quiet_make(env_id: str, **kwargs) -> gym.Env:
    # v4 ids are deprecated in Gymnasium 1.x but are the paper's tasks; their warning (and
    # MuJoCo's XML deprecation notes) would otherwise be printed once per environment.
    gym_logger = logging.getLogger("gymnasium")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = gym_logger.level
        gym_logger.setLevel(logging.ERROR)
        try:
            return gym.make(env_id, **kwargs)
        finally:
            gym_logger.setLevel(level)


def env_spec(env_id: str) -> EnvSpec:
    """Reads the observation/action sizes and the (symmetric) action limit of ``env_id``."""
    env = quiet_make(env_id)
    low, high = env.action_space.low, env.action_space.high
    if not (np.allclose(low, -high) and np.allclose(high, high[0])):
        raise ValueError(f"{env_id}: PopSAN's decoder needs equal symmetric action bounds")
    spec = EnvSpec(
        obs_dim=int(np.prod(env.observation_space.shape)),
        action_dim=int(np.prod(env.action_space.shape)),
        action_limit=float(high[0]),
        max_episode_steps=int(env.spec.max_episode_steps),
    )
    env.close()
    return spec


def make_vector_env(
    env_id: str, num_envs: int, max_episode_steps: int | None = None
) -> gym.vector.SyncVectorEnv:
    """``num_envs`` copies of ``env_id`` stepping together (reset them with a seed first).

    Auto-reset happens in the same step (``SAME_STEP``): a finished env returns its next
    episode's first observation, and the true last one in ``info["final_obs"]``, so every
    transition stored is ``(obs, action, reward, final or next obs)`` of one episode.
    """
    envs = gym.vector.SyncVectorEnv(
        [lambda: quiet_make(env_id, max_episode_steps=max_episode_steps)] * num_envs,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    return envs


def make_eval_envs(env_id: str, count: int, seed: int) -> list[gym.Env]:
    """``count`` independent envs for evaluation, seeded once; later resets continue their RNG."""
    envs = [quiet_make(env_id) for _ in range(count)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    return envs


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def get_env_state(env: gym.Env) -> dict:
    """Everything an env carries between steps, as JSON-able values.

    The whole ``MjData`` (zlib-compressed pickle, base64), not just ``mj_getState``'s
    integration state: Gymnasium's rewards read derived quantities that ``mj_step`` leaves from
    its last substep (Ant's and Humanoid's body positions), which a recomputation from the
    state would change. Also the time limit's step counter and the env's RNG (it draws the
    next reset's noise). Restore only checkpoints you wrote: they hold a pickle.
    """
    base = env.unwrapped
    limit = _time_limit(env)
    return {
        "mjdata": base64.b64encode(zlib.compress(pickle.dumps(base.data))).decode("ascii"),
        "elapsed_steps": None if limit is None else limit._elapsed_steps,
        "rng": base.np_random.bit_generator.state,
    }


def set_env_state(env: gym.Env, state: dict) -> None:
    """Restores what ``get_env_state`` returned (the env must have been reset once)."""
    import mujoco

    base = env.unwrapped
    saved = pickle.loads(zlib.decompress(base64.b64decode(state["mjdata"])))
    mujoco.mj_copyData(base.data, base.model, saved)
    limit = _time_limit(env)
    if limit is not None:
        limit._elapsed_steps = state["elapsed_steps"]
    base.np_random.bit_generator.state = state["rng"]

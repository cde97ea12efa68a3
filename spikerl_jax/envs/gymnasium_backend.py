"""The host backend's simulator: Gymnasium's MuJoCo tasks on native MuJoCo, stepped from
Python, and each env's state between steps as a typed record (for checkpoints)."""

from __future__ import annotations

import base64
import dataclasses
import logging
import pickle
import warnings
import zlib

import gymnasium as gym

from spikerl_jax.envs.mujoco_log import route_mujoco_warnings


def quiet_make(env_id: str, **kwargs) -> gym.Env:
    """``gym.make`` without the per-env noise: v4 ids are deprecated in Gymnasium 1.x but are
    the paper's tasks; their warning (and MuJoCo's notes on Gymnasium's XML files) would
    otherwise be printed once per environment."""
    route_mujoco_warnings()
    gym_logger = logging.getLogger("gymnasium")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = gym_logger.level
        gym_logger.setLevel(logging.ERROR)
        try:
            return gym.make(env_id, **kwargs)
        finally:
            gym_logger.setLevel(level)


def make_vector_env(
    env_id: str, num_envs: int, max_episode_steps: int | None = None
) -> gym.vector.SyncVectorEnv:
    """``num_envs`` copies of ``env_id`` stepping together (reset them with a seed first).

    Auto-reset happens in the same step (``SAME_STEP``): a finished env returns its next
    episode's first observation, and the true last one in ``info["final_obs"]``, so every
    transition stored is ``(obs, action, reward, final or next obs)`` of one episode.
    """
    return gym.vector.SyncVectorEnv(
        [lambda: quiet_make(env_id, max_episode_steps=max_episode_steps)] * num_envs,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


def make_eval_envs(env_id: str, seeds: list[int]) -> list[gym.Env]:
    """One env per seed for evaluation, seeded once; later resets continue their RNG."""
    envs = [quiet_make(env_id) for _ in seeds]
    for env, seed in zip(envs, seeds, strict=True):
        env.reset(seed=seed)
    return envs


@dataclasses.dataclass(frozen=True)
class GymEnvState:
    """Everything a Gymnasium MuJoCo env carries between steps.

    Attributes:
      mjdata: the whole ``MjData`` as a zlib-compressed pickle in base64. Not just
        ``mj_getState``'s integration state: Gymnasium's rewards read derived quantities that
        ``mj_step`` leaves from its last substep (Ant's and Humanoid's body positions), which
        a recomputation from the state would change. Restore only checkpoints you wrote.
      elapsed_steps: the time limit's step counter (None: no time limit).
      rng: the env's numpy bit generator state (it draws the next reset's noise).
    """

    mjdata: str
    elapsed_steps: int | None
    rng: dict


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def get_env_state(env: gym.Env) -> GymEnvState:
    """The env's state between steps (see ``GymEnvState``)."""
    base = env.unwrapped
    limit = _time_limit(env)
    return GymEnvState(
        mjdata=base64.b64encode(zlib.compress(pickle.dumps(base.data))).decode("ascii"),
        elapsed_steps=None if limit is None else limit._elapsed_steps,
        rng=base.np_random.bit_generator.state,
    )


def set_env_state(env: gym.Env, state: GymEnvState) -> None:
    """Restores what ``get_env_state`` returned (the env must have been reset once)."""
    import mujoco

    base = env.unwrapped
    saved = pickle.loads(zlib.decompress(base64.b64decode(state.mjdata)))
    mujoco.mj_copyData(base.data, base.model, saved)
    limit = _time_limit(env)
    if limit is not None:
        limit._elapsed_steps = state.elapsed_steps
    base.np_random.bit_generator.state = state.rng

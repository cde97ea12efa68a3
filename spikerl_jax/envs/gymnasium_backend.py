"""The host backend's simulator: Gymnasium's MuJoCo tasks on native MuJoCo, stepped from
Python in one vector env for every member, and their state between steps as arrays with a
leading member axis (for checkpoints; one env's: ``gymnasium_state``).

Shapes: ``M`` members, ``N`` envs per member, ``D`` obs dims, ``A`` action dims, ``E``
evaluation episodes per member.
"""

from __future__ import annotations

import logging
import warnings

import gymnasium as gym
import numpy as np

from spikerl_jax.envs.gymnasium_state import envs_state, set_envs_state
from spikerl_jax.envs.mujoco_log import route_mujoco_warnings
from spikerl_jax.envs.registry import DEFAULT_TIME_LIMIT, symmetric


def quiet_make(env_id: str, **kwargs) -> gym.Env:
    """``gym.make`` without the per-env noise (v4 ids are deprecated in Gymnasium 1.x but are
    the paper's tasks; their warning, and MuJoCo's notes on Gymnasium's XML files, would be
    printed once per environment), its actions rescaled to ``[-1, 1]`` where its bounds are
    not ``[-l, l]`` in every dim, and a time limit where it registers none."""
    route_mujoco_warnings()
    gym_logger = logging.getLogger("gymnasium")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = gym_logger.level
        gym_logger.setLevel(logging.ERROR)
        try:
            env = gym.make(env_id, **kwargs)
            space = env.action_space  # (its float32 bounds: a note on float64 ones, hidden)
            if isinstance(space, gym.spaces.Box) and not symmetric(space.low, space.high):
                env = gym.wrappers.RescaleAction(env, -1.0, 1.0)
        finally:
            gym_logger.setLevel(level)
    no_limit = env.spec is None or env.spec.max_episode_steps is None
    if no_limit and kwargs.get("max_episode_steps") is None:
        env = gym.wrappers.TimeLimit(env, DEFAULT_TIME_LIMIT)
    return env


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


class VectorCollector:
    """Steps a vector env of ``M x N`` envs and stages their transitions until taken.

    A finished episode's transition stores its true last observation (``info["final_obs"]``,
    same-step auto-reset) as ``next_obs`` and ``terminated`` as Gymnasium reports it, so a
    time-limit truncation is stored as non-terminal and bootstraps.

    Args:
      envs: the vector env, member-major (env ``m * N + j`` is member ``m``'s ``j``-th).
      capacity: transitions per member between two ``take`` calls.
      seeds: each member's seed (its env ``j`` is reset with ``seed + j``).
    """

    FIELDS = ("obs", "action", "reward", "next_obs", "terminated")

    def __init__(self, envs: gym.vector.SyncVectorEnv, capacity: int, seeds: list[int]):
        self.envs, self.members = envs, len(seeds)
        self.n = envs.num_envs // self.members
        obs, _ = self.envs.reset(seed=[s + j for s in seeds for j in range(self.n)])
        self.obs = obs.reshape(self.members, self.n, -1)
        self.capacity, self._size = capacity, 0
        self._stage: dict[str, np.ndarray] = {}
        self._episode_return = np.zeros((self.members, self.n))
        self._episode_length = np.zeros((self.members, self.n))
        self.finished_returns: list[list[float]] = [[] for _ in range(self.members)]
        # Since the start: episodes ended, their returns and lengths summed, per member.
        self.totals = np.zeros((self.members, 3))

    def step(self, action_MNA: np.ndarray) -> None:
        """Steps every env and stages the ``N`` transitions of each member."""
        m, n = self.members, self.n
        next_obs, reward, terminated, truncated, info = self.envs.step(
            action_MNA.reshape(m * n, -1)
        )
        done = terminated | truncated
        final_obs = next_obs.copy()
        for j in np.flatnonzero(done):
            final_obs[j] = info["final_obs"][j]
        values = (
            self.obs,
            action_MNA,
            reward.reshape(m, n),
            final_obs.reshape(m, n, -1),
            terminated.reshape(m, n),
        )
        rows = slice(self._size, self._size + n)
        for name, value in zip(self.FIELDS, values, strict=True):
            if name not in self._stage:
                shape = (m, self.capacity, *np.shape(value)[2:])
                self._stage[name] = np.zeros(shape, np.float32)
            self._stage[name][:, rows] = value
        self._size += n
        self._episode_return += reward.reshape(m, n)
        self._episode_length += 1
        done = done.reshape(m, n)
        for i in range(m):
            self.finished_returns[i].extend(self._episode_return[i, done[i]])
        ended = np.stack([done, self._episode_return * done, self._episode_length * done], -1)
        self.totals += ended.sum(1)
        self._episode_return[done], self._episode_length[done] = 0.0, 0.0
        self.obs = next_obs.reshape(m, n, -1)

    def take(self) -> dict[str, np.ndarray]:
        """The staged transitions ``{field: (M, rows, ...)}``; the stage starts empty again."""
        chunk = {k: v[:, : self._size] for k, v in self._stage.items()}
        self._size = 0
        return chunk

    def take_returns(self) -> list[float | None]:
        """Each member's mean return of the episodes ended since the last call."""
        means = [float(np.sum(r)) / len(r) if r else None for r in self.finished_returns]
        self.finished_returns = [[] for _ in range(self.members)]
        return means

    def get_state(self) -> dict[str, np.ndarray]:
        """The collector's and its envs' state between rounds, ``{name: (M, N, ...)}``
        (``finished``, the returns of the episodes ended since ``take_returns``, is
        ``(M, 1, K)``, padded with NaN)."""
        assert self._size == 0, "between rounds only"
        m, n = self.members, self.n
        longest = max(1, *map(len, self.finished_returns))  # Orbax saves no empty array
        finished = np.full((m, 1, longest), np.nan)
        for i, returns in enumerate(self.finished_returns):
            finished[i, 0, : len(returns)] = returns
        envs = envs_state(self.envs.envs)
        return {
            "obs": self.obs.copy(),
            "episode_return": self._episode_return.copy(),
            "episode_length": self._episode_length.copy(),
            "totals": self.totals[:, None].copy(),
            "finished": finished,
            **{k: v.reshape(m, n, *v.shape[1:]) for k, v in envs.items()},
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.obs = np.asarray(state["obs"], self.obs.dtype)
        self._episode_return = np.array(state["episode_return"], np.float64)
        self._episode_length = np.array(state["episode_length"], np.float64)
        self.totals = np.array(state["totals"][:, 0], np.float64)
        self.finished_returns = [
            [float(r) for r in row if not np.isnan(r)] for row in state["finished"][:, 0]
        ]
        names = ("physics", "physics_bytes", "elapsed_steps", "rng")
        set_envs_state(self.envs.envs, {k: flat_envs(state[k]) for k in names})

    def close(self) -> None:
        self.envs.close()


def flat_envs(x: np.ndarray) -> np.ndarray:
    """``(M, N, ...)`` to ``(M * N, ...)``."""
    return np.asarray(x).reshape(-1, *np.shape(x)[2:])


def evaluate_episodes(act, envs: list[list[gym.Env]]):
    """One deterministic episode per env, every member's envs batched into one actor call
    per step (over the envs still running).

    Args:
      act: observations ``(M, E, D)`` to ``(actions (M, E, A), {layer: (M, E)})`` (spike
        counts per observation; an empty dict for a non-spiking actor).
      envs: ``E`` Gymnasium envs per member (reset here; their RNGs continue between calls).

    Returns:
      ``(returns (M, E), lengths (M, E), spikes)``: per member, ``{layer: spikes summed
      over the episodes' steps}``.
    """
    m, e = len(envs), len(envs[0])
    obs = np.stack([np.stack([env.reset()[0] for env in row]) for row in envs])
    returns, lengths = np.zeros((m, e)), np.zeros((m, e), dtype=np.int64)
    running = np.ones((m, e), dtype=bool)
    spikes: list[dict[str, float]] = [{} for _ in range(m)]
    while running.any():
        action, counts = act(obs)
        action = np.asarray(action)
        for layer, count in counts.items():
            count = np.asarray(count)
            for i in range(m):
                spikes[i][layer] = spikes[i].get(layer, 0.0) + float(count[i][running[i]].sum())
        for i, j in zip(*np.nonzero(running), strict=True):
            obs[i, j], reward, terminated, truncated, _ = envs[i][j].step(action[i, j])
            returns[i, j] += reward
            lengths[i, j] += 1
            running[i, j] = not (terminated or truncated)
    return returns, lengths, spikes

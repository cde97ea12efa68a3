"""The base of the MJX ports of Gymnasium's MuJoCo tasks (``mjx_tasks``): a task's version,
its options and the reward and reset-noise pieces several tasks share."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from spikerl_jax.envs.mjx_env import MjxEnv


def _uniform(key: jax.Array, size: int, scale: float) -> jax.Array:
    return jax.random.uniform(key, (size,), jnp.float32, -scale, scale)


def _normal(key: jax.Array, size: int, scale: float) -> jax.Array:
    return scale * jax.random.normal(key, (size,), jnp.float32)


def _legged_reward(forward, healthy, ctrl, contact):
    """Ant's and Humanoid's reward, ``forward + healthy - ctrl - contact``, with its terms."""
    terms = {
        "reward_forward": forward,
        "reward_ctrl": -ctrl,
        "reward_contact": -contact,
        "reward_survive": healthy,
    }
    return forward + healthy - ctrl - contact, terms


class Task(MjxEnv):
    """A task with Gymnasium-named options and a v4/v5 switch.

    Args:
      version: "v5" (default) or "v4".
      solver, iterations, ls_iterations: physics overrides (see ``MjxEnv``).
      **options: task attributes named in ``options`` (e.g. ``ctrl_cost_weight``).
    """

    options: tuple[str, ...] = ()
    reset_noise_scale: float
    qvel_noise = "uniform"  # or "normal": how the reset perturbs qvel (per Gymnasium's task)

    def __init__(
        self, version: str = "v5", solver=None, iterations=None, ls_iterations=None, **options
    ):
        if version not in ("v4", "v5"):
            raise ValueError(f"version must be 'v4' or 'v5', got {version!r}")
        for name, value in options.items():
            if name not in self.options:
                raise TypeError(
                    f"{type(self).__name__} has no option {name!r}; its options: "
                    f"{', '.join(self.options)}"
                )
            setattr(self, name, value)
        self.version = version
        super().__init__(solver=solver, iterations=iterations, ls_iterations=ls_iterations)

    def reset_noise(self, key):
        key_qpos, key_qvel = jax.random.split(key)
        model = self.mj_model
        qpos = self.init_qpos + _uniform(key_qpos, model.nq, self.reset_noise_scale)
        noise = _normal if self.qvel_noise == "normal" else _uniform
        qvel = self.init_qvel + noise(key_qvel, model.nv, self.reset_noise_scale)
        return qpos, qvel

    def healthy_reward_paid(self, healthy: jax.Array, reward: float) -> jax.Array:
        """v4 pays the healthy reward on every step (termination included), v5 only while
        healthy."""
        return jnp.where(healthy | (self.version == "v4"), reward, 0.0)

"""The MJX environment interface (as MuJoCo Playground's) and its vectorizing wrappers.

An environment is two pure functions over a ``State`` pytree, ``reset(key)`` and
``step(state, action)``, so that thousands of copies run under ``jax.vmap`` and whole
training intervals run inside ``lax.scan`` on the accelerator.

``MjxEnv`` simulates a Gymnasium MuJoCo task's XML (read from the installed gymnasium
package) exactly as Gymnasium's ``MujocoEnv`` does: ``mj_resetData`` + ``set_state``
(``mj_forward``) on reset; ``ctrl = action``, ``frame_skip`` physics steps and
``mj_rnePostConstraint`` (for contact forces) on step. The physics steps run as one loop of
forward evaluations (``spikerl_jax.envs.mjx_physics``), in which an auto-resetting step also
forwards its next episode's first state. Subclasses define the observation, reward terms,
termination and reset noise of each task (``spikerl_jax.envs.mjx_tasks``).
"""

from __future__ import annotations

import os
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.envs.mjx_physics import mjx, simulate
from spikerl_jax.envs.mujoco_log import mujoco, route_mujoco_warnings


@flax.struct.dataclass
class State:
    """One environment's state (or a batch of them under vmap).

    Attributes:
      data: the MJX physics state.
      obs: the observation ``(D,)``.
      reward: the last step's reward (0 after reset).
      done: 1.0 where the episode ended at the last step (terminated or truncated).
      metrics: the last step's reward terms, by Gymnasium's names.
      info: wrapper bookkeeping, e.g. ``terminated``, ``truncated``, ``final_obs``, ``rng``.
    """

    data: mjx.Data
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    metrics: dict[str, jax.Array]
    info: dict[str, Any]


def gymnasium_asset(xml_file: str) -> str:
    """The path of an XML file shipped in the installed gymnasium package (not copied)."""
    from gymnasium.envs import mujoco as gym_mujoco

    return os.path.join(os.path.dirname(gym_mujoco.__file__), "assets", xml_file)


class MjxEnv:
    """A Gymnasium MuJoCo task on MJX; subclasses set the task's terms.

    Args:
      xml_file: the task's XML in gymnasium's assets.
      frame_skip: physics steps per env step (``dt = frame_skip * timestep``).
      solver: override the XML's constraint solver (``"newton"`` or ``"cg"``), e.g. where the
        XML asks for PGS, which MJX does not have.
      iterations, ls_iterations: override the solver's (line-search) iteration limits; fewer
        are faster and drift from native MuJoCo's results (parity is tested at the defaults).
    """

    xml_file: str
    frame_skip: int
    reward_terms: tuple[str, ...] = ()

    def __init__(
        self,
        xml_file: str | None = None,
        frame_skip: int | None = None,
        solver: str | None = None,
        iterations: int | None = None,
        ls_iterations: int | None = None,
    ):
        self.xml_file = xml_file or self.xml_file
        self.frame_skip = frame_skip or self.frame_skip
        route_mujoco_warnings()
        model = mujoco.MjModel.from_xml_path(gymnasium_asset(self.xml_file))
        if solver is not None:
            model.opt.solver = {
                "newton": mujoco.mjtSolver.mjSOL_NEWTON,
                "cg": mujoco.mjtSolver.mjSOL_CG,
            }[solver]
        if iterations is not None:
            model.opt.iterations = iterations
        if ls_iterations is not None:
            model.opt.ls_iterations = ls_iterations
        self.mj_model = model
        # The JAX implementation runs on every backend; pinned so that a GPU machine with
        # MuJoCo Warp installed does not silently switch to a different simulator.
        self.mjx_model = mjx.put_model(model, impl="jax")
        self.dt = float(model.opt.timestep) * self.frame_skip
        self.init_qpos = jnp.asarray(model.qpos0, jnp.float32)
        self.init_qvel = jnp.zeros(model.nv, jnp.float32)
        low, high = model.actuator_ctrlrange.T
        self.action_low = np.asarray(low, np.float32)
        self.action_high = np.asarray(high, np.float32)

    # --- what a task defines ---------------------------------------------------------------

    def reset_noise(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Initial ``(qpos, qvel)`` around the model's defaults."""
        raise NotImplementedError

    def observation(self, data: mjx.Data) -> jax.Array:
        raise NotImplementedError

    def reward(self, before: mjx.Data, after: mjx.Data, action: jax.Array):
        """``(reward, {term: value})`` of the step from ``before`` to ``after``."""
        raise NotImplementedError

    def terminated(self, data: mjx.Data) -> jax.Array:
        return jnp.zeros((), jnp.bool_)

    # --- the simulation ----------------------------------------------------------------------

    @property
    def observation_size(self) -> int:
        return int(jax.eval_shape(self.reset, jax.random.key(0)).obs.shape[-1])

    @property
    def action_size(self) -> int:
        return int(self.mj_model.nu)

    def physics_init(self, qpos: jax.Array, qvel: jax.Array, qacc_warmstart=None) -> mjx.Data:
        """``mj_resetData`` then Gymnasium's ``set_state`` (which runs ``mj_forward``); a
        solver warm start may be given (to continue another simulator's state)."""
        data = mjx.make_data(self.mjx_model).replace(qpos=qpos, qvel=qvel)
        if qacc_warmstart is not None:
            data = data.replace(qacc_warmstart=qacc_warmstart)
        # MJX's forward writes normalized free-joint quaternions back into qpos; MuJoCo's
        # leaves qpos alone until the first integration, and Gymnasium's reset noise makes
        # them non-unit, which the reset observation shows. Keep the reset's qpos.
        return mjx.forward(self.mjx_model, data).replace(qpos=qpos)

    def physics_step(self, data: mjx.Data, action: jax.Array) -> mjx.Data:
        """``frame_skip`` physics steps with ``ctrl = action``, then the post-constraint RNE
        that Gymnasium runs for contact forces (``cfrc_ext``)."""
        return self._physics(data, action)[0]

    def _physics(self, data, action, fresh=None):
        data, fresh = simulate(self.mjx_model, data.replace(ctrl=action), self.frame_skip, fresh)
        return mjx.rne_postconstraint(self.mjx_model, data), fresh

    def reset(self, key: jax.Array) -> State:
        """A fresh episode's state; jit it (mixing eager arrays into the data recompiles)."""
        qpos, qvel = self.reset_noise(key)
        return self._first_state(self.physics_init(qpos, qvel))

    def step(self, state: State, action: jax.Array) -> State:
        return self._next_state(state, self.physics_step(state.data, action), action)

    def step_and_reset(self, state: State, action: jax.Array, key: jax.Array):
        """``(step(state, action), reset(key))``, their physics in one loop: an auto-resetting
        step traces the forward dynamics once, not twice."""
        qpos, qvel = self.reset_noise(key)
        blank = mjx.make_data(self.mjx_model).replace(qpos=qpos, qvel=qvel)
        data, fresh = self._physics(state.data, action, blank)
        # As physics_init: the reset's qpos kept (forward normalizes free-joint quaternions).
        fresh = self._first_state(fresh.replace(qpos=qpos))
        return self._next_state(state, data, action), fresh

    def _first_state(self, data: mjx.Data) -> State:
        zero = jnp.zeros((), jnp.float32)
        return State(
            data=data,
            obs=self.observation(data),
            reward=zero,
            done=zero,
            metrics={k: zero for k in self.reward_terms},
            info={},
        )

    def _next_state(self, state: State, data: mjx.Data, action: jax.Array) -> State:
        reward, terms = self.reward(state.data, data, action)
        done = self.terminated(data).astype(jnp.float32)
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in terms.items()}
        obs = self.observation(data)
        reward = reward.astype(jnp.float32)
        return state.replace(data=data, obs=obs, reward=reward, done=done, metrics=metrics)


class EpisodeWrapper:
    """Truncates episodes at ``episode_length`` steps (Gymnasium's TimeLimit), auto-resets
    ended ones with a fresh random reset (Gymnasium's same-step auto-reset) and keeps episode
    metrics.

    ``info`` carries ``terminated`` and ``truncated`` of the last step, ``final_obs`` (the
    last observation of an episode that just ended; the observation otherwise), the step
    counter, the running episode return and length, and each env's own reset key. The
    ``metrics`` gain ``episode_return`` and ``episode_length`` of the episode that ended at the
    last step (0 where none ended).
    """

    def __init__(self, env: MjxEnv, episode_length: int = 1000):
        self.env = env
        self.episode_length = episode_length

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, key: jax.Array) -> State:
        key_reset, key_next = jax.random.split(key)
        state = self.env.reset(key_reset)
        zero = jnp.zeros((), jnp.float32)
        info = {
            "terminated": zero,
            "truncated": zero,
            "final_obs": state.obs,
            "steps": jnp.zeros((), jnp.int32),
            "episode_return": zero,
            "episode_length": jnp.zeros((), jnp.int32),
            "rng": key_next,
        }
        metrics = {**state.metrics, "episode_return": zero, "episode_length": zero}
        return state.replace(info=info, metrics=metrics)

    def step(self, state: State, action: jax.Array) -> State:
        info = state.info
        key_reset, key_next = jax.random.split(info["rng"])
        inner = state.replace(info={}, metrics={})
        inner, fresh = self.env.step_and_reset(inner, action, key_reset)
        steps = info["steps"] + 1
        terminated = inner.done
        truncated = ((terminated == 0) & (steps >= self.episode_length)).astype(jnp.float32)
        done = jnp.maximum(terminated, truncated)
        episode_return = info["episode_return"] + inner.reward
        episode_length = info["episode_length"] + 1

        ended = done > 0
        data = jax.tree.map(lambda a, b: jnp.where(ended, a, b), fresh.data, inner.data)
        obs = jnp.where(ended, fresh.obs, inner.obs)
        metrics = {
            **inner.metrics,
            "episode_return": jnp.where(ended, episode_return, 0.0),
            "episode_length": jnp.where(ended, episode_length, 0).astype(jnp.float32),
        }
        info = {
            "terminated": terminated,
            "truncated": truncated,
            "final_obs": inner.obs,
            "steps": jnp.where(ended, 0, steps),
            "episode_return": jnp.where(ended, 0.0, episode_return),
            "episode_length": jnp.where(ended, 0, episode_length),
            "rng": key_next,
        }
        return State(data=data, obs=obs, reward=inner.reward, done=done, metrics=metrics, info=info)


class VmapWrapper:
    """``num_envs`` independent copies: ``reset(key)`` splits the key, ``step`` is vmapped."""

    def __init__(self, env, num_envs: int):
        self.env = env
        self.num_envs = num_envs

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, key: jax.Array) -> State:
        return jax.vmap(self.env.reset)(jax.random.split(key, self.num_envs))

    def step(self, state: State, action: jax.Array) -> State:
        return jax.vmap(self.env.step)(state, action)


def run_episodes(env: MjxEnv, act, key: jax.Array, episodes: int, horizon: int):
    """``episodes`` deterministic episodes of the policy ``act`` in parallel, each until
    termination or ``horizon`` steps.

    Args:
      env: the task (unwrapped: the episodes end at their first ``done``).
      act: observations ``(E, D)`` to ``(actions (E, A), {layer: spike counts (E,)})``.
      key: resets the episodes.

    Returns:
      ``(returns (E,), lengths (E,), spikes)``: ``{layer: spikes summed over the steps of
      the episodes still running}``.
    """
    states = jax.vmap(env.reset)(jax.random.split(key, episodes))
    _, counts = jax.eval_shape(act, states.obs)

    def body(carry, _):
        states, alive, returns, lengths, spikes = carry
        action, counts = act(states.obs)
        states = jax.vmap(env.step)(states, action)
        spikes = {k: spikes[k] + jnp.sum(counts[k] * alive) for k in spikes}
        returns = returns + states.reward * alive
        lengths = lengths + alive
        alive = alive * (1.0 - states.done)
        return (states, alive, returns, lengths, spikes), None

    zeros = jnp.zeros(episodes)
    init = (states, jnp.ones(episodes), zeros, zeros, {k: jnp.zeros(()) for k in counts})
    (_, _, returns, lengths, spikes), _ = jax.lax.scan(body, init, None, horizon)
    return returns, lengths, spikes

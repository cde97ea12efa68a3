"""The on-device training loop (``--backend mjx``): MJX envs, replay and TD3 in one program.

One compiled call runs a whole evaluation interval as nested ``lax.scan``s:

    for each round (update_every env steps):            # outer scan
        for each vector step (update_every / N of them): # inner scan
            act (uniform random during start_steps, else the noisy PopSAN actor) in N envs
            step the N MJX envs (auto-reset, 1000-step truncation)
        insert the round's transitions, update the normalizer
        if update_after transitions are in: updates_per_round TD3 updates

so the host only logs, evaluates (also on device: vmapped deterministic episodes) and
checkpoints. The paper's schedule is ``--num-envs 1 --update-every 50 --updates-per-round
50``; a throughput setting is e.g. ``--num-envs 1024 --update-every 4096
--updates-per-round 64`` (the update-to-data ratio is updates_per_round / update_every).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.envs.gymnasium_backend import EnvSpec
from spikerl_jax.envs.mjx_env import EpisodeWrapper, VmapWrapper
from spikerl_jax.envs.mjx_tasks import make
from spikerl_jax.parallel import AXIS, global_buffer, local_buffer, state_specs
from spikerl_jax.replay import Transition
from spikerl_jax.train import EvalResult, Learner, TrainState


def make_interval(cfg: TrainConfig, spec: EnvSpec, learner: Learner, env, key_explore):
    """The compiled body of an interval: ``run(state, env_state, step, rounds)``.

    Args:
      cfg, spec, learner: the run's configuration, task shape and compiled pieces.
      env: the vectorized training env (``num_envs`` copies, auto-resetting).
      key_explore: the exploration key (folded with the step, as the host backend does).

    Returns:
      ``run(state, env_state, step, rounds) -> (state, env_state, outputs)`` with ``outputs``
      stacked per round: update ``metrics``, ``updated`` (bool), ``return_sum`` and ``ended``
      (returns and count of the training episodes that ended). With a data-parallel
      learner it runs under ``shard_map``: each device steps its ``num_envs / devices`` envs
      (``env_state`` is split on its env axis) into its own replay shard.
    """
    mesh = learner.mesh
    devices = 1 if mesh is None else mesh.size
    n, steps_per_round = cfg.num_envs // devices, cfg.update_every // cfg.num_envs
    limit, action_dim = spec.action_limit, spec.action_dim
    key_random, key_policy = jax.random.split(key_explore)

    def device_key(key):
        return key if mesh is None else jax.random.fold_in(key, jax.lax.axis_index(AXIS))

    def vector_step(state: TrainState, carry, _):
        env_state, step = carry

        def random_action():
            key = device_key(jax.random.fold_in(key_random, step))
            return jax.random.uniform(key, (n, action_dim), jnp.float32, -limit, limit)

        def policy_action():
            return learner.explore(state.td3.actor_params, state.normalizer, env_state.obs,
                                   device_key(key_policy), step)  # fmt: skip

        action = jax.lax.cond(step < cfg.start_steps, random_action, policy_action)
        next_state = env.step(env_state, action)
        transition = Transition(
            obs=env_state.obs,
            action=action,
            reward=next_state.reward,
            next_obs=next_state.info["final_obs"],  # the true last obs of an ended episode
            terminated=next_state.info["terminated"],  # truncations bootstrap
        )
        episodes = (next_state.metrics["episode_return"].sum(), next_state.done.sum())
        return (next_state, step + cfg.num_envs), (transition, episodes)  # global steps

    def one_round(carry, _):
        state, env_state, step = carry
        (env_state, step), (transitions, (returns, ended)) = jax.lax.scan(
            lambda c, x: vector_step(state, c, x), (env_state, step), None, steps_per_round
        )
        chunk = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), transitions)  # (S*N, ...)
        # Without resume on this backend, the buffer holds every step so far.
        ready = step >= cfg.update_after

        def skip(s):
            _, metrics = jax.eval_shape(learner.local_ingest_and_update, s, chunk)
            return learner.local_ingest(s, chunk), jax.tree.map(jnp.zeros_like, metrics)

        state, metrics = jax.lax.cond(
            ready, lambda s: learner.local_ingest_and_update(s, chunk), skip, state
        )
        episodes = (returns.sum(), ended.sum())
        if mesh is not None:
            episodes = jax.lax.psum(episodes, AXIS)
        outputs = {"metrics": metrics, "updated": ready, "return_sum": episodes[0],
                   "ended": episodes[1]}  # fmt: skip
        return (state, env_state, step), outputs

    def run(state: TrainState, env_state, step, rounds: int):
        (state, env_state, _), outputs = jax.lax.scan(
            one_round, (state, env_state, step), None, rounds
        )
        return state, env_state, outputs

    if mesh is None:
        return run
    specs = state_specs(TrainState)

    def run_sharded(state: TrainState, env_state, step, rounds: int):
        def body(state, env_state, step):
            state = state.replace(buffer=local_buffer(state.buffer))
            state, env_state, outputs = run(state, env_state, step, rounds)
            return state.replace(buffer=global_buffer(state.buffer)), env_state, outputs

        return jax.shard_map(body, mesh=mesh, in_specs=(specs, P(AXIS), P()),
                             out_specs=(specs, P(AXIS), P()),
                             check_vma=False)(state, env_state, step)  # fmt: skip

    return run_sharded


def make_evaluation(cfg: TrainConfig, spec: EnvSpec, learner: Learner, env):
    """``evaluate(actor_params, normalizer, key) -> (returns (E,), lengths (E,), spikes)``:
    ``eval_episodes`` deterministic episodes in parallel, each until termination or the
    task's step limit; ``spikes`` are the actor's spike totals per layer over them."""
    episodes, horizon = cfg.eval_episodes, spec.max_episode_steps

    def evaluate(actor_params, normalizer, key):
        key_reset, key_encoder = jax.random.split(key)
        states = jax.vmap(env.reset)(jax.random.split(key_reset, episodes))

        def body(carry, _):
            states, alive, returns, lengths, spikes = carry
            action, counts = learner.policy_spikes(actor_params, normalizer, states.obs,
                                                   key_encoder)  # fmt: skip
            states = jax.vmap(env.step)(states, action)
            spikes = {k: spikes[k] + jnp.sum(counts[k] * alive) for k in spikes}
            returns = returns + states.reward * alive
            lengths = lengths + alive
            alive = alive * (1.0 - states.done)
            return (states, alive, returns, lengths, spikes), None

        _, counts = jax.eval_shape(learner.policy_spikes, actor_params, normalizer,
                                   states.obs, key_encoder)  # fmt: skip
        zeros = jnp.zeros(episodes)
        init = (states, jnp.ones(episodes), zeros, zeros,
                {k: jnp.zeros(()) for k in counts})  # fmt: skip
        (_, _, returns, lengths, spikes), _ = jax.lax.scan(body, init, None, horizon)
        return returns, lengths, spikes

    return evaluate


class DeviceBackend:
    """The MJX backend of ``spikerl_jax.train.train`` (same interface as ``HostBackend``)."""

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, learner: Learner, key_explore, key_eval):
        for name in ("eval_every", "total_steps"):
            if getattr(cfg, name) % cfg.update_every:
                raise ConfigError(
                    f"--backend mjx runs whole rounds: --{name.replace('_', '-')} "
                    f"({getattr(cfg, name)}) must be a multiple of --update-every "
                    f"({cfg.update_every})"
                )
        self.cfg, self.key_eval = cfg, key_eval
        env = make(cfg.env, iterations=cfg.mjx_iterations, ls_iterations=cfg.mjx_ls_iterations)
        train_env = VmapWrapper(EpisodeWrapper(env, spec.max_episode_steps), cfg.num_envs)
        key_env = jax.random.fold_in(jax.random.key(cfg.seed), 1)
        placement = None if learner.mesh is None else NamedSharding(learner.mesh, P(AXIS))
        self.env_state = jax.jit(train_env.reset, out_shardings=placement)(key_env)
        run = make_interval(cfg, spec, learner, train_env, key_explore)
        self._run = jax.jit(run, static_argnums=3, donate_argnums=(0, 1))
        self._evaluate = jax.jit(make_evaluation(cfg, spec, learner, env))
        self._returns = [0.0, 0]

    def advance(self, state: TrainState, host: dict):
        """All rounds up to the next evaluation (or the run's end) in one compiled call.

        The seconds returned cover the whole call (env steps included): updates and env
        steps are one program here.
        """
        cfg, step = self.cfg, host["step"]
        target = min(host["next_eval"], cfg.total_steps)
        rounds = max(1, (target - step) // cfg.update_every)
        t0 = time.perf_counter()
        state, self.env_state, out = self._run(state, self.env_state, jnp.int32(step), rounds)
        out = jax.device_get(out)
        seconds = time.perf_counter() - t0
        host["step"] = step + rounds * cfg.update_every
        host["buffered"] = min(host["step"], cfg.replay_size)
        self._returns[0] += float(out["return_sum"].sum())
        self._returns[1] += int(out["ended"].sum())
        updated = np.flatnonzero(out["updated"])
        if not len(updated):
            return state, None, 0.0
        host["updates"] += len(updated) * cfg.updates_per_round
        last = {k: float(v[updated[-1]]) for k, v in out["metrics"].items()}
        return state, last, seconds

    def evaluate(self, state: TrainState, step: int) -> EvalResult:
        key = jax.random.fold_in(self.key_eval, step)
        returns, lengths, spikes = jax.device_get(
            self._evaluate(state.td3.actor_params, state.normalizer, key)
        )
        return EvalResult(float(returns.mean()), float(returns.std()), float(lengths.mean()),
                          {k: float(v) for k, v in spikes.items()}, int(lengths.sum()))  # fmt: skip

    def take_train_return(self) -> float | None:
        total, count = self._returns
        self._returns = [0.0, 0]
        return total / count if count else None

    def snapshot(self) -> dict:
        return {"backend": "mjx"}

    def restore(self, saved: dict) -> None:
        raise ConfigError("--resume is not available for --backend mjx runs yet")

    def close(self) -> None:
        pass

"""The Gymnasium backend: native MuJoCo envs stepped from Python, compiled learner rounds.

Per round (``update_every`` steps per member), the host steps one vector env holding every
member's ``num_envs`` envs, with one batched actor call per vector step for all members
(uniform random actions during the first ``start_steps``); then one compiled call inserts the
round's transitions into the replay buffers, updates the normalizers and, once
``update_after`` transitions are in, runs the round's updates (``Learner.learn``).

Shapes: ``M`` members, ``N`` envs per member (this process's), ``D`` obs dims, ``A`` action
dims, ``E`` evaluation episodes per member.
"""

from __future__ import annotations

import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from spikerl_jax.config import TrainConfig
from spikerl_jax.envs.gymnasium_backend import (
    get_env_state,
    make_eval_envs,
    make_vector_env,
    set_env_state,
)
from spikerl_jax.envs.registry import EnvSpec
from spikerl_jax.rl.replay import Transition
from spikerl_jax.schema import from_jsonable, to_jsonable
from spikerl_jax.training.backend import EvalResult, RoundStats, first_nonfinite
from spikerl_jax.training.learner import Learner
from spikerl_jax.training.state import CollectorState, HostEnvsState, LoopState, RunState

# Seed offsets: each process steps its own envs, and evaluation envs never share a seed with
# training envs.
PROCESS_SEED_STRIDE = 7919
EVAL_SEED_OFFSET = 1_000_003


class HostCollector:
    """Steps a vector env of ``M x N`` envs and stages their transitions until the round is
    ingested.

    A finished episode's transition stores its true last observation (``info["final_obs"]``,
    same-step auto-reset) as ``next_obs`` and ``terminated`` as Gymnasium reports it, so a
    time-limit truncation is stored as non-terminal and bootstraps.

    Args:
      envs: the vector env, member-major (env ``m * N + j`` is member ``m``'s ``j``-th).
      spec: the task's shapes.
      capacity: transitions per member per round.
      seeds: each member's seed (its env ``j`` is reset with ``seed + j``).
    """

    def __init__(self, envs, spec: EnvSpec, capacity: int, seeds: list[int]):
        self.envs, self.members = envs, len(seeds)
        self.n = envs.num_envs // self.members
        obs, _ = envs.reset(seed=[s + j for s in seeds for j in range(self.n)])
        self.obs = obs.reshape(self.members, self.n, -1)
        m = self.members
        self._stage = {
            "obs": np.zeros((m, capacity, spec.obs_dim), np.float32),
            "action": np.zeros((m, capacity, spec.action_dim), np.float32),
            "reward": np.zeros((m, capacity), np.float32),
            "next_obs": np.zeros((m, capacity, spec.obs_dim), np.float32),
            "terminated": np.zeros((m, capacity), np.float32),
        }
        self._size = 0
        self._episode_return = np.zeros((m, self.n))
        self.finished_returns: list[list[float]] = [[] for _ in range(m)]

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
        rows = slice(self._size, self._size + n)
        fields = dict(obs=self.obs, action=action_MNA, reward=reward.reshape(m, n),
                      next_obs=final_obs.reshape(m, n, -1),
                      terminated=terminated.reshape(m, n))  # fmt: skip
        for name, value in fields.items():
            self._stage[name][:, rows] = value
        self._size += n
        self._episode_return += reward.reshape(m, n)
        done = done.reshape(m, n)
        for member in range(m):
            self.finished_returns[member].extend(self._episode_return[member, done[member]])
        self._episode_return[done] = 0.0
        self.obs = next_obs.reshape(m, n, -1)

    def take(self) -> Transition:
        """The staged transitions ``(M, rows, ...)`` as device arrays; the stage starts empty
        again."""
        chunk = Transition(**{k: jnp.asarray(v[:, : self._size]) for k, v in self._stage.items()})
        self._size = 0
        return chunk

    def get_state(self) -> CollectorState:
        """The collector's and its envs' state between rounds (the stage is empty then)."""
        assert self._size == 0, "checkpoint only between rounds"
        return CollectorState(
            obs=self.obs.tolist(),
            episode_return=self._episode_return.tolist(),
            finished_returns=[list(map(float, r)) for r in self.finished_returns],
            envs=[get_env_state(env) for env in self.envs.envs],
        )

    def set_state(self, state: CollectorState) -> None:
        self.obs = np.asarray(state.obs, self.obs.dtype)
        self._episode_return = np.asarray(state.episode_return)
        self.finished_returns = [list(r) for r in state.finished_returns]
        for env, env_state in zip(self.envs.envs, state.envs, strict=True):
            set_env_state(env, env_state)


def evaluate_episodes(act, envs: list[list]) -> list[EvalResult]:
    """One deterministic episode per env, all members' envs batched into one actor call per
    step (over the envs still running).

    Args:
      act: observations ``(M, E, D)`` to ``(actions (M, E, A), {layer: (M, E)})`` (spike
        counts per observation; an empty dict for a non-spiking actor).
      envs: ``E`` Gymnasium envs per member (reset here; their RNGs continue between calls).

    Returns:
      Each member's result.
    """
    m, e = len(envs), len(envs[0])
    obs = np.stack([np.stack([env.reset()[0] for env in row]) for row in envs])
    returns, lengths = np.zeros((m, e)), np.zeros((m, e), dtype=np.int64)
    running = np.ones((m, e), dtype=bool)
    spikes: list[dict[str, float]] = [{} for _ in range(m)]
    while running.any():
        action, counts = act(obs)
        action = np.asarray(action)
        for layer, count in jax.device_get(counts).items():
            for i in range(m):
                spikes[i][layer] = spikes[i].get(layer, 0.0) + float(count[i][running[i]].sum())
        for i, j in zip(*np.nonzero(running), strict=True):
            obs[i, j], reward, terminated, truncated, _ = envs[i][j].step(action[i, j])
            returns[i, j] += reward
            lengths[i, j] += 1
            running[i, j] = not (terminated or truncated)
    return [EvalResult(float(returns[i].mean()), float(returns[i].std()),
                       float(lengths[i].mean()), spikes[i], int(lengths[i].sum()))
            for i in range(m)]  # fmt: skip


class HostBackend:
    """The Gymnasium backend (``spikerl_jax.training.backend.Backend``).

    Args:
      cfg: the run's (or population's shared) configuration.
      spec: the task's shapes.
      learner: the compiled pieces.
      seeds: each member's seed.
      keys: each member's keys by purpose (``spikerl_jax.training.learner.member_keys``).
    """

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, learner: Learner, seeds: list[int],
                 keys: dict):  # fmt: skip
        self.cfg, self.spec, self.learner = cfg, spec, learner
        self.key_explore, self.key_eval = keys["explore"], keys["eval"]
        # With several processes each steps its share of the envs (its own seeds) and feeds
        # its rows of every round to its devices' replay shards.
        self.processes = jax.process_count()
        offset = PROCESS_SEED_STRIDE * jax.process_index()
        seeds = [s + offset for s in seeds]
        self.rngs = [np.random.default_rng(s) for s in seeds]  # random actions, first phase
        n = cfg.num_envs // self.processes
        self.envs = make_vector_env(cfg.env, len(seeds) * n)
        self.collector = HostCollector(self.envs, spec, cfg.update_every // self.processes,
                                       seeds)  # fmt: skip
        self.eval_envs = [make_eval_envs(cfg.env, [s + EVAL_SEED_OFFSET + e
                                                   for e in range(cfg.eval_episodes)])
                          for s in seeds]  # fmt: skip
        layout = learner.layout
        self._rows = None
        if self.processes > 1:
            self._rows = layout.sharding(layout.spec(0))

    def init_state(self, learner_state) -> RunState:
        return RunState(learner=learner_state)

    def advance(self, state: RunState, loop: LoopState, target: int, stop=None):
        """Rounds until ``target`` steps (or an earlier stop request, or non-finite losses)."""
        cfg, stats = self.cfg, RoundStats()
        while loop.step < target and not (stop is not None and stop.requested):
            state, loop, metrics, update_s = self._round(state, loop)
            if metrics is not None:
                stats = stats.add(metrics, update_s, cfg.updates_per_round)
                if stats.nonfinite_step is None and first_nonfinite(metrics):
                    return state, loop, stats.replace(nonfinite_step=loop.step)
        return state, loop, stats

    def _round(self, state: RunState, loop: LoopState):
        cfg, spec = self.cfg, self.spec
        n_local = cfg.num_envs // self.processes
        learner = state.learner
        actor, normalizer, noise, keys = self.learner.acting_view(
            (learner.td3.actor_params, learner.normalizer,
             learner.td3.hparams.exploration_noise, self.key_explore)
        )  # fmt: skip
        step = loop.step
        for _ in range(0, cfg.update_every // self.processes, n_local):
            if step < cfg.start_steps:
                action = np.stack([rng.uniform(-spec.action_limit, spec.action_limit,
                                               (n_local, spec.action_dim))
                                   for rng in self.rngs])  # fmt: skip
            else:
                action = self.learner.explore(actor, normalizer, self.collector.obs, keys, step,
                                              noise)  # fmt: skip
            self.collector.step(action)
            step += cfg.num_envs
        buffered = min(loop.buffered + cfg.update_every, cfg.replay_size)
        loop = dataclasses.replace(loop, step=step, buffered=buffered)
        chunk = self.collector.take()
        if self._rows is not None:
            chunk = jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(self._rows, np.asarray(x)),
                chunk,
            )
        if not (step >= cfg.update_after and buffered >= cfg.update_after):
            return RunState(learner=self.learner.ingest(learner, chunk)), loop, None, 0.0
        t0 = time.perf_counter()
        learner, metrics = self.learner.learn(learner, chunk)
        metrics = jax.device_get(metrics)
        update_s = time.perf_counter() - t0
        loop = dataclasses.replace(loop, updates=loop.updates + cfg.updates_per_round)
        return RunState(learner=learner), loop, metrics, update_s

    def evaluate(self, state: RunState, step: int) -> list[EvalResult]:
        """Every member's ``eval_episodes`` deterministic episodes as one batch."""
        keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(self.key_eval)
        learner = state.learner
        actor, normalizer, keys = self.learner.acting_view(
            (learner.td3.actor_params, learner.normalizer, keys)
        )

        def act(obs_MED):
            return self.learner.act_with_spikes(actor, normalizer, obs_MED, keys)

        results = evaluate_episodes(act, self.eval_envs)
        if self.processes == 1:
            return results
        return [_gather_result(r) for r in results]

    def take_train_returns(self) -> list[float | None]:
        """Each member's mean return of the training episodes ended since the last call (over
        every process)."""
        means = []
        for returns in self.collector.finished_returns:
            total, count = float(np.sum(returns)), len(returns)
            if self.processes > 1:
                every = np.asarray(multihost_utils.process_allgather(np.array([total, count])))
                total, count = float(every[:, 0].sum()), int(every[:, 1].sum())
            means.append(total / count if count else None)
            returns.clear()
        return means

    def snapshot(self) -> tuple[HostEnvsState, ...]:
        """Every process's envs (gathered: process 0 writes them into the checkpoint)."""
        mine = HostEnvsState(
            collector=self.collector.get_state(),
            action_rngs=[rng.bit_generator.state for rng in self.rngs],
            eval_rngs=[[env.unwrapped.np_random.bit_generator.state for env in row]
                       for row in self.eval_envs],
        )  # fmt: skip
        if self.processes == 1:
            return (mine,)
        return tuple(from_jsonable(HostEnvsState, s) for s in _allgather_json(to_jsonable(mine)))

    def restore(self, saved: tuple[HostEnvsState, ...]) -> None:
        if len(saved) != self.processes:
            from spikerl_jax.training.checkpoint import CheckpointError

            raise CheckpointError(
                f"the checkpoint holds the envs of {len(saved)} process(es); resume it with "
                f"--num-processes {len(saved)}"
            )
        mine = saved[jax.process_index()]
        self.collector.set_state(mine.collector)
        for rng, state in zip(self.rngs, mine.action_rngs, strict=True):
            rng.bit_generator.state = state
        for row, states in zip(self.eval_envs, mine.eval_rngs, strict=True):
            # A resume may change --eval-episodes: envs beyond the saved ones start fresh.
            for env, rng in zip(row, states, strict=False):
                env.unwrapped.np_random.bit_generator.state = rng

    def close(self) -> None:
        self.envs.close()


def _gather_result(result: EvalResult) -> EvalResult:
    """A member's evaluation over every process (each ran ``eval_episodes`` episodes)."""
    layers = sorted(result.spikes)
    mine = np.array([result.mean, result.std, result.length, result.inferences,
                     *(result.spikes[k] for k in layers)])  # fmt: skip
    every = np.asarray(multihost_utils.process_allgather(mine))  # (processes, fields)
    mean = float(every[:, 0].mean())
    second_moment = float(np.mean(every[:, 1] ** 2 + every[:, 0] ** 2))
    return EvalResult(mean, max(second_moment - mean**2, 0.0) ** 0.5, float(every[:, 2].mean()),
                      {k: float(every[:, 4 + i].sum()) for i, k in enumerate(layers)},
                      int(every[:, 3].sum()))  # fmt: skip


def _allgather_json(value) -> list:
    """Every process's JSON-able ``value``, in process order."""
    data = np.frombuffer(json.dumps(value).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array([data.size])))[:, 0]
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: data.size] = data
    every = np.asarray(multihost_utils.process_allgather(padded))
    return [json.loads(row[:size].tobytes()) for row, size in zip(every, sizes, strict=True)]

"""The Gymnasium backend: native MuJoCo envs stepped from Python around the compiled rounds.

Per round (``update_every`` steps per member), the host steps one vector env holding every
member's envs, with one batched actor call per vector step for all members (uniform random
actions before ``start_steps``); then ``Learner.learn`` (or ``ingest``, before
``update_after``) takes the round's transitions: the schedule (``training.schedule``) decides.

Shapes: ``M`` members, ``N`` envs per member (this process's), ``D`` obs dims, ``A`` action
dims, ``E`` evaluation episodes per member.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.batching import counted, over_members
from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.envs.gymnasium_backend import (
    VectorCollector,
    evaluate_episodes,
    make_eval_envs,
    make_vector_env,
)
from spikerl_jax.envs.gymnasium_state import rng_array, set_rng
from spikerl_jax.envs.registry import EnvSpec
from spikerl_jax.processes import allgather, gather_axis1, process_share
from spikerl_jax.reporting.records import EvalResult, eval_results
from spikerl_jax.rl.replay import Transition
from spikerl_jax.training.backend import RoundStats
from spikerl_jax.training.learner import Learner
from spikerl_jax.training.members import Members
from spikerl_jax.training.parallel import Layout
from spikerl_jax.training.schedule import Counters, acts_at_random, after_round, updates_after
from spikerl_jax.training.state import RunState

# --act-device auto acts on the host CPU up to this many observations per actor call: on an
# accelerator, dispatch rather than arithmetic bounds small batches (BENCHMARKS.md).
ACT_ON_CPU_MAX_OBSERVATIONS = 64


def platform() -> str:
    """The training devices' platform (``"cpu"``, ``"gpu"``, ``"tpu"``)."""
    return jax.default_backend()


def acting_device(cfg: TrainConfig, layout: Layout) -> jax.Device | None:
    """The device the host loop acts on (``cfg.act_device`` resolved), or ``None`` for the
    training device."""
    if cfg.backend != "gymnasium":
        return None
    if platform() == "cpu":
        # Members split over CPU devices (one per core: split_cpu_for_members) act on one:
        # a batch-1 actor call costs less there than split across the cores.
        return jax.local_devices()[0] if layout.mode == "members" else None
    if cfg.act_device == "accelerator":
        return None
    observations = layout.members * cfg.num_envs // jax.process_count()
    if cfg.act_device == "auto" and observations > ACT_ON_CPU_MAX_OBSERVATIONS:
        return None
    return jax.devices("cpu")[0]


def acting_view(layout: Layout, device: jax.Device | None, tree):
    """``tree`` (member-batched device arrays) as the acting functions take it: in the
    data-parallel layout one device's copy of the replicated arrays (acting once, not once
    per device; with several processes each on its own, as a global array may only meet
    inputs that are equal on every process), copied to ``device`` (the acting functions then
    run there) unless it is ``None``."""
    if layout.mode == "data":
        tree = jax.tree.map(lambda x: x.addressable_data(0), tree)
    return tree if device is None else jax.device_put(tree, device)


def acting(fn: Callable, name: str, members: int, in_axes=0) -> Callable:
    """A policy function for host-side acting: member-batched observations ``(M, B, D)`` in,
    numpy actions ``(M, B, A)`` (and spike counts ``{layer: (M, B)}``) out, the other
    arguments member-batched in the acting view (``acting_view``)."""
    compiled = jax.jit(counted(name, over_members(fn, members, in_axes)))

    def call(*args):
        out = compiled(*args)
        return (np.asarray(out[0]), out[1]) if isinstance(out, tuple) else np.asarray(out)

    return call


# Seed offsets: each process steps its own envs, and evaluation envs never share a seed with
# training envs.
PROCESS_SEED_STRIDE = 7919
EVAL_SEED_OFFSET = 1_000_003


class HostBackend:
    """The Gymnasium backend (``spikerl_jax.training.backend.Backend``).

    With several processes each steps its share of the envs (its own seeds) and feeds its
    rows of every round to its devices' replay shards.

    Args:
      cfg, spec, learner: the population's configuration, task shape and compiled pieces.
      members: what each member brings (its seed, keys and exploration noise).
    """

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, learner: Learner, members: Members):
        self.cfg, self.spec, self.learner, self.members = cfg, spec, learner, members
        self.processes = jax.process_count()
        seeds = [s + PROCESS_SEED_STRIDE * jax.process_index() for s in members.seeds]
        self.rngs = [np.random.default_rng(s) for s in seeds]  # random actions
        self.n = cfg.num_envs // self.processes
        self.collector = VectorCollector(
            make_vector_env(cfg.env, len(seeds) * self.n), cfg.update_every // self.processes, seeds
        )
        self.eval_envs = [
            make_eval_envs(cfg.env, [s + EVAL_SEED_OFFSET + e for e in range(cfg.eval_episodes)])
            for s in seeds
        ]
        layout, policies = learner.layout, learner.policies
        self._rows = layout.sharding(layout.spec(0)) if self.processes > 1 else None
        self.view = functools.partial(acting_view, layout, acting_device(cfg, layout))
        self.explore = acting(policies.explore, "explore", layout.members, (0, 0, 0, 0, None, 0))
        self.act_with_spikes = acting(policies.act_with_spikes, "act_with_spikes", layout.members)

    def rounds(self, state: RunState, counters: Counters, target: int, stop=None, on_round=None):
        """Collects and learns round by round until ``target`` steps (or an earlier stop
        request, or non-finite losses), calling ``on_round(steps)`` after each; returns the
        state and the rounds' ``RoundStats``."""
        stats = RoundStats()
        while counters.step < target and not (stop is not None and stop.requested):
            keys, noise = self.members.keys["explore"], self.members.noise
            explorer = self.learner.explorer(state.learner.agent)
            acting = self.view((explorer, state.learner.normalizer, keys, noise))
            chunk = self.collect(acting, counters.step)
            update = updates_after(self.cfg, counters)
            t0 = time.perf_counter()
            if update:
                learner, metrics = self.learner.learn(state.learner, chunk)
                stats = stats.add(jax.device_get(metrics), time.perf_counter() - t0)
            else:
                learner = self.learner.ingest(state.learner, chunk)
            state = state.replace(learner=learner)
            counters = after_round(self.cfg, counters)
            stats = dataclasses.replace(stats, rounds=stats.rounds + 1)
            if on_round is not None:
                on_round(self.cfg.update_every)
            if stats.nonfinite_step is None and update and not stats.finite():
                return state, dataclasses.replace(stats, nonfinite_step=counters.step)
        return state, stats

    def collect(self, acting, step: int) -> Transition:
        """One round's vector steps from ``step``; its transitions ``(M, rows, ...)``."""
        cfg, spec = self.cfg, self.spec
        explorer, normalizer, keys, noise = acting
        for _ in range(0, cfg.update_every // self.processes, self.n):
            if acts_at_random(cfg, step):
                limit = spec.action_limit
                action = np.stack(
                    [rng.uniform(-limit, limit, (self.n, spec.action_dim)) for rng in self.rngs]
                )
            else:
                action = self.explore(explorer, normalizer, self.collector.obs, keys, step, noise)
            self.collector.step(action)
            step += cfg.num_envs
        chunk = {k: jnp.asarray(v) for k, v in self.collector.take().items()}
        if self._rows is not None:
            chunk = {
                k: jax.make_array_from_process_local_data(self._rows, np.asarray(v))
                for k, v in chunk.items()
            }
        return Transition(**chunk)

    def evaluate(self, state: RunState, step: int) -> list[EvalResult]:
        """Every member's ``eval_episodes`` deterministic episodes as one batch."""
        keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(self.members.keys["eval"])
        policy = state.policy
        actor, normalizer, keys = self.view((policy.actor_params, policy.normalizer, keys))

        def act(obs_MED):
            action, counts = self.act_with_spikes(actor, normalizer, obs_MED, keys)
            return action, jax.device_get(counts)

        returns, lengths, spikes = evaluate_episodes(act, self.eval_envs)
        if self.processes > 1:  # every process ran eval_episodes episodes of its own
            returns, lengths = gather_axis1(returns), gather_axis1(lengths)
            spikes = [
                {k: float(np.sum(allgather(np.array(v)))) for k, v in member.items()}
                for member in spikes
            ]
        return eval_results(returns, lengths, spikes)

    def take_train_returns(self) -> list[float | None]:
        """Each member's mean return of the training episodes ended since the last call (over
        every process)."""
        if self.processes == 1:
            return self.collector.take_returns()
        sums = [(float(np.sum(r)), len(r)) for r in self.collector.finished_returns]
        self.collector.take_returns()
        every = allgather(np.array(sums))  # (P, M, 2)
        total, count = every[..., 0].sum(0), every[..., 1].sum(0)
        return [float(t) / c if c else None for t, c in zip(total, count, strict=True)]

    def episode_totals(self) -> np.ndarray:
        """``(M, 3)``: training episodes ended since the start, their returns and lengths
        summed (over every process)."""
        totals = self.collector.totals
        return totals if self.processes == 1 else allgather(totals).sum(0)

    def snapshot(self) -> dict[str, np.ndarray]:
        """The envs' and generators' state as arrays ``(M, ...)``; axis 1 runs over the
        processes' envs, generators or evaluation envs (gathered onto every process)."""
        mine = {
            **self.collector.get_state(),
            "action_rng": np.stack([rng_array(rng) for rng in self.rngs])[:, None],
            "eval_rng": np.stack(
                [
                    np.stack([rng_array(env.unwrapped.np_random) for env in row])
                    for row in self.eval_envs
                ]
            ),
        }
        if self.processes == 1:
            return mine
        return {k: gather_axis1(v) for k, v in mine.items()}

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        processes = saved["action_rng"].shape[1]
        if processes != self.processes:
            raise ConfigError(
                f"the checkpoint holds the envs of {processes} process(es); resume it with "
                f"--num-processes {processes}"
            )
        mine = {k: process_share(v, self.processes) for k, v in saved.items()}
        self.collector.set_state(mine)
        for rng, row in zip(self.rngs, mine["action_rng"][:, 0], strict=True):
            set_rng(rng, row)
        for envs, rows in zip(self.eval_envs, mine["eval_rng"], strict=True):
            # A resume may change --eval-episodes: envs beyond the saved ones start fresh.
            for env, row in zip(envs, rows, strict=False):
                set_rng(env.unwrapped.np_random, row)

    def close(self) -> None:
        self.collector.close()

"""The MJX backend (``--backend mjx``): MJX envs, replay and TD3 in compiled programs.

A program runs a *segment*: a number of rounds, as a ``fori_loop`` (its length is an argument,
so the program compiles once per run). Per round: ``update_every / N`` vector steps (a
``lax.scan``) of the N MJX envs (auto-reset, time limit), the replay insert and normalizer
update, then the round's TD3 updates unless the segment is a prefill.

The host knows what each round does (the step, ``start_steps``, ``update_after`` and the
buffer's fill), so it splits an advance into segments of rounds of one kind; whether a segment
acts uniformly at random (before ``start_steps``) and whether it updates are arguments of the
call. Both action sources are computed and one is selected, and the updates sit in a
``lax.cond``: one program for every phase, because the MJX step dominates the compile time
(InvertedPendulum: 33 s + 44 s for a prefill and a learning program, 44-58 s for the one
program; BENCHMARKS.md).

Members are vmapped; the layout's devices run under ``shard_map`` (whole members per device,
or each member's envs and replay split across devices). Evaluation runs every member's
episodes vmapped on the device too.

The paper's schedule is ``--num-envs 1 --update-every 50 --updates-per-round 50``; a throughput
setting is e.g. ``--num-envs 1024 --update-every 4096 --updates-per-round 64``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.envs.mjx_env import EpisodeWrapper, VmapWrapper
from spikerl_jax.envs.mjx_tasks import make
from spikerl_jax.envs.registry import EnvSpec
from spikerl_jax.rl.replay import Transition
from spikerl_jax.training.backend import EvalResult, RoundStats
from spikerl_jax.training.learner import Learner, counted, map_members, over_members
from spikerl_jax.training.parallel import AXIS, global_buffer, learner_specs, local_buffer
from spikerl_jax.training.state import DeviceEnvsState, LearnerState, LoopState, RunState

NO_STEP = -1  # "no non-finite round" in a segment's output


def check_rounds(cfg: TrainConfig) -> None:
    """Raises ``ConfigError`` unless every round acts one way (random or policy actions)."""
    if cfg.start_steps % cfg.update_every:
        raise ConfigError(
            f"--backend mjx runs whole rounds of one kind: --start-steps ({cfg.start_steps}) "
            f"must be a multiple of --update-every ({cfg.update_every})"
        )


def round_kinds(cfg: TrainConfig, loop: LoopState, target: int):
    """``((random, update), rounds)`` for the runs of rounds of equal kind from
    ``loop.step`` to ``target``, and the buffer fill after them."""
    kinds, step, buffered = [], loop.step, loop.buffered
    while step < target:
        buffered = min(buffered + cfg.update_every, cfg.replay_size)
        random = step < cfg.start_steps
        step += cfg.update_every
        update = step >= cfg.update_after and buffered >= cfg.update_after
        kinds.append((random, update))
    runs = [(kind, len(list(group))) for kind, group in itertools.groupby(kinds)]
    return runs, buffered


class DeviceBackend:
    """The MJX backend (``spikerl_jax.training.backend.Backend``).

    Args:
      cfg, spec, learner: the run's configuration, task shape and compiled pieces.
      seeds: each member's seed (its envs' reset keys derive from it).
      keys: each member's keys by purpose (``spikerl_jax.training.learner.member_keys``).
    """

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, learner: Learner, seeds: list[int],
                 keys: dict):  # fmt: skip
        check_rounds(cfg)
        self.cfg, self.spec, self.learner = cfg, spec, learner
        self.key_explore, self.key_eval = keys["explore"], keys["eval"]
        self.seeds = seeds
        env = make(cfg.env, iterations=cfg.mjx_iterations, ls_iterations=cfg.mjx_ls_iterations)
        self.env = env
        self.train_env = VmapWrapper(EpisodeWrapper(env, spec.max_episode_steps),
                                     cfg.num_envs // self._env_split())  # fmt: skip
        self._segment = None
        self._evaluate = jax.jit(counted("mjx_evaluate", self._make_evaluation()))
        self._returns = [(0.0, 0) for _ in seeds]  # (sum, count) of ended training episodes

    def _env_split(self) -> int:
        layout = self.learner.layout
        return layout.devices if layout.mode == "data" else 1

    def init_state(self, learner_state: LearnerState) -> RunState:
        """The learners plus every member's freshly reset training envs ``(M, num_envs)``."""
        layout = self.learner.layout
        env = VmapWrapper(EpisodeWrapper(self.env, self.spec.max_episode_steps),
                          self.cfg.num_envs)  # fmt: skip
        keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in self.seeds])
        reset = jax.jit(map_members(env.reset, layout.members),
                        out_shardings=layout.sharding(layout.spec(0)))  # fmt: skip
        return RunState(learner=learner_state, env=reset(keys))

    def program(self):
        """The compiled segment, built on first use:
        ``(state, explore_keys, step, rounds, random, update) -> (state, outputs)``."""
        if self._segment is None:
            self._segment = jax.jit(counted("mjx_segment", self._make_segment()),
                                    donate_argnums=0)  # fmt: skip
        return self._segment

    def _make_segment(self):
        cfg, spec, learner = self.cfg, self.spec, self.learner
        layout = learner.layout
        data_parallel = layout.mode == "data"
        n = cfg.num_envs // self._env_split()
        steps_per_round = cfg.update_every // cfg.num_envs
        limit, action_dim = spec.action_limit, spec.action_dim
        env = self.train_env

        def device_key(key):
            return jax.random.fold_in(key, jax.lax.axis_index(AXIS)) if data_parallel else key

        def member_round(lstate: LearnerState, env_state, key_explore, step, random, update):
            """One member's round: its vector steps, then ingest (and update)."""
            key_random, key_policy = jax.random.split(key_explore)

            def vector_step(carry, _):
                env_state, step = carry
                key = device_key(jax.random.fold_in(key_random, step))
                uniform = jax.random.uniform(key, (n, action_dim), jnp.float32, -limit, limit)
                policy = learner.explore_member(
                    lstate.td3.actor_params, lstate.normalizer, env_state.obs,
                    device_key(key_policy), step, lstate.td3.hparams.exploration_noise,
                )  # fmt: skip
                action = jnp.where(random, uniform, policy)  # the host's choice for the call
                next_state = env.step(env_state, action)
                transition = Transition(
                    obs=env_state.obs,
                    action=action,
                    reward=next_state.reward,
                    next_obs=next_state.info["final_obs"],  # the true last obs of an episode
                    terminated=next_state.info["terminated"],  # truncations bootstrap
                )
                ended = (next_state.metrics["episode_return"].sum(), next_state.done.sum())
                return (next_state, step + cfg.num_envs), (transition, ended)

            (env_state, _), (rows, (returns, ended)) = jax.lax.scan(
                vector_step, (env_state, step), None, steps_per_round
            )
            chunk = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), rows)  # (S*N, ...)
            lstate = learner.ingest_member(lstate, chunk)

            def updated(lstate):
                new, metrics = learner.update_member(lstate)
                return (new.td3, new.key), metrics

            def prefill(lstate):  # the replay buffer is an operand only, never copied
                _, metrics = jax.eval_shape(learner.update_member, lstate)
                return (lstate.td3, lstate.key), jax.tree.map(jnp.zeros_like, metrics)

            (td3, key), metrics = jax.lax.cond(update, updated, prefill, lstate)
            lstate = lstate.replace(td3=td3, key=key)
            episodes = (returns.sum(), ended.sum())
            if data_parallel:
                episodes = jax.lax.psum(episodes, AXIS)
            return lstate, env_state, metrics, episodes

        rounds_of_members = over_members(member_round, layout.local_members,
                                         in_axes=(0, 0, 0, None, None, None))  # fmt: skip

        def segment(state: RunState, keys, step0, rounds, random, update):
            lstate, env_state = state.learner, state.env
            if data_parallel:
                lstate = lstate.replace(buffer=local_buffer(lstate.buffer))
            _, _, metrics0, _ = jax.eval_shape(rounds_of_members, lstate, env_state, keys,
                                               step0, random, update)  # fmt: skip
            members = jax.tree.leaves(env_state)[0].shape[0]
            zeros = jnp.zeros(members)
            init = (lstate, env_state, jax.tree.map(jnp.zeros_like, metrics0), zeros, zeros,
                    jnp.int32(NO_STEP))  # fmt: skip

            def body(r, carry):
                lstate, env_state, _, return_sum, ended, bad = carry
                step = step0 + r * cfg.update_every
                lstate, env_state, metrics, (ret, count) = rounds_of_members(
                    lstate, env_state, keys, step, random, update
                )
                finite = jnp.array(True)
                for value in jax.tree.leaves(metrics):
                    finite &= jnp.all(jnp.isfinite(value))
                if layout.mode == "members":  # every device must report the same step
                    finite = jax.lax.pmin(finite.astype(jnp.int32), AXIS) > 0
                end = step + cfg.update_every
                bad = jnp.where((bad == NO_STEP) & ~finite, end, bad)
                return lstate, env_state, metrics, return_sum + ret, ended + count, bad

            lstate, env_state, metrics, return_sum, ended, bad = jax.lax.fori_loop(
                0, rounds, body, init
            )
            if data_parallel:
                lstate = lstate.replace(buffer=global_buffer(lstate.buffer))
            out = {"metrics": metrics, "return_sum": return_sum, "ended": ended, "bad": bad}
            return RunState(learner=lstate, env=env_state), out

        if layout.mesh is None:
            return segment
        specs = RunState(learner=learner_specs(layout, LearnerState), env=layout.spec(0))
        member_spec = P(AXIS) if layout.mode == "members" else P()
        out_specs = {"metrics": member_spec, "return_sum": member_spec, "ended": member_spec,
                     "bad": P()}  # fmt: skip
        return jax.shard_map(segment, mesh=layout.mesh,
                             in_specs=(specs, member_spec, P(), P(), P(), P()),
                             out_specs=(specs, out_specs), check_vma=False)  # fmt: skip

    def advance(self, state: RunState, loop: LoopState, target: int, stop=None):
        """Every round up to ``target`` in one call per run of equal kind. Its seconds cover
        the whole program (env steps included): updates and env steps are one program."""
        cfg = self.cfg
        runs, buffered = round_kinds(cfg, loop, target)
        stats, step = RoundStats(), loop.step
        for (random, update), rounds in runs:
            t0 = time.perf_counter()
            state, out = self.program()(
                state, self.key_explore, jnp.int32(step), jnp.int32(rounds), jnp.bool_(random),
                jnp.bool_(update),
            )
            out = jax.device_get(out)
            seconds = time.perf_counter() - t0
            step += rounds * cfg.update_every
            self._returns = [(total + float(new_total), count + int(new_count))
                             for (total, count), new_total, new_count
                             in zip(self._returns, out["return_sum"], out["ended"],
                                    strict=True)]  # fmt: skip
            if update:
                stats = stats.add(out["metrics"], seconds, rounds * cfg.updates_per_round)
                if int(out["bad"]) != NO_STEP:
                    stats = stats.replace(nonfinite_step=int(out["bad"]))
                    break
        updates = stats.updates
        loop = dataclasses.replace(loop, step=step, buffered=buffered,
                                   updates=loop.updates + updates)  # fmt: skip
        return state, loop, stats

    def _make_evaluation(self):
        """``evaluate(actor_params, normalizer, keys) -> (returns (M, E), lengths (M, E),
        spikes {layer: (M,)})``: each member's ``eval_episodes`` deterministic episodes in
        parallel, each until termination or the task's step limit."""
        cfg, spec, env, learner = self.cfg, self.spec, self.env, self.learner
        episodes, horizon = cfg.eval_episodes, spec.max_episode_steps
        act_with_spikes = learner.policies.act_with_spikes

        def evaluate_member(actor_params, normalizer, key):
            key_reset, key_encoder = jax.random.split(key)
            states = jax.vmap(env.reset)(jax.random.split(key_reset, episodes))
            _, counts = jax.eval_shape(act_with_spikes, actor_params, normalizer, states.obs,
                                       key_encoder)  # fmt: skip

            def body(carry, _):
                states, alive, returns, lengths, spikes = carry
                action, counts = act_with_spikes(actor_params, normalizer, states.obs,
                                                 key_encoder)  # fmt: skip
                states = jax.vmap(env.step)(states, action)
                spikes = {k: spikes[k] + jnp.sum(counts[k] * alive) for k in spikes}
                returns = returns + states.reward * alive
                lengths = lengths + alive
                alive = alive * (1.0 - states.done)
                return (states, alive, returns, lengths, spikes), None

            zeros = jnp.zeros(episodes)
            init = (states, jnp.ones(episodes), zeros, zeros,
                    {k: jnp.zeros(()) for k in counts})  # fmt: skip
            (_, _, returns, lengths, spikes), _ = jax.lax.scan(body, init, None, horizon)
            return returns, lengths, spikes

        return over_members(evaluate_member, self.learner.layout.members)

    def evaluate(self, state: RunState, step: int) -> list[EvalResult]:
        keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(self.key_eval)
        td3 = state.learner.td3
        returns, lengths, spikes = jax.device_get(
            self._evaluate(td3.actor_params, state.learner.normalizer, keys)
        )
        return [EvalResult(float(returns[m].mean()), float(returns[m].std()),
                           float(lengths[m].mean()), {k: float(v[m]) for k, v in spikes.items()},
                           int(lengths[m].sum()))
                for m in range(len(self.seeds))]  # fmt: skip

    def take_train_returns(self) -> list[float | None]:
        means = [total / count if count else None for total, count in self._returns]
        self._returns = [(0.0, 0) for _ in self.seeds]
        return means

    def snapshot(self) -> DeviceEnvsState:
        """The training-episode returns since the last evaluation (the envs themselves are
        in ``RunState``)."""
        return DeviceEnvsState(train_returns=tuple(self._returns))

    def restore(self, saved) -> None:
        if not isinstance(saved, DeviceEnvsState):
            from spikerl_jax.training.checkpoint import CheckpointError

            raise CheckpointError("the checkpoint was written by --backend gymnasium")
        self._returns = list(saved.train_returns)

    def close(self) -> None:
        pass

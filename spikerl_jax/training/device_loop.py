"""The MJX backend (``--backend mjx``): MJX envs, replay and updates in compiled programs.

A program runs a *segment* of rounds as a ``fori_loop`` (its length an argument: one compile
per run). A round is ``update_every / N`` vector steps (a ``lax.scan``) of the N MJX envs
(auto-reset, time limit), then the learner's round (``Learner.learn_round``). The schedule's
rules hold inside (``training.schedule``): a step acts at random before ``start_steps`` (both
action sources computed, one selected), and the host splits the rounds into segments that
update or not, with the updates under a ``lax.cond``: one program for every phase, as the MJX
step dominates the compile time. Members are vmapped, and the layout's devices run under
``shard_map``; evaluation runs every member's episodes vmapped on the device too.

The paper's schedule is ``--num-envs 1 --update-every 50 --updates-per-round 50``; a throughput
setting is e.g. ``--num-envs 1024 --update-every 4096 --updates-per-round 64``.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from spikerl_jax.batching import counted, over_members
from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.envs.mjx_env import EpisodeWrapper, VmapWrapper, run_episodes
from spikerl_jax.envs.mjx_tasks import make
from spikerl_jax.envs.registry import EnvSpec
from spikerl_jax.reporting.records import EvalResult, eval_results
from spikerl_jax.rl.replay import Transition, as_shard, one_shard
from spikerl_jax.training.backend import RoundStats
from spikerl_jax.training.learner import Learner
from spikerl_jax.training.members import Members
from spikerl_jax.training.parallel import AXIS, learner_specs
from spikerl_jax.training.schedule import Counters, acts_at_random, plan_rounds
from spikerl_jax.training.state import LearnerState, RunState

NO_STEP = -1  # "no non-finite round" in a segment's output


class DeviceBackend:
    """The MJX backend (``spikerl_jax.training.backend.Backend``).

    Args:
      cfg, spec, learner: the population's configuration, task shape and compiled pieces.
      members: what each member brings (its seed, from which its envs' reset keys derive,
        keys and exploration noise).
    """

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, learner: Learner, members: Members):
        self.cfg, self.spec, self.learner, self.members = cfg, spec, learner, members
        self.env = make(cfg.env, iterations=cfg.mjx_iterations, ls_iterations=cfg.mjx_ls_iterations)
        layout = learner.layout
        self.split = layout.devices if layout.mode == "data" else 1  # envs per device
        self.train_env = VmapWrapper(
            EpisodeWrapper(self.env, spec.max_episode_steps), cfg.num_envs // self.split
        )
        self._segment = None
        self._evaluate = jax.jit(counted("mjx_evaluate", self._make_evaluation()))
        self._returns = np.zeros((len(members.seeds), 2))  # (sum, count) since the evaluation
        self.totals = np.zeros((len(members.seeds), 3))  # episodes, return and length sums

    def init_env(self):
        """Every member's freshly reset training envs ``(M, num_envs)``."""
        layout = self.learner.layout
        env = VmapWrapper(EpisodeWrapper(self.env, self.spec.max_episode_steps), self.cfg.num_envs)
        keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in self.members.seeds])
        reset = jax.jit(
            over_members(env.reset, layout.members, loop=True),
            out_shardings=layout.sharding(layout.spec(0)),
        )
        return reset(keys)

    def program(self):
        """The compiled segment, built on first use:
        ``(state, explore_keys, noise, step, rounds, update) -> (state, outputs)``."""
        if self._segment is None:
            self._segment = jax.jit(counted("mjx_segment", self._make_segment()), donate_argnums=0)
        return self._segment

    def _make_round(self):
        """One member's round: its vector steps, then the learner's round."""
        cfg, spec, learner, env = self.cfg, self.spec, self.learner, self.train_env
        data_parallel = self.learner.layout.mode == "data"
        n = cfg.num_envs // self.split
        limit = spec.action_limit

        def device_key(key):
            return jax.random.fold_in(key, jax.lax.axis_index(AXIS)) if data_parallel else key

        def member_round(lstate: LearnerState, env_state, key_explore, noise, step, update):
            key_random, key_policy = jax.random.split(key_explore)
            acting = (learner.explorer(lstate.agent), lstate.normalizer)
            explore = learner.policies.explore

            def vector_step(carry, _):
                env_state, step = carry
                key = device_key(jax.random.fold_in(key_random, step))
                uniform = jax.random.uniform(key, (n, spec.action_dim), jnp.float32, -limit, limit)
                policy = explore(*acting, env_state.obs, device_key(key_policy), step, noise)
                action = jnp.where(acts_at_random(cfg, step), uniform, policy)
                next_state = env.step(env_state, action)
                transition = Transition(
                    obs=env_state.obs,
                    action=action,
                    reward=next_state.reward,
                    next_obs=next_state.info["final_obs"],  # the true last obs of an episode
                    terminated=next_state.info["terminated"],  # truncations bootstrap
                )
                ended = next_state.metrics  # the episodes ended by this step, their sums:
                totals = [next_state.done, ended["episode_return"], ended["episode_length"]]
                totals = jnp.stack([x.sum() for x in totals])
                return (next_state, step + cfg.num_envs), (transition, totals)

            (env_state, _), (rows, totals) = jax.lax.scan(
                vector_step, (env_state, step), None, cfg.update_every // cfg.num_envs
            )
            chunk = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), rows)  # (S*N, ...)
            lstate, metrics = learner.learn_round(lstate, chunk, update)
            totals = totals.sum(0)
            return (
                lstate,
                env_state,
                metrics,
                jax.lax.psum(totals, AXIS) if data_parallel else totals,
            )

        return over_members(
            member_round, self.learner.layout.local_members, in_axes=(0, 0, 0, 0, None, None)
        )

    def _make_segment(self):
        cfg, layout = self.cfg, self.learner.layout
        # jit-wrapped, so that its trace for eval_shape serves the loop body too (tracing MJX
        # is seconds; XLA inlines the call).
        rounds_of_members = jax.jit(self._make_round())

        def segment(state: RunState, keys, noise, step0, rounds, update):
            lstate, env_state = state.learner, state.env
            if layout.mode == "data":
                lstate = lstate.replace(buffer=one_shard(lstate.buffer))
            shapes = jax.eval_shape(
                rounds_of_members, lstate, env_state, keys, noise, step0, update
            )
            zeros = jax.tree.map(jnp.zeros_like, shapes[2:])  # the metrics, the totals (M, 3)
            init = (lstate, env_state, *zeros, jnp.int32(NO_STEP))

            def body(r, carry):
                lstate, env_state, _, totals, bad = carry
                step = step0 + r * cfg.update_every
                lstate, env_state, metrics, ended = rounds_of_members(
                    lstate, env_state, keys, noise, step, update
                )
                finite = jnp.array(True)
                for value in jax.tree.leaves(metrics):
                    finite &= jnp.all(jnp.isfinite(value))
                if layout.mode == "members":  # every device must report the same step
                    finite = jax.lax.pmin(finite.astype(jnp.int32), AXIS) > 0
                bad = jnp.where((bad == NO_STEP) & ~finite, step + cfg.update_every, bad)
                return lstate, env_state, metrics, totals + ended, bad

            lstate, env_state, metrics, totals, bad = jax.lax.fori_loop(0, rounds, body, init)
            if layout.mode == "data":
                lstate = lstate.replace(buffer=as_shard(lstate.buffer))
            out = {"metrics": metrics, "totals": totals, "bad": bad}
            return state.replace(learner=lstate, env=env_state), out

        return segment if layout.mesh is None else on_mesh(segment, layout)

    def rounds(self, state: RunState, counters: Counters, target: int, stop=None, on_round=None):
        """Every round up to ``target`` in calls of at most a tenth of an evaluation interval
        each (rounds that update or not: one program), ``on_round(steps)`` after each. Its
        seconds cover the whole program (env steps included)."""
        cfg, stats, step = self.cfg, RoundStats(), counters.step
        keys, noise = self.members.keys, self.members.noise
        most = max(1, cfg.eval_every // cfg.update_every // 10)
        calls = [
            (u, min(most, n - k))
            for u, n in plan_rounds(cfg, counters, target)
            for k in range(0, n, most)
        ]
        for update, rounds in calls:
            t0 = time.perf_counter()
            state, out = self.program()(
                state, keys["explore"], noise, jnp.int32(step), jnp.int32(rounds), jnp.bool_(update)
            )
            out = jax.device_get(out)
            step += rounds * cfg.update_every
            self.totals += out["totals"]  # (M, 3): episodes, return sum, length sum
            self._returns += out["totals"][:, [1, 0]]
            stats = dataclasses.replace(stats, rounds=stats.rounds + rounds)
            if on_round is not None:
                on_round(rounds * cfg.update_every)
            if update:
                stats = stats.add(out["metrics"], time.perf_counter() - t0)
                if int(out["bad"]) != NO_STEP:
                    return state, dataclasses.replace(stats, nonfinite_step=int(out["bad"]))
        return state, stats

    def _make_evaluation(self):
        """``evaluate(actor_params, normalizer, keys) -> (returns (M, E), lengths (M, E),
        spikes {layer: (M,)})``: each member's ``eval_episodes`` deterministic episodes in
        parallel (``envs.mjx_env.run_episodes``)."""
        cfg, env = self.cfg, self.env
        act_with_spikes = self.learner.policies.act_with_spikes

        def evaluate_member(actor_params, normalizer, key):
            key_reset, key_encoder = jax.random.split(key)

            def act(obs):
                return act_with_spikes(actor_params, normalizer, obs, key_encoder)

            return run_episodes(env, act, key_reset, cfg.eval_episodes, self.spec.max_episode_steps)

        return over_members(evaluate_member, self.learner.layout.members)

    def evaluate(self, state: RunState, step: int) -> list[EvalResult]:
        keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(self.members.keys["eval"])
        policy = state.policy
        returns, lengths, spikes = jax.device_get(
            self._evaluate(policy.actor_params, policy.normalizer, keys)
        )
        per_member = [{k: v[m] for k, v in spikes.items()} for m in range(len(returns))]
        return eval_results(returns, lengths, per_member)

    def take_train_returns(self) -> list[float | None]:
        means = [float(total) / count if count else None for total, count in self._returns]
        self._returns = np.zeros_like(self._returns)
        return means

    def episode_totals(self) -> np.ndarray:
        """``(M, 3)``: training episodes ended since the start, their returns and lengths."""
        return self.totals

    def snapshot(self) -> dict[str, np.ndarray]:
        """The training-episode returns since the last evaluation, ``(M, 2)`` sums and
        counts (the envs themselves are in ``RunState``)."""
        return {"train_returns": self._returns.copy(), "totals": self.totals.copy()}

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        if "train_returns" not in saved:
            raise ConfigError("the checkpoint was written by --backend gymnasium")
        self._returns = np.array(saved["train_returns"], np.float64)
        self.totals = np.array(saved["totals"], np.float64)

    def close(self) -> None:
        pass


def on_mesh(segment, layout):
    """A segment under ``shard_map``: whole members per device, or each member's envs and
    replay split across the devices (its parameters replicated)."""
    specs = RunState(
        learner=learner_specs(layout, LearnerState), best=layout.spec(None), env=layout.spec(0)
    )
    member = P(AXIS) if layout.mode == "members" else P()
    out = {"metrics": member, "totals": member, "bad": P()}
    return jax.shard_map(
        segment,
        mesh=layout.mesh,
        in_specs=(specs, member, member, P(), P(), P()),
        out_specs=(specs, out),
        check_vma=False,
    )

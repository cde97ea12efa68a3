"""Population training throughput: TD3 updates/s of P vmapped members (total and per member)
and env steps/s of a P-member population on the Gymnasium backend. Prints JSON lines.

    python benchmarks/bench_population.py [--members 1 2 4 8 16] [--repeats 5] [--precision bf16]

Hopper sizes (obs 11, act 3), PopSAN defaults, batch 100, 50 updates per compiled call (as
training runs them); every member's settings are traced (as in a sweep over learning rates).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, matmul_peak_flops, median_time

from spikerl_jax.config import TrainConfig
from spikerl_jax.envs.registry import env_spec
from spikerl_jax.rl.replay import random_transitions, replay_add
from spikerl_jax.rl.td3 import HParams, hparams_from_config
from spikerl_jax.training.learner import make_learner, member_keys, stack_hparams
from spikerl_jax.training.parallel import make_layout, make_mesh
from spikerl_jax.training.session import make_backend
from spikerl_jax.training.state import LoopState, MemberRecord

ENV = "Hopper-v4"
ALL = frozenset(f.name for f in dataclasses.fields(HParams))


def configs(members: int, precision: str, **changes) -> list[TrainConfig]:
    base = TrainConfig(env=ENV, replay_size=10_000)
    base = dataclasses.replace(
        base, **changes,
        actor=dataclasses.replace(base.actor, actor_precision=precision),
        critic=dataclasses.replace(base.critic, critic_precision=precision),
    )  # fmt: skip
    return [dataclasses.replace(base, seed=s) for s in range(members)]


def updates_per_second(members: int, repeats: int, precision: str) -> float:
    cfgs = configs(members, precision)
    spec = env_spec(ENV)
    learner = make_learner(cfgs[0], spec, make_layout(members, make_mesh(1)), ALL)
    state = learner.init(member_keys(range(members))["init"],
                         stack_hparams([hparams_from_config(c) for c in cfgs]))  # fmt: skip
    data = random_transitions(jax.random.key(1), 10_000, spec.obs_dim, spec.action_dim)
    fill = jax.jit(jax.vmap(replay_add, in_axes=(0, None)))
    state = state.replace(buffer=fill(state.buffer, data))
    chunk = jax.tree.map(lambda x: np.stack([np.asarray(x)[:50]] * members), data)
    box = {"state": state}

    def call():
        box["state"], metrics = learner.learn(box["state"], chunk)
        jax.block_until_ready(metrics)

    return members * cfgs[0].updates_per_round / median_time(call, repeats)


def env_steps_per_second(members: int, steps: int, precision: str) -> float:
    """A population's rounds in the random phase and then acting with its actors (no
    updates: ``update_after`` is beyond the measurement), env steps of all members per s."""
    cfgs = configs(members, precision, start_steps=steps // 2, update_after=10**9)
    spec = env_spec(ENV)
    learner = make_learner(cfgs[0], spec, make_layout(members, make_mesh(1)), ALL)
    seeds = [c.seed for c in cfgs]
    keys = member_keys(seeds)
    backend = make_backend(cfgs[0], spec, learner, seeds, keys)
    hparams = stack_hparams([hparams_from_config(c) for c in cfgs])
    state = backend.init_state(learner.init(keys["init"], hparams))
    loop = LoopState(members=(MemberRecord(),) * members)
    state, loop, _ = backend.advance(state, loop, 2 * cfgs[0].update_every)  # compile
    t0 = time.perf_counter()
    state, loop, _ = backend.advance(state, loop, loop.step + steps)
    seconds = time.perf_counter() - t0
    backend.close()
    return members * steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--env-steps", type=int, default=2000)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    info = {**machine(), "matmul_peak_gflops": matmul_peak_flops() / 1e9}
    base = None
    for p in args.members:
        ups = updates_per_second(p, args.repeats, args.precision)
        base = base or ups
        sps = env_steps_per_second(p, args.env_steps, args.precision)
        print(json.dumps({"bench": "population", "members": p, "updates_per_s_total": ups,
                          "updates_per_s_per_member": ups / p,
                          "total_over_p1": ups / base if p != args.members[0] else 1.0,
                          "env_steps_per_s_total": sps, "precision": args.precision,
                          **info}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

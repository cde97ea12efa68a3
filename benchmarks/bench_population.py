"""Population training throughput: TD3 updates/s of P vmapped members (total and per member)
and env steps/s of a P-member population on the Gymnasium backend. Prints JSON lines.

    python benchmarks/bench_population.py [--members 1 2 4 8 16] [--repeats 15] [--precision bf16]

Hopper sizes (obs 11, act 3), PopSAN defaults, batch 100, 50 updates per compiled call (as
training runs them); every member's settings are traced (as in a sweep over learning rates).
On a CPU the process first splits the CPU into one device per core (as ``spikerl-jax sweep``
does) and measures each P both on one device and with whole members split over the cores;
the calls of all settings alternate, so that the machine's drift hits them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, matmul_peak_flops

from spikerl_jax.config import TrainConfig
from spikerl_jax.envs.registry import env_spec
from spikerl_jax.processes import core_devices_for, split_cpu_for_members
from spikerl_jax.rl.replay import random_transitions, replay_add
from spikerl_jax.training.build import build
from spikerl_jax.training.learner import make_learner
from spikerl_jax.training.members import members_of
from spikerl_jax.training.parallel import make_layout, make_mesh
from spikerl_jax.training.schedule import Counters, after_round

ENV = "Hopper-v4"


def configs(members: int, precision: str, **changes) -> list[TrainConfig]:
    base = TrainConfig(env=ENV, replay_size=10_000)
    base = dataclasses.replace(
        base,
        **changes,
        actor=dataclasses.replace(base.actor, actor_precision=precision),
        critic=dataclasses.replace(base.critic, critic_precision=precision),
    )
    return [dataclasses.replace(base, seed=s) for s in range(members)]


def update_call(members: int, devices: int, precision: str):
    """A function running one compiled call (50 updates of every member), returning its
    updates/s over all members."""
    cfgs = configs(members, precision)
    spec = env_spec(ENV)
    learner = make_learner(cfgs[0], spec, make_layout(members, make_mesh(devices)))
    m = members_of(cfgs)
    state = learner.init(m.keys["init"], m.hparams, m.encoder_std)
    data = random_transitions(jax.random.key(1), 10_000, spec.obs_dim, spec.action_dim)
    fill = jax.jit(jax.vmap(replay_add, in_axes=(0, None)))
    state = state.replace(buffer=fill(state.buffer, data))
    chunk = jax.tree.map(lambda x: np.stack([np.asarray(x)[:50]] * members), data)
    box = {"state": state}

    def call() -> float:
        t0 = time.perf_counter()
        box["state"], metrics = learner.learn(box["state"], chunk)
        jax.block_until_ready(metrics)
        return members * cfgs[0].updates_per_round / (time.perf_counter() - t0)

    call(), call()  # compile, warm up
    return call


def env_steps_per_second(members: int, devices: int, steps: int, precision: str) -> float:
    """A population's rounds in the random phase and then acting with its actors (no
    updates: ``update_after`` is beyond the measurement), env steps of all members per s."""
    cfgs = configs(members, precision, start_steps=steps // 2, update_after=10**9, devices=devices)
    population = build(cfgs)
    backend, counters = population.backend, Counters()
    state, stats = backend.rounds(population.state, counters, 2 * cfgs[0].update_every)  # compile
    for _ in range(stats.rounds):
        counters = after_round(cfgs[0], counters)
    t0 = time.perf_counter()
    state, _ = backend.rounds(state, counters, counters.step + steps)
    seconds = time.perf_counter() - t0
    backend.close()
    return members * steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--env-steps", type=int, default=2000, help="0: no env steps")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    split_cpu_for_members(math.lcm(*args.members))  # with an accelerator: its host's CPU
    info = {**machine(), "matmul_peak_gflops": matmul_peak_flops() / 1e9}
    local = jax.local_device_count()
    cases = sorted({(p, d) for p in args.members for d in (1, core_devices_for(p, local))})
    calls = {case: update_call(*case, args.precision) for case in cases}
    rates = {case: [] for case in cases}
    for _ in range(args.repeats):
        for case, call in calls.items():
            rates[case].append(call())
    base = statistics.median(rates[cases[0]])
    for members, devices in cases:
        ups = statistics.median(rates[members, devices])
        sps = (
            env_steps_per_second(members, devices, args.env_steps, args.precision)
            if args.env_steps
            else None
        )
        print(
            json.dumps(
                {
                    "bench": "population",
                    "members": members,
                    "devices": devices,
                    "updates_per_s_total": ups,
                    "updates_per_s_per_member": ups / members,
                    "total_over_first": ups / base,
                    "env_steps_per_s_total": sps,
                    "precision": args.precision,
                    **info,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

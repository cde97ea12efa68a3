"""Environment throughput: MJX ports (vmapped, scanned) against Gymnasium's native MuJoCo,
compile times, and the on-device training loop end to end.

Prints one JSON line per measurement:
  mjx_step         env steps/s of N vmapped envs, K steps per compiled call (auto-reset on)
  gymnasium_step   env steps/s of a Gymnasium vector env of N copies stepped from Python
  ondevice_train   env steps/s of the whole on-device loop (actor, envs, inserts, updates)

    python benchmarks/bench_envs.py [--env Hopper-v5] [--num-envs 1 64 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, median_time

from spikerl_jax.config import TrainConfig
from spikerl_jax.envs.gymnasium_backend import make_vector_env
from spikerl_jax.envs.mjx_env import EpisodeWrapper, VmapWrapper
from spikerl_jax.envs.mjx_tasks import make
from spikerl_jax.training.build import build


def timed(fn, *args):
    """(result, seconds) of one blocking call: for compile times."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def bench_mjx(env_id: str, num_envs: int, steps: int, repeats: int) -> dict:
    env = VmapWrapper(EpisodeWrapper(make(env_id), 1000), num_envs)
    action_size = env.action_size

    def rollout(state, key):
        def body(state, k):
            action = jax.random.uniform(k, (num_envs, action_size), jnp.float32, -1.0, 1.0)
            return env.step(state, action), None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, steps))
        return state

    reset, run = jax.jit(env.reset), jax.jit(rollout)
    state, reset_s = timed(reset, jax.random.key(0))
    state, compile_s = timed(run, state, jax.random.key(1))  # compile + one call
    box = {"state": state}

    def call():
        box["state"] = jax.block_until_ready(run(box["state"], jax.random.key(2)))

    seconds = median_time(call, repeats, warmup=0)
    return {
        "bench": "mjx_step",
        "env": env_id,
        "num_envs": num_envs,
        "steps_per_call": steps,
        "env_steps_per_s": num_envs * steps / seconds,
        "reset_compile_s": reset_s,
        "step_compile_s": compile_s,
    }


def bench_gymnasium(env_id: str, num_envs: int, steps: int, repeats: int) -> dict:
    envs = make_vector_env(env_id, num_envs)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, *envs.action_space.shape)).astype(np.float32)

    def call():
        for action in actions:
            envs.step(action)

    seconds = median_time(call, repeats, warmup=1)
    envs.close()
    return {
        "bench": "gymnasium_step",
        "env": env_id,
        "num_envs": num_envs,
        "env_steps_per_s": num_envs * steps / seconds,
    }


def bench_ondevice(env_id: str, num_envs: int, rounds: int, repeats: int) -> dict:
    """The on-device learning program (policy actions, inserts, updates; the paper's update
    schedule per env step: 50 updates per 50 steps at N=1; with N envs, one round is 50*N
    steps and 50 updates). ``compile_s`` is its first call (trace, compile, run)."""
    cfg = TrainConfig(
        env=env_id,
        backend="mjx",
        num_envs=num_envs,
        update_every=50 * num_envs,
        start_steps=0,
        update_after=0,
        replay_size=100_000,
        devices=1,
    )
    population = build([cfg])
    backend = population.backend
    program = backend.program()
    box = {"state": population.state, "step": 0}

    def call():
        members = backend.members
        box["state"], out = program(
            box["state"],
            members.keys["explore"],
            members.noise,
            jnp.int32(box["step"]),
            jnp.int32(rounds),
            jnp.bool_(True),
        )
        jax.block_until_ready(out)
        box["step"] += rounds * cfg.update_every

    _, compile_s = timed(call)
    seconds = median_time(call, repeats, warmup=0)
    return {
        "bench": "ondevice_train",
        "env": env_id,
        "num_envs": num_envs,
        "env_steps_per_s": rounds * cfg.update_every / seconds,
        "updates_per_s": rounds * cfg.updates_per_round / seconds,
        "compile_s": compile_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--steps", type=int, default=20, help="env steps per compiled call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--train-envs",
        type=int,
        nargs="+",
        default=[2],
        help="num_envs of the on-device training measurement",
    )
    parser.add_argument("--rounds", type=int, default=4, help="rounds per training call")
    parser.add_argument(
        "--only-train", action="store_true", help="only the on-device training measurement"
    )
    parser.add_argument(
        "--only-gymnasium",
        action="store_true",
        help="only Gymnasium's native MuJoCo (any Gymnasium MuJoCo env, e.g. Humanoid-v4)",
    )
    args = parser.parse_args()
    info = machine()
    if args.only_train or args.only_gymnasium:
        args.num_envs = []
    if args.only_gymnasium:
        args.train_envs = []
    for n in args.num_envs:
        print(json.dumps({**bench_mjx(args.env, n, args.steps, args.repeats), **info}), flush=True)
    for n in [] if args.only_train else [1, 16]:
        print(json.dumps({**bench_gymnasium(args.env, n, 200, args.repeats), **info}), flush=True)
    for n in args.train_envs:
        row = bench_ondevice(args.env, n, args.rounds, args.repeats)
        print(json.dumps({**row, **info}), flush=True)


if __name__ == "__main__":
    main()

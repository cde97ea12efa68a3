"""TD3-PopSAN update throughput, FLOPs per update and fraction of the CPU's matmul peak.

Prints one JSON line. Hopper sizes (obs 11, act 3; ``--env`` for another task's), hidden
256x256, PopSAN defaults; one compiled call runs ``--updates`` updates (a ``lax.scan``), as
training does.

    python benchmarks/bench_update.py [--updates 50] [--repeats 7] [--env Humanoid-v4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, matmul_peak_flops, median_time

from spikerl_jax.config import CriticConfig, PopSANConfig, TD3Config
from spikerl_jax.envs.registry import env_spec
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.normalizer import normalizer_init, normalizer_update
from spikerl_jax.rl.replay import random_transitions, replay_add, replay_init, sample_normalized
from spikerl_jax.rl.td3 import hparams_from_config, make_td3


def matmul_flops_per_update(
    obs_dim: int, act_dim: int, actor: PopSANConfig, critic: CriticConfig, td3: TD3Config
) -> float:
    """Matmul FLOPs of one TD3 update, averaged over the policy delay.

    Forward passes: ``F_a`` (actor, all T timesteps), ``F_q`` (one Q head) and ``F_p`` (the
    proxy target's MLP). A critic step runs the target actor (F_a; the proxy's F_p instead
    with ``--target-actor proxy``), both target heads (2 F_q) and both online heads forward
    and backward (3 x 2 F_q: weights and inputs); with the proxy it first runs ``proxy_steps``
    fits, each an actor forward for the targets (F_a) and the proxy forward and backward
    (3 F_p). An actor step runs the actor forward and backward (3 F_a) and Q1 forward and
    backward to its input only (2 F_q).
    """
    b = td3.batch_size

    def forward(sizes, repeats=1):
        return 2 * repeats * b * sum(m * n for m, n in itertools.pairwise(sizes))

    f_a = forward(
        [obs_dim * actor.pop_in, *actor.hidden_sizes, act_dim * actor.pop_out], actor.timesteps
    )
    f_q = forward([obs_dim + act_dim, *critic.critic_hidden_sizes, 1])
    critic_step = f_a + 2 * f_q + 6 * f_q
    if td3.target_actor == "proxy":
        f_p = forward([obs_dim, *td3.proxy_hidden_sizes, act_dim])
        critic_step += f_p - f_a + td3.proxy_steps * (f_a + 3 * f_p)
    actor_step = 3 * f_a + 2 * f_q
    return critic_step + actor_step / td3.policy_delay


def updates_per_second(
    obs_dim: int,
    act_dim: int,
    batch_size: int,
    hidden: tuple[int, ...],
    updates: int,
    repeats: int,
    layer_by_layer: bool | None = None,
    precision: str = "fp32",
    critic_precision: str | None = None,
    td3_settings: dict | None = None,
):
    # None: the actor's default formulation for the batch (omitted, so that the benchmark
    # also measures older commits' defaults).
    order = {} if layer_by_layer is None else {"layer_by_layer": layer_by_layer}
    actor_cfg = PopSANConfig(hidden_sizes=hidden, actor_precision=precision, **order)
    critic_cfg = CriticConfig(critic_precision=critic_precision or precision)
    td3_cfg = TD3Config(batch_size=batch_size, **(td3_settings or {}))
    networks = make_networks(act_dim, 1.0, actor_cfg, critic_cfg)
    td3 = make_td3(networks, td3_cfg)  # the paper's settings, as traced values of the state
    key = jax.random.key(0)
    actor = networks.init_actor(jax.random.split(key)[0], obs_dim, actor_cfg.encoder_std)
    state = td3.init(key, actor, obs_dim, hparams_from_config(td3_cfg))
    n = 10_000
    data = random_transitions(jax.random.key(1), n, obs_dim, act_dim)
    buffer = replay_add(replay_init(n, obs_dim, act_dim), data)
    norm = normalizer_update(normalizer_init(obs_dim), data.obs)

    @jax.jit
    def run(state, key):
        def sample(k):
            return sample_normalized(buffer, norm, k, batch_size, 3.0)

        return td3.update(state, sample, key, updates // td3_cfg.policy_delay)

    holder = {"state": state}

    def call():
        holder["state"], metrics = run(holder["state"], key)
        jax.block_until_ready(metrics)

    seconds = median_time(call, repeats)
    flops = matmul_flops_per_update(obs_dim, act_dim, actor_cfg, critic_cfg, td3_cfg)
    return updates / seconds, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="measure only these settings (e.g. b100_h256 b1024_h256)",
    )
    parser.add_argument("--env", default="Hopper-v4", help="the task whose sizes to use")
    args = parser.parse_args()
    spec = env_spec(args.env)
    peak = matmul_peak_flops()
    result = {
        "benchmark": "td3_update",
        "machine": machine(),
        "env": args.env,
        "matmul_peak_gflops": peak / 1e9,
    }
    proxy = {"target_actor": "proxy"}  # the proxy target: K = 3 fits, lr 1e-3 (its paper's)
    # ... and its authors' lighter setting: one fit per critic step, at lr 3e-3
    proxy_k1 = {**proxy, "proxy_steps": 1, "proxy_lr": 3e-3}
    # (name, batch, hidden, layer_by_layer, actor precision, critic precision, TD3 settings)
    for name, batch, hidden, layer_by_layer, precision, critic_precision, td3_settings in [
        ("b100_h256", 100, (256, 256), None, "fp32", "fp32", None),
        ("b100_h256_proxy", 100, (256, 256), None, "fp32", "fp32", proxy),
        ("b100_h256_proxy_k1", 100, (256, 256), None, "fp32", "fp32", proxy_k1),
        ("b1024_h256", 1024, (256, 256), None, "fp32", "fp32", None),
        ("b100_h100", 100, (100, 100), None, "fp32", "fp32", None),
        ("b100_h256_stepwise", 100, (256, 256), False, "fp32", "fp32", None),
        ("b1024_h256_layerwise", 1024, (256, 256), True, "fp32", "fp32", None),
        # bf16 spiking layers only (their inputs are exact 0/1 spikes), float32 critics
        ("b100_h256_bf16_actor", 100, (256, 256), None, "bf16", "fp32", None),
        ("b1024_h256_bf16_actor", 1024, (256, 256), None, "bf16", "fp32", None),
        ("b100_h256_bf16", 100, (256, 256), None, "bf16", "bf16", None),
        ("b1024_h256_bf16", 1024, (256, 256), None, "bf16", "bf16", None),
    ]:
        if args.only and name not in args.only:
            continue
        ups, flops = updates_per_second(
            spec.obs_dim,
            spec.action_dim,
            batch,
            hidden,
            args.updates,
            args.repeats,
            layer_by_layer,
            precision,
            critic_precision,
            td3_settings,
        )
        result[name] = {
            "updates_per_s": ups,
            "mflop_per_update": flops / 1e6,
            "gflops": ups * flops / 1e9,
            "fraction_of_peak": ups * flops / peak,
        }
    result["peak_after_gflops"] = matmul_peak_flops() / 1e9  # drift check on a noisy host
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""TD3-PopSAN update throughput, FLOPs per update and fraction of the CPU's matmul peak.

Prints one JSON line. Hopper sizes (obs 11, act 3), hidden 256x256, PopSAN defaults; one
compiled call runs ``--updates`` updates (a ``lax.scan``), as training does.

    python benchmarks/bench_update.py [--updates 50] [--repeats 7]
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
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.normalizer import normalizer_init, normalizer_update
from spikerl_jax.rl.replay import random_transitions, replay_add, replay_init, sample_normalized
from spikerl_jax.rl.td3 import hparams_from_config, make_td3

OBS_DIM, ACT_DIM = 11, 3


def matmul_flops_per_update(
    obs_dim: int, act_dim: int, actor: PopSANConfig, critic: CriticConfig, td3: TD3Config
) -> float:
    """Matmul FLOPs of one TD3 update, averaged over the policy delay.

    Forward passes: ``F_a`` (actor, all T timesteps) and ``F_q`` (one Q head). A critic step
    runs the target actor (F_a), both target heads (2 F_q) and both online heads forward and
    backward (3 x 2 F_q: weights and inputs). An actor step runs the actor forward and backward
    (3 F_a) and Q1 forward and backward to its input only (2 F_q).
    """
    b = td3.batch_size
    sizes = [obs_dim * actor.pop_in, *actor.hidden_sizes, act_dim * actor.pop_out]
    f_a = 2 * actor.timesteps * b * sum(m * n for m, n in itertools.pairwise(sizes))
    q_sizes = [obs_dim + act_dim, *critic.critic_hidden_sizes, 1]
    f_q = 2 * b * sum(m * n for m, n in itertools.pairwise(q_sizes))
    critic_step = f_a + 2 * f_q + 6 * f_q
    actor_step = 3 * f_a + 2 * f_q
    return critic_step + actor_step / td3.policy_delay


def updates_per_second(
    batch_size: int,
    hidden: tuple[int, ...],
    updates: int,
    repeats: int,
    layer_by_layer: bool | None = None,
    precision: str = "fp32",
    critic_precision: str | None = None,
):
    # None: the actor's default formulation for the batch (omitted, so that the benchmark
    # also measures older commits' defaults).
    order = {} if layer_by_layer is None else {"layer_by_layer": layer_by_layer}
    actor_cfg = PopSANConfig(hidden_sizes=hidden, actor_precision=precision, **order)
    critic_cfg = CriticConfig(critic_precision=critic_precision or precision)
    td3_cfg = TD3Config(batch_size=batch_size)
    networks = make_networks(ACT_DIM, 1.0, actor_cfg, critic_cfg)
    td3 = make_td3(networks, td3_cfg)  # the paper's settings, as traced values of the state
    key = jax.random.key(0)
    actor = networks.init_actor(jax.random.split(key)[0], OBS_DIM, actor_cfg.encoder_std)
    state = td3.init(key, actor, OBS_DIM, hparams_from_config(td3_cfg))
    n = 10_000
    data = random_transitions(jax.random.key(1), n, OBS_DIM, ACT_DIM)
    buffer = replay_add(replay_init(n, OBS_DIM, ACT_DIM), data)
    norm = normalizer_update(normalizer_init(OBS_DIM), data.obs)

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
    flops = matmul_flops_per_update(OBS_DIM, ACT_DIM, actor_cfg, critic_cfg, td3_cfg)
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
    args = parser.parse_args()
    peak = matmul_peak_flops()
    result = {"benchmark": "td3_update", "machine": machine(), "matmul_peak_gflops": peak / 1e9}
    # (name, batch, hidden, layer_by_layer, actor precision, critic precision)
    for name, batch, hidden, layer_by_layer, precision, critic_precision in [
        ("b100_h256", 100, (256, 256), None, "fp32", "fp32"),
        ("b1024_h256", 1024, (256, 256), None, "fp32", "fp32"),
        ("b100_h100", 100, (100, 100), None, "fp32", "fp32"),
        ("b100_h256_stepwise", 100, (256, 256), False, "fp32", "fp32"),
        ("b1024_h256_layerwise", 1024, (256, 256), True, "fp32", "fp32"),
        # bf16 spiking layers only (their inputs are exact 0/1 spikes), float32 critics
        ("b100_h256_bf16_actor", 100, (256, 256), None, "bf16", "fp32"),
        ("b1024_h256_bf16_actor", 1024, (256, 256), None, "bf16", "fp32"),
        ("b100_h256_bf16", 100, (256, 256), None, "bf16", "bf16"),
        ("b1024_h256_bf16", 1024, (256, 256), None, "bf16", "bf16"),
    ]:
        if args.only and name not in args.only:
            continue
        ups, flops = updates_per_second(
            batch, hidden, args.updates, args.repeats, layer_by_layer, precision, critic_precision
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

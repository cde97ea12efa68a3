"""PopSAN's update throughput (TD3, or ``--algo ddpg|sac``), FLOPs per update and fraction
of the CPU's matmul peak.

Prints one JSON line. Hopper sizes (obs 11, act 3; ``--env`` for another task's), hidden
256x256, PopSAN defaults; one compiled call runs ``--updates`` updates (a ``lax.scan``), as
training does, through the algorithm seam (``Algorithm.update``). An update is one critic
step and the algorithm's share of policy steps (TD3: one per policy delay of 2; DDPG and
SAC: one).

    python benchmarks/bench_update.py [--updates 50] [--repeats 7] [--env Humanoid-v4]
    python benchmarks/bench_update.py --algo sac --only b100_h256 b256_h256
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

from spikerl_jax.config import CriticConfig, PopSANConfig, TD3Config, TrainConfig
from spikerl_jax.envs.registry import env_spec
from spikerl_jax.rl.algorithms import ALGORITHMS, hparams_of, make_algorithm
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.normalizer import normalizer_init, normalizer_update
from spikerl_jax.rl.replay import random_transitions, replay_add, replay_init, sample_normalized


def matmul_flops_per_update(
    obs_dim: int,
    act_dim: int,
    actor: PopSANConfig,
    critic: CriticConfig,
    td3: TD3Config,
    algo: str = "td3",
) -> float:
    """Matmul FLOPs of one update (a critic step and its share of policy steps).

    Forward passes: ``F_a`` (actor, all T timesteps), ``F_q`` (one Q head), ``F_p`` (the
    proxy target's MLP) and ``F_l`` (SAC's log-std MLP). TD3: a critic step runs the target
    actor (F_a; the proxy's F_p instead with ``--target-actor proxy``), both target heads (2
    F_q) and both online heads forward and backward (3 x 2 F_q: weights and inputs); with the
    proxy it first runs ``proxy_steps`` fits, each an actor forward for the targets (F_a) and
    the proxy forward and backward (3 F_p). An actor step runs the actor forward and backward
    (3 F_a) and Q1 forward and backward to its input only (2 F_q), once per policy delay.
    DDPG: one critic (F_a + 4 F_q) and an actor step per critic step. SAC: the current
    policy's sample at ``s'`` (F_a + F_l), the target and online twins (8 F_q); a policy
    step per critic step, the actor and the log-std network forward and backward (3 F_a +
    3 F_l) through both heads to their inputs (4 F_q).
    """
    b = td3.batch_size

    def forward(sizes, repeats=1):
        return 2 * repeats * b * sum(m * n for m, n in itertools.pairwise(sizes))

    f_a = forward(
        [obs_dim * actor.pop_in, *actor.hidden_sizes, act_dim * actor.pop_out], actor.timesteps
    )
    f_q = forward([obs_dim + act_dim, *critic.critic_hidden_sizes, 1])
    if algo == "ddpg":
        return f_a + 4 * f_q + 3 * f_a + 2 * f_q
    if algo == "sac":
        f_l = forward([obs_dim, *actor.hidden_sizes, act_dim])
        return f_a + f_l + 8 * f_q + 3 * (f_a + f_l) + 4 * f_q
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
    algo: str = "td3",
):
    # None: the actor's default formulation for the batch (omitted, so that the benchmark
    # also measures older commits' defaults).
    order = {} if layer_by_layer is None else {"layer_by_layer": layer_by_layer}
    actor_cfg = PopSANConfig(hidden_sizes=hidden, actor_precision=precision, **order)
    critic_cfg = CriticConfig(critic_precision=critic_precision or precision)
    settings = dict(td3_settings or {})
    if algo == "sac":
        settings.setdefault("policy_delay", 1)  # PopSAN's SAC
    td3_cfg = TD3Config(batch_size=batch_size, **settings)
    cfg = TrainConfig(
        algo=algo, actor=actor_cfg, critic=critic_cfg, td3=td3_cfg, updates_per_round=updates
    )
    networks = make_networks(act_dim, 1.0, actor_cfg, critic_cfg)
    algorithm = make_algorithm(networks, cfg)  # its settings traced values of the state
    key = jax.random.key(0)
    actor = networks.init_actor(jax.random.split(key)[0], obs_dim, actor_cfg.encoder_std)
    state = algorithm.init(key, actor, obs_dim, hparams_of(cfg))
    n = 10_000
    data = random_transitions(jax.random.key(1), n, obs_dim, act_dim)
    buffer = replay_add(replay_init(n, obs_dim, act_dim), data)
    norm = normalizer_update(normalizer_init(obs_dim), data.obs)

    @jax.jit
    def run(state, key):
        def sample(k):
            return sample_normalized(buffer, norm, k, batch_size, 3.0)

        return algorithm.update(state, sample, key)

    holder = {"state": state}

    def call():
        holder["state"], metrics = run(holder["state"], key)
        jax.block_until_ready(metrics)

    seconds = median_time(call, repeats)
    flops = matmul_flops_per_update(obs_dim, act_dim, actor_cfg, critic_cfg, td3_cfg, algo)
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
    parser.add_argument("--algo", default="td3", choices=sorted(ALGORITHMS))
    args = parser.parse_args()
    spec = env_spec(args.env)
    peak = matmul_peak_flops()
    result = {
        "benchmark": f"{args.algo}_update",
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
        ("b256_h256", 256, (256, 256), None, "fp32", "fp32", None),
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
        if td3_settings and "target_actor" in td3_settings and args.algo != "td3":
            continue  # the proxy target is TD3's
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
            args.algo,
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

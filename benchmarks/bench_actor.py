"""PopSAN actor latency (batch 1) and throughput (batch 100, 4096), Hopper sizes.

Prints one JSON line. Both LIF formulations are measured (layer by layer, the default, and
timestep by timestep, PopSAN's order), as are the forward with spike counts and the exploring
policy the training loop calls once per env step (normalizer + actor + noise, result on host),
on the training device and on a host-CPU copy (``--act-device``).

    python benchmarks/bench_actor.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, median_time

from spikerl_jax.config import PopSANConfig, TrainConfig
from spikerl_jax.envs.registry import EnvSpec
from spikerl_jax.snn.popsan import PopSAN
from spikerl_jax.training.host_loop import acting, acting_device, acting_view
from spikerl_jax.training.learner import make_learner
from spikerl_jax.training.members import members_of
from spikerl_jax.training.parallel import make_layout, make_mesh

OBS_DIM, ACT_DIM = 11, 3


def actor_timings(layerwise: bool, repeats: int) -> dict:
    actor = PopSAN(ACT_DIM, 1.0, PopSANConfig(layer_by_layer=layerwise))
    params = actor.init(jax.random.key(0), jnp.zeros((1, OBS_DIM)))
    forward = jax.jit(actor.apply)
    with_counts = jax.jit(lambda p, o: actor.apply(p, o, return_spike_counts=True))
    out = {}
    for batch, reps in ((1, repeats), (100, repeats // 2), (4096, max(repeats // 20, 5))):
        obs = jax.random.normal(jax.random.key(1), (batch, OBS_DIM))
        seconds = median_time(lambda o=obs: forward(params, o).block_until_ready(), reps, 10)
        counted = median_time(lambda o=obs: jax.block_until_ready(with_counts(params, o)), reps, 10)
        out[f"b{batch}"] = {
            "latency_us": seconds * 1e6,
            "samples_per_s": batch / seconds,
            "with_spike_counts_us": counted * 1e6,
        }
    return out


def explore_latency(repeats: int, act_device: str = "auto", envs: int = 1) -> float:
    """The per-env-step call of the training loop (numpy obs of ``envs`` envs in, numpy
    actions out), acting on ``act_device`` (``TrainConfig.act_device``)."""
    spec = EnvSpec(OBS_DIM, ACT_DIM, 1.0, 1000)
    cfg = TrainConfig(env="Hopper-v4", replay_size=1000, act_device=act_device, num_envs=envs)
    layout = make_layout(1, make_mesh(1))
    learner, members = make_learner(cfg, spec, layout), members_of([cfg])
    state = learner.init(members.keys["init"], members.hparams, members.encoder_std)
    actor, normalizer, noise, key = acting_view(
        layout,
        acting_device(cfg, layout),
        (state.agent.actor_params, state.normalizer, members.noise, members.keys["explore"]),
    )
    explore = acting(learner.policies.explore, "explore", 1, (0, 0, 0, 0, None, 0))
    obs = np.zeros((1, envs, OBS_DIM), np.float32)  # one member

    def call():
        explore(actor, normalizer, obs, key, 12345, noise)

    return median_time(call, repeats, 10) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    result = {
        "benchmark": "popsan_actor",
        "machine": machine(),
        "sizes": {"obs": OBS_DIM, "act": ACT_DIM, "hidden": [256, 256], "pop": 10, "T": 5},
        "layerwise": actor_timings(True, args.repeats),
        "stepwise": actor_timings(False, args.repeats),
        "explore_step_us": explore_latency(args.repeats),
        # --act-device: the exploring call on the training device and on a host-CPU copy, by
        # observations per call (the same device without an accelerator).
        "explore_by_act_device_us": {
            device: {envs: explore_latency(args.repeats, device, envs) for envs in (1, 16, 64, 256)}
            for device in ("accelerator", "cpu")
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

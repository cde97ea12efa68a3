"""Data-parallel scaling: TD3-PopSAN update throughput on 1, 2, 4, 8 devices.

Each measurement runs the data-parallel learner's round (replay insert + ``--updates``
updates, per-device batch ``--batch-size`` as in the paper's DDP setting) on Hopper's shapes,
and reports per device count: rounds/s, updates/s, samples/s (updates x global batch),
speedup and parallel efficiency in samples/s against one device, and energy per 1000 updates
(codecarbon, offline). Writes ``OUT.csv`` and ``OUT.png``.

    python examples/scaling_study.py                     # CPU: forces 8 host devices
    python examples/scaling_study.py --devices 1 2 4 8   # on a GPU machine: real devices

On CPU, forced host devices share the machine's cores: the study then shows the cost of the
collectives and of splitting work, not a speedup beyond the core count.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time

if "--no-force" not in sys.argv and "xla_force_host_platform_device_count" not in os.environ.get(
    "XLA_FLAGS", ""
):  # must precede the first JAX import
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax

from spikerl_jax.config import TD3Config, TrainConfig
from spikerl_jax.envs.registry import EnvSpec
from spikerl_jax.reporting.energy import EnergyMeter
from spikerl_jax.rl.replay import random_transitions
from spikerl_jax.training.learner import make_learner
from spikerl_jax.training.members import members_of
from spikerl_jax.training.parallel import make_layout, make_mesh

HOPPER = EnvSpec(obs_dim=11, action_dim=3, action_limit=1.0, max_episode_steps=1000)


def measure(devices: int, args) -> dict:
    cfg = TrainConfig(
        td3=TD3Config(batch_size=args.batch_size),
        replay_size=8 * 8192,
        update_every=8 * 50,
        updates_per_round=args.updates,
    )
    learner = make_learner(cfg, HOPPER, make_layout(1, make_mesh(devices)))
    members = members_of([cfg])
    state = learner.init(members.keys["init"], members.hparams, members.encoder_std)
    chunk = jax.tree.map(
        lambda x: x[None],  # one member's rows
        random_transitions(jax.random.key(1), cfg.update_every, 11, 3),
    )
    for _ in range(4):  # compile, and fill the buffer past a batch on every device
        state, _ = learner.learn(state, chunk)
    jax.block_until_ready(state)
    meter = EnergyMeter(args.country, enabled=not args.no_energy)
    times = []
    meter.begin("train")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        state, metrics = learner.learn(state, chunk)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    meter.end(0, sync=state)
    meter.close()
    seconds = statistics.median(times)
    energy = meter.report().get("train", {}).get("energy_kwh")
    updates = args.updates * args.repeats
    return {
        "devices": devices,
        "global_batch": args.batch_size * devices,
        "round_s": seconds,
        "updates_per_s": args.updates / seconds,
        "samples_per_s": args.updates * args.batch_size * devices / seconds,
        "energy_wh_per_1000_updates": None if energy is None else energy * 1e3 / updates * 1e3,
    }


def plot(rows: list[dict], path: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax_speed, ax_eff = fig.subplots(1, 2)
    devices = [r["devices"] for r in rows]
    ax_speed.plot(devices, [r["speedup"] for r in rows], "o-", label="measured")
    ax_speed.plot(devices, devices, "--", color="gray", label="linear")
    ax_speed.set_xlabel("devices")
    ax_speed.set_ylabel("speedup in samples/s")
    ax_speed.legend()
    ax_eff.bar([str(d) for d in devices], [r["efficiency"] for r in rows])
    ax_eff.set_xlabel("devices")
    ax_eff.set_ylabel("parallel efficiency")
    for ax in (ax_speed, ax_eff):
        ax.grid(alpha=0.3)
    fig.suptitle(f"TD3-PopSAN data parallel, {jax.devices()[0].device_kind}", fontsize=10)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--batch-size", type=int, default=100, help="per device")
    parser.add_argument("--updates", type=int, default=50, help="updates per round")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--country", default="USA", help="grid of the energy figures")
    parser.add_argument("--no-energy", action="store_true")
    parser.add_argument("--no-force", action="store_true", help="do not force 8 CPU devices")
    parser.add_argument("--out", default="scaling_study")
    args = parser.parse_args()
    rows = [measure(d, args) for d in args.devices]
    base = rows[0]["samples_per_s"] / rows[0]["devices"]
    for row in rows:
        row["speedup"] = row["samples_per_s"] / base
        row["efficiency"] = row["speedup"] / row["devices"]
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    with open(f"{args.out}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, f"{args.out}.png")
    print(f"written: {args.out}.csv, {args.out}.png")


if __name__ == "__main__":
    main()

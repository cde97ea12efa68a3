"""fp32 vs bf16 vs bf16-pure: the same task, seeds and budget under each precision policy.

Each policy trains in a subprocess of its own (so its peak memory is its own) and reports its
final and best evaluation return, TD3 updates/s (Hopper-sized networks, measured in the same
process, with the fp32/bf16 ratio the meaningful figure on a noisy host), peak RSS, gradient-norm
statistics over the run's evaluation rows and energy (codecarbon's offline tracker).
Writes ``OUT/precision_ablation.csv`` and ``OUT/precision_ablation.png``.

    python examples/precision_ablation.py [--env ID] [--seeds 0 1] [--out runs/ablation]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys

PRECISIONS = ("fp32", "bf16", "bf16-pure")


def updates_per_second(precision: str) -> float:
    """TD3 updates/s at batch 100, Hopper sizes, hidden 256x256, 50 updates per call."""
    import jax

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    from common import median_time

    from spikerl_jax.config import CriticConfig, PopSANConfig, TrainConfig
    from spikerl_jax.rl.networks import make_networks
    from spikerl_jax.rl.replay import random_transitions
    from spikerl_jax.rl.td3 import hparams_from_config, make_td3

    nets = make_networks(
        3, 1.0, PopSANConfig(actor_precision=precision), CriticConfig(critic_precision=precision)
    )
    cfg, key = TrainConfig(), jax.random.key(0)
    td3 = make_td3(nets, cfg.td3)
    actor = nets.init_actor(jax.random.split(key)[0], 11, cfg.actor.encoder_std)
    state = td3.init(key, actor, 11, hparams_from_config(cfg.td3))
    batch = random_transitions(jax.random.key(1), 100, 11, 3)
    run = jax.jit(lambda s, k: td3.update(s, lambda _: batch, k, 25))
    holder = {"state": state}

    def call():
        holder["state"], metrics = run(holder["state"], jax.random.key(2))
        jax.block_until_ready(metrics)

    return 50 / median_time(call, 5)


def one_run(precision: str, env: str, seed: int, out: str) -> dict:
    """Trains one policy (in this process) and returns its row."""
    import dataclasses

    import numpy as np
    from codecarbon import OfflineEmissionsTracker

    from spikerl_jax.config import preset_for
    from spikerl_jax.training.trainer import train

    preset = preset_for(env)
    cfg = dataclasses.replace(
        preset,
        seed=seed,
        out=os.path.join(out, f"{precision}-s{seed}"),
        progress=False,
        actor=dataclasses.replace(preset.actor, actor_precision=precision),
        critic=dataclasses.replace(preset.critic, critic_precision=precision),
    )
    tracker = OfflineEmissionsTracker(country_iso_code="USA", log_level="error", save_to_file=False)
    tracker.start()
    summary = train(cfg)
    tracker.stop()
    energy = tracker.final_emissions_data
    with open(os.path.join(cfg.out, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    grads = {
        k: np.array([float(r[k]) for r in rows if r[k] not in ("", "nan")])
        for k in ("critic_grad_norm", "actor_grad_norm")
    }
    return {
        "precision": precision,
        "seed": seed,
        "final_eval_return": summary["final_eval_return"],
        "best_eval_return": summary["best_eval_return"],
        "train_wall_s": summary["wall_s"],
        "hopper_updates_per_s": updates_per_second(precision),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **{
            f"{k}_{stat}": float(getattr(np, stat)(v)) if len(v) else float("nan")
            for k, v in grads.items()
            for stat in ("median", "max")
        },
        "energy_kwh": energy.energy_consumed,
        "emissions_kg": energy.emissions,
    }


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    panels = [
        ("final_eval_return", "final return"),
        ("hopper_updates_per_s", "updates/s (Hopper)"),
        ("peak_rss_mb", "peak RSS (MB)"),
        ("energy_kwh", "energy (kWh)"),
    ]
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = [[r[key] for r in rows if r["precision"] == p] for p in PRECISIONS]
        means = [sum(v) / len(v) for v in values]
        ax.bar(PRECISIONS, means, color=["#4c72b0", "#dd8452", "#55a868"])
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="InvertedPendulum-v4")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one policy, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.env, args.seeds[0], args.out)))
        return
    rows = []
    for seed in args.seeds:
        for precision in PRECISIONS:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                precision,
                "--env",
                args.env,
                "--seeds",
                str(seed),
                "--out",
                args.out,
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "precision_ablation.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, os.path.join(args.out, "precision_ablation.png"))


if __name__ == "__main__":
    main()

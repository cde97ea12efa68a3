"""The learning benchmark: PopSAN vs an MLP actor vs PopSAN with the proxy target, several
seeds each, trained by ``spikerl-jax sweep`` (one population per task and variant), and the
report that puts the results beside the published anchors.

    python benchmarks/learning.py run --envs HalfCheetah-v4 Hopper-v4 --seeds 0 1 2 \\
        --steps 100000 --root runs/learning            # hours on a 2-core CPU
    python benchmarks/learning.py report --root runs/learning --out docs
    python benchmarks/learning.py diagnose --root runs/learning   # saturated spiking layers

``run`` skips finished sweeps and resumes interrupted ones. ``report`` reads every run under
``ROOT/ENV-VARIANT/`` (sweep members, or runs copied there) and writes ``learning.csv`` and
``learning_curves.png`` into ``--out``, and prints the markdown table of docs/learning.md.
``diagnose`` runs every run's latest policy for 1,000 deterministic steps and prints how much
its action varies over the states it visits (0: an actor collapsed onto a constant action), how
far the critic's target action (the target actor's, or the proxy's) is from the actor's there
(``target_gap``), and, for PopSAN, per spiking layer, its firing rate and the fractions of
saturated, silent and informative neurons.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np

PROXY_PAPER_SETTING = [
    "--no-obs-normalization",
    "--encoder-input",
    "tanh",
    "--encoder-mean-range",
    "-1",
    "1",
    "--encoder-std",
    "0.22360679774997896",
    "--current-decay",
    "0",
    "--start-steps",
    "25000",
    "--update-after",
    "25000",
    "--update-every",
    "2",
    "--updates-per-round",
    "2",
    "--batch-size",
    "256",
    "--actor-lr",
    "3e-4",
    "--critic-lr",
    "3e-4",
]
PROXY_K1 = ["--target-actor", "proxy", "--proxy-steps", "1", "--proxy-lr", "3e-3"]
# Each variant's changes to the published settings (``run`` passes ``--paper`` to all of them,
# so that "popsan" is the paper's PopSAN, not the locomotion preset's drive penalty).
VARIANTS = {
    "popsan": [],
    "mlp": ["--actor", "mlp"],
    "proxy": ["--target-actor", "proxy"],
    "popsan-bf16": ["--precision", "bf16"],
    # bf16 spiking layers only (their inputs are exact 0/1 spikes), float32 critics.
    "popsan-bf16-actor": ["--actor-precision", "bf16"],
    # PopSAN with a surrogate whose gradient never vanishes (docs/learning.md: saturation).
    "popsan-arctan": ["--surrogate", "arctan"],
    # ... and twice the exploration noise (docs/learning.md: the stand-still optimum).
    "popsan-arctan-noise0.2": ["--surrogate", "arctan", "--exploration-noise", "0.2"],
    # ... and a 3x larger actor learning rate (docs/learning.md: PopSAN learns late on Hopper).
    "popsan-arctan-lr3e-4": ["--surrogate", "arctan", "--actor-lr", "3e-4"],
    # PopSAN's rectangular window 4x wider (half-width 2): stuck output neurons get a gradient
    # (docs/learning.md: both actors collapse onto the action bound; PopSAN's stays there).
    "popsan-window2": ["--surrogate-param", "2.0"],
    # A penalty on output neurons stuck firing always or never, whose gradient bypasses the
    # surrogate (docs/learning.md: a penalty that brings stuck neurons back).
    "popsan-drive1": ["--drive-penalty", "1.0"],
    # ... with its authors' lighter fit (one Adam step per critic step, at lr 3e-3: their
    # README reports under 1% lost; docs/learning.md: what a proxy update costs).
    "proxy-k1": PROXY_K1,
    # ... and with the drive penalty (the locomotion default's PopSAN; docs/learning.md: the
    # proxy cannot bring stuck output neurons back, the penalty can).
    "proxy-k1-drive1": [*PROXY_K1, "--drive-penalty", "1.0"],
    # The proxy target with the drive penalty (PopSAN's setting otherwise).
    "proxy-drive1": ["--target-actor", "proxy", "--drive-penalty", "1.0"],
    # The proxy-target paper's own setting (Xu et al. 2025, as its code runs it): Fujimoto's
    # TD3 schedule (25k random steps, then one update per env step, batch 256, lr 3e-4), raw
    # observations with tanh before the encoder (means over (-1, 1), std sqrt(0.05)), and its
    # "LIF", which has no synaptic current (current decay 0).
    "lif-paper": PROXY_PAPER_SETTING,
    "lif-paper-proxy": [*PROXY_PAPER_SETTING, "--target-actor", "proxy"],
    # The other algorithms of PopSAN's code, with its settings (``--paper``), for both actors.
    "popsan-ddpg": ["--algo", "ddpg"],
    "mlp-ddpg": ["--algo", "ddpg", "--actor", "mlp"],
    "popsan-sac": ["--algo", "sac"],
    "mlp-sac": ["--algo", "sac", "--actor", "mlp"],
}
# Published anchors (see docs/learning.md for their settings): TD3 with an ANN actor, the
# TD3 authors' evaluations at 100k and 300k steps (gym v1, 10 seeds, mean, std).
ANCHORS_TD3 = {
    "HalfCheetah": {100_000: (5514, 554), 300_000: (7697, 727)},
    "Hopper": {100_000: (659, 752), 300_000: (2410, 900)},
    "Walker2d": {100_000: (770, 586), 300_000: (3335, 957)},
}


def run(args) -> None:
    for env in args.envs:
        for variant in args.variants:
            root = os.path.join(args.root, f"{env}-{variant}")
            if os.path.exists(os.path.join(root, "sweep.json")):
                print(f"{root}: done", flush=True)
                continue
            if os.path.exists(os.path.join(root, "sweep_spec.json")):
                command = ["sweep", "--resume", root]
            else:
                command = [
                    "sweep",
                    "--env",
                    env,
                    "--seeds",
                    *map(str, args.seeds),
                    "--total-steps",
                    str(args.steps),
                    "--out",
                    root,
                    "--paper",  # each variant names its changes to the published settings
                    *VARIANTS[variant],
                    *args.extra,
                ]
            print(" ".join(["spikerl-jax", *command]), flush=True)
            code = subprocess.run(
                [sys.executable, "-m", "spikerl_jax.cli", *command, "--no-progress"]
            ).returncode
            if code:  # the CLI said why (an interrupt saved a checkpoint: run again resumes)
                sys.exit(code)


def runs_of(root: str) -> dict[tuple[str, str], list[str]]:
    """``{(env, variant): [run dirs]}`` under ``root`` (any depth below ENV-VARIANT); runs
    still going count with the evaluations they have (the table gives the step)."""
    found: dict[tuple[str, str], list[str]] = {}
    for name in sorted(os.listdir(root)):
        env, _, variant = name.partition("-v4-")
        if not variant:
            continue
        for folder, _, files in os.walk(os.path.join(root, name)):
            if "metrics.csv" in files and "config.json" in files:  # finished or not
                found.setdefault((f"{env}-v4", variant), []).append(folder)
    return {group: sorted(dirs) for group, dirs in found.items()}


def curve(run_dir: str) -> dict[int, float]:
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return {int(r["step"]): float(r["eval_return"]) for r in csv.DictReader(f)}


def report(args) -> None:
    from matplotlib.figure import Figure

    from spikerl_jax.reporting.plots import STD_NOTE

    groups = {
        (env, variant): dirs
        for (env, variant), dirs in runs_of(args.root).items()
        if (not args.variants or variant in args.variants) and (not args.envs or env in args.envs)
    }
    rows = []
    envs = sorted({env for env, _ in groups})
    fig = Figure(figsize=(5.5 * len(envs), 4), layout="constrained")
    axes = fig.subplots(1, len(envs), squeeze=False)[0]
    for ax, env in zip(axes, envs, strict=True):
        for (group_env, variant), dirs in sorted(groups.items()):
            if group_env != env:
                continue
            curves = [curve(d) for d in dirs]
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            values = np.array([[c[s] for s in steps] for c in curves])
            mean, std = values.mean(0), values.std(0)
            ax.plot(steps, mean, marker="o", markersize=3, label=f"{variant} (n={len(dirs)})")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
            best = np.array([max(c.values()) for c in curves])
            # The anchors' budgets, and the last step when a run stops short of them.
            for step in sorted({s for s in (100_000, 300_000) if s in steps} | {steps[-1]}):
                i = steps.index(step)
                at = values[:, i]
                # One evaluation is noisy on tasks that end episodes (Hopper): the mean of
                # each seed's last three evaluations up to `step` is steadier.
                last3 = values[:, max(0, i - 2) : i + 1].mean(1)
                names = " ".join(os.path.relpath(d, args.root) for d in dirs)
                rows.append(
                    {
                        "env": env,
                        "variant": variant,
                        "step": step,
                        "seeds": len(dirs),
                        "mean": float(at.mean()),
                        "std": float(at.std()),
                        "last3_mean": float(last3.mean()),
                        "last3_std": float(last3.std()),
                        "best_mean": float(best.mean()),
                        "best_std": float(best.std()),
                        "best_per_seed": " ".join(f"{b:.0f}" for b in best),
                        "runs": names,
                    }
                )
        family = env.split("-v")[0]
        last = max(
            step
            for (group_env, _), dirs in groups.items()
            if group_env == env
            for step in curve(dirs[0])
        )
        for step, (mean, std) in ANCHORS_TD3.get(family, {}).items():
            if step <= last:
                ax.errorbar(
                    [step],
                    [mean],
                    yerr=[std],
                    fmt="k^",
                    capsize=3,
                    label=f"TD3 (ANN), authors' curve, {step // 1000}k",
                )
        ax.set_title(f"{env}: evaluation return", fontsize=10)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title=STD_NOTE, title_fontsize=7)
    os.makedirs(args.out, exist_ok=True)
    fig.savefig(os.path.join(args.out, args.figure), dpi=110)
    written = [os.path.join(args.out, args.figure)]
    table = os.path.join(args.out, "learning.csv")
    if not (args.variants or args.envs):  # the CSV holds every run; a selection, its figure
        written.append(table)
        write_rows(table, rows)
    elif args.merge:  # the selection's rows replace theirs in the CSV; the others stay
        kept = [r for r in read_rows(table) if (r["env"], r["variant"]) not in groups]
        merged = sorted(kept + rows, key=lambda r: (r["env"], r["variant"], int(r["step"])))
        written.append(table)
        write_rows(table, merged)
    print_rows(rows)
    print(json.dumps({"written": written}))


def write_rows(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(
            f,
            [
                "env",
                "variant",
                "step",
                "seeds",
                "mean",
                "std",
                "last3_mean",
                "last3_std",
                "best_mean",
                "best_std",
                "best_per_seed",
                "runs",
            ],
        )
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def print_rows(rows: list[dict]) -> None:
    print(
        "| env | actor | step | seeds | eval return (mean ± std) | last 3 evaluations | "
        "best: mean ± std (per seed) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['env']} | {r['variant']} | {r['step'] // 1000}k | {r['seeds']} | "
            f"{r['mean']:.0f} ± {r['std']:.0f} | {r['last3_mean']:.0f} ± {r['last3_std']:.0f} | "
            f"{r['best_mean']:.0f} ± {r['best_std']:.0f} ({r['best_per_seed']}) |"
        )


def target_gap(policy, run_dir: str, states: np.ndarray, actions: np.ndarray) -> float:
    """How far the critic's target action is from the actor's ``actions`` on ``states``: the
    RMS over the states and action dims of (target actor or proxy - actor), in units of the
    action limit, from the run's latest checkpoint. TD3's target smoothing noise (std 0.2,
    clip 0.5) is the scale it compares with: a proxy that imitates the actor to well under it
    is a faithful stand-in, and a Polyak-averaged target actor's gap is the lag that TD3
    relies on."""
    import jax

    from spikerl_jax.reporting.population import population_of
    from spikerl_jax.rl.normalizer import normalize
    from spikerl_jax.rl.proxy import ProxyTarget, make_proxy
    from spikerl_jax.training.checkpoint import read_checkpoint
    from spikerl_jax.training.members import member

    items, _, _ = read_checkpoint(run_dir, ["learner"])
    td3 = member(items["learner"], population_of(run_dir)[1])["agent"]
    cfg = policy.config
    obs = normalize(policy.normalizer, states, cfg.input_clip)
    if cfg.td3.target_actor == "proxy":
        proxy = ProxyTarget(params=td3["proxy"]["params"], opt_state=None)
        target = make_proxy(policy.actor, cfg.td3).act(proxy, obs)
    else:
        target = policy.actor.apply(td3["target_actor_params"], obs, jax.random.key(0))
    gap = (np.asarray(target) - actions) / policy.spec.action_limit
    return float(np.sqrt((gap**2).mean()))


def diagnose(args) -> None:
    import spikerl_jax as sj
    from spikerl_jax.config import ConfigError
    from spikerl_jax.envs.gymnasium_backend import quiet_make

    print(
        "| run | return (1st episode) | action std over the states | target gap | "
        "layer: firing rate, saturated / silent / varying |"
    )
    print("| --- | --- | --- | --- | --- |")
    for (env, _), dirs in sorted(runs_of(args.root).items()):
        for run_dir in dirs:
            try:
                policy = sj.load_policy(run_dir, "latest")
            except ConfigError as error:  # e.g. a run before its first checkpoint
                print(f"| {os.path.relpath(run_dir, args.root)} | ({error}) | | | |")
                continue
            gym_env, observations, episode_return, first = quiet_make(env), [], 0.0, True
            obs, _ = gym_env.reset(seed=0)
            for _ in range(args.steps):  # the states the policy itself visits
                observations.append(obs)
                obs, reward, terminated, truncated, _ = gym_env.step(policy(obs))
                episode_return += reward * first
                if terminated or truncated:
                    obs, first = gym_env.reset()[0], False
            states = np.array(observations, np.float32)
            # A constant action (std 0) is a collapsed actor: pinned at the action bounds.
            actions = np.asarray(policy(states))
            spread = float(actions.std(0).mean())
            cells = "(no spiking layers)"
            if policy.config.actor_kind == "popsan":
                _, trains = policy.spike_trains(states)
                layers = sj.neuron_saturation(trains, policy.config.actor.timesteps)
                cells = "; ".join(
                    f"{name} {v['firing_rate']:.2f}, {v['saturated']:.2f} / "
                    f"{v['silent']:.2f} / {v['varies']:.2f}"
                    for name, v in layers.items()
                )
            print(
                f"| {os.path.relpath(run_dir, args.root)} | {episode_return:.0f} | "
                f"{spread:.3f} | {target_gap(policy, run_dir, states, actions):.3f} | {cells} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train the sweeps (skips finished ones)")
    p_run.add_argument("--envs", nargs="+", default=["HalfCheetah-v4", "Hopper-v4"])
    p_run.add_argument(
        "--variants", nargs="+", default=["popsan", "mlp", "proxy"], choices=sorted(VARIANTS)
    )
    p_run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p_run.add_argument("--steps", type=int, default=100_000)
    p_run.add_argument("--root", default="runs/learning")
    p_run.add_argument("extra", nargs="*", help="more train options, after --")
    p_report = sub.add_parser("report", help="table and curves of the finished runs")
    p_report.add_argument("--root", default="runs/learning")
    p_report.add_argument("--out", default="docs")
    p_report.add_argument(
        "--variants",
        nargs="+",
        choices=sorted(VARIANTS),
        help="only these (the figure alone; the CSV is every run's)",
    )
    p_report.add_argument("--envs", nargs="+", help="only these (as --variants)")
    p_report.add_argument("--figure", default="learning_curves.png")
    p_report.add_argument(
        "--merge",
        action="store_true",
        help="with --envs or --variants: replace their rows in OUT/learning.csv, keep the rest",
    )
    p_diag = sub.add_parser("diagnose", help="collapsed actors, saturated and silent neurons")
    p_diag.add_argument("--root", default="runs/learning")
    p_diag.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    {"run": run, "report": report, "diagnose": diagnose}[args.command](args)


if __name__ == "__main__":
    main()

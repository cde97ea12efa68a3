"""``spikerl-jax plot RUN_DIR [...]``: learning curves, energy and time, firing rates (PNG).

Runs that differ only in their seed (or in output, logging and evaluation settings) form one
group: its learning curve is the mean ± std over the group's runs at the evaluation steps
they share. Figures are drawn on matplotlib's Agg canvas, so no display is needed.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from spikerl_jax.config import TrainConfig, leaf_items
from spikerl_jax.reporting.runs import RunRecord

# Config entries that do not change what is learned: runs differing only here are one group.
NOT_GROUPING = {
    "seed",
    "out",
    "progress",
    "tensorboard",
    "energy",
    "energy_country",
    "energy_region",
    "pj_per_synop",
    "pj_per_mac",
    "eval_every",
    "eval_episodes",
    "checkpoint_every",
    "keep_checkpoints",
    "checkpoint_buffer",
}


def group_runs(runs: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Groups runs by their learning-relevant config; labels name what tells groups apart.

    A label is the env, plus ``key=value`` for each setting that differs between groups.
    """
    keys = [
        {k: v for k, v in leaf_items(TrainConfig.from_dict(r.config)) if k not in NOT_GROUPING}
        for r in runs
    ]
    distinct: list[dict] = []
    for key in keys:
        if key not in distinct:
            distinct.append(key)
    varying = sorted(
        {k for d in distinct for k in d if any(d[k] != o.get(k) for o in distinct)} - {"env"}
    )
    groups: dict[str, list[RunRecord]] = {}
    for key, run in zip(keys, runs, strict=True):
        label = " ".join([key["env"], *(f"{k}={key[k]}" for k in varying)])
        groups.setdefault(label, []).append(run)
    return groups


def _curve(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps shared by all runs, mean and std of their evaluation returns there."""
    per_run = [{int(r["step"]): r["eval_return"] for r in run.metrics} for run in runs]
    steps = sorted(set.intersection(*(set(p) for p in per_run)))
    returns = np.array([[p[s] for s in steps] for p in per_run])
    return np.array(steps), returns.mean(0), returns.std(0)


def plot_learning_curves(groups: dict[str, list[RunRecord]], path: str) -> str:
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for label, runs in groups.items():
        steps, mean, std = _curve(runs)
        ax.plot(steps, mean, marker="o", markersize=3, label=f"{label} (n={len(runs)})")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (mean ± std over runs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def _energy_of(run: RunRecord) -> dict | None:
    energy = run.summary.get("energy") or {}
    return energy if energy.get("enabled") and "total" in energy else None


def plot_energy(runs: list[RunRecord], path: str) -> str | None:
    """Duration and energy (CPU/GPU/RAM stacked) of each measured run; None if none was."""
    measured = [(r, e) for r in runs if (e := _energy_of(r)) is not None]
    if not measured:
        return None
    names = [os.path.basename(os.path.normpath(r.run_dir)) for r, _ in measured]
    x = np.arange(len(measured))
    fig = Figure(figsize=(4 + 1.2 * len(measured), 4), layout="constrained")
    ax_time, ax_energy = fig.subplots(1, 2)
    for phase, hatch in (("train", None), ("eval", "//")):
        bottom = [e["train"]["duration_s"] if phase == "eval" else 0.0 for _, e in measured]
        ax_time.bar(
            x,
            [e[phase]["duration_s"] for _, e in measured],
            bottom=bottom,
            hatch=hatch,
            color="tab:blue",
            edgecolor="white",
            label=phase,
        )
    ax_time.set_ylabel("duration (s)")
    ax_time.legend(fontsize=8)
    bottom = np.zeros(len(measured))
    for part, color in (("cpu", "tab:orange"), ("gpu", "tab:green"), ("ram", "tab:gray")):
        wh = np.array([e["total"][f"{part}_energy_kwh"] * 1e3 for _, e in measured])
        ax_energy.bar(x, wh, bottom=bottom, color=color, label=part.upper())
        bottom += wh
    ax_energy.set_ylabel("energy (Wh)")
    ax_energy.legend(fontsize=8)
    for ax in (ax_time, ax_energy):
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=110)
    return path


def plot_firing_rates(groups: dict[str, list[RunRecord]], path: str) -> str | None:
    """Mean firing rate per layer (spikes per neuron per timestep) of each group's final
    evaluation, ± std over its runs; None if no run has spike statistics."""
    with_spikes = {
        label: [r.summary["spikes"] for r in runs if r.summary.get("spikes")]
        for label, runs in groups.items()
    }
    with_spikes = {label: s for label, s in with_spikes.items() if s}
    if not with_spikes:
        return None
    layers = list(next(iter(with_spikes.values()))[0]["layers"])
    width = 0.8 / len(with_spikes)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for i, (label, stats) in enumerate(with_spikes.items()):
        rates = np.array([[s["layers"][layer]["firing_rate"] for layer in layers] for s in stats])
        ax.bar(
            np.arange(len(layers)) + i * width, rates.mean(0), width, yerr=rates.std(0), label=label
        )
    ax.set_xticks(np.arange(len(layers)) + width * (len(with_spikes) - 1) / 2, layers)
    ax.set_ylabel("firing rate (spikes / neuron / timestep)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def plot_runs(runs: list[RunRecord], out_dir: str) -> list[str]:
    """Writes every plot the runs have data for into ``out_dir``; returns the PNG paths."""
    os.makedirs(out_dir, exist_ok=True)
    groups = group_runs(runs)
    paths = [
        plot_learning_curves(groups, os.path.join(out_dir, "learning_curve.png")),
        plot_energy(runs, os.path.join(out_dir, "energy.png")),
        plot_firing_rates(groups, os.path.join(out_dir, "firing_rates.png")),
    ]
    return [p for p in paths if p is not None]


def plot_spike_raster(trains: dict[str, np.ndarray], timesteps: int, path: str) -> str:
    """A spike raster: one panel per layer, a dot per spike, time (spike timesteps of
    consecutive env steps, separated by lines every ``timesteps``) left to right.

    Args:
      trains: ``{layer: (time, neurons)}`` 0/1 spikes, layers in network order.
      timesteps: ``T``, the spike timesteps per env step.
      path: the PNG to write.
    """
    fig = Figure(figsize=(8, 1.2 + 1.4 * len(trains)), layout="constrained")
    axes = fig.subplots(len(trains), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (layer, train) in zip(axes, trains.items(), strict=True):
        time, neuron = np.nonzero(np.asarray(train))
        ax.scatter(
            time,
            neuron,
            s=max(4.0, 400.0 / train.shape[1]),
            marker="|",
            color="black",
            linewidths=1.0,
        )
        for boundary in range(timesteps, len(train), timesteps):
            ax.axvline(boundary - 0.5, color="tab:blue", alpha=0.3, linewidth=0.8)
        rate = float(np.asarray(train).mean())
        ax.set_ylabel(f"{layer}\n({train.shape[1]})", fontsize=8)
        ax.set_ylim(-1, train.shape[1])
        ax.set_title(f"{layer}: firing rate {rate:.2f}", fontsize=8, loc="left")
    axes[-1].set_xlabel(f"spike timestep ({timesteps} per env step)")
    fig.savefig(path, dpi=110)
    return path


def plot_receptive_fields(
    mean_DP: np.ndarray, std_DP: np.ndarray, path: str, dims: int = 4, clip: float = 3.0
) -> str:
    """The population encoder's Gaussian receptive fields of the first ``dims`` observation
    dims: each neuron's activation ``exp(-(o - mu)^2 / (2 sigma^2))`` over normalized
    observations in ``[-clip, clip]``."""
    mean_DP, std_DP = np.asarray(mean_DP), np.asarray(std_DP)
    dims = min(dims, mean_DP.shape[0])
    o = np.linspace(-clip, clip, 400)
    fig = Figure(figsize=(3 * dims, 2.6), layout="constrained")
    axes = fig.subplots(1, dims, squeeze=False)[0]
    for d, ax in enumerate(axes):
        for mu, sigma in zip(mean_DP[d], std_DP[d], strict=True):
            ax.plot(o, np.exp(-0.5 * (o - mu) ** 2 / sigma**2), linewidth=1)
        ax.set_title(f"observation dim {d}", fontsize=9)
        ax.set_xlabel("normalized observation")
    axes[0].set_ylabel("activation")
    fig.savefig(path, dpi=110)
    return path

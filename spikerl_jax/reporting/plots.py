"""``spikerl-jax plot RUN_DIR [...]``: learning curves, energy and time, firing rates (PNG).

Runs that differ only in their seed (or in output, logging and evaluation settings) form one
group: its learning curve is the mean ± std over the group's runs at the evaluation steps
they share (the population std, numpy's ``ddof=0``, as the sweep tables use; a group of one
run has no band). Titles name the task, the variant and the seed count; legends name the
settings that tell the groups apart. Figures are drawn on matplotlib's Agg canvas, so no
display is needed.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from spikerl_jax.arguments import expect, expect_path
from spikerl_jax.reporting.compare import short_names
from spikerl_jax.reporting.grouping import group_runs, variant
from spikerl_jax.reporting.runs import RunRecord


# Config entries that do not change what is learned: runs differing only here are one group.
def _seeds(groups: dict[str, list[RunRecord]]) -> str:
    counts = sorted({len(runs) for runs in groups.values()})
    n = "/".join(map(str, counts))
    return f"{n} seed{'s' if counts != [1] else ''}" + (" each" if len(groups) > 1 else "")


def figure_title(groups: dict[str, list[RunRecord]], what: str) -> str:
    """``TASK (VARIANT): WHAT, N seeds``: the variant where one group is drawn."""
    runs = [run for group in groups.values() for run in group]
    envs = sorted({run.summary["env"] for run in runs})
    one = f" ({variant(runs[0].config)})" if len(groups) == 1 else ""
    return f"{', '.join(envs)}{one}: {what}, {_seeds(groups)}"


STD_NOTE = "mean ± std over seeds (population std, ddof=0)"


def _curve(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps shared by all runs, mean and std of their evaluation returns there."""
    per_run = [{int(r["step"]): r["eval_return"] for r in run.metrics} for run in runs]
    steps = sorted(set.intersection(*(set(p) for p in per_run)))
    returns = np.array([[p[s] for s in steps] for p in per_run])
    return np.array(steps), returns.mean(0), returns.std(0)


def plot_learning_curves(groups: dict[str, list[RunRecord]], path: str) -> str:
    """Each group's evaluation return over environment steps (mean ± std over its seeds)."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    several = any(len(runs) > 1 for runs in groups.values())
    for label, runs in groups.items():
        steps, mean, std = _curve(runs)
        ax.plot(steps, mean, marker="o", markersize=3, label=f"{label} (n={len(runs)})")
        if len(runs) > 1:
            ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set_title(figure_title(groups, "evaluation return"), fontsize=10)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=STD_NOTE if several else None, title_fontsize=8)
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
    names = short_names([r.run_dir for r, _ in measured])
    x = np.arange(len(measured))
    fig = Figure(figsize=(6 + 1.2 * len(measured), 4.5), layout="constrained")
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
        if part == "gpu" and not wh.any():
            continue
        ax_energy.bar(x, wh, bottom=bottom, color=color, label=part.upper())
        bottom += wh
    ax_energy.set_ylabel("energy (Wh)")
    ax_energy.legend(fontsize=8)
    ax_time.set_title("duration per phase", fontsize=9)
    ax_energy.set_title("energy per component", fontsize=9)
    for ax in (ax_time, ax_energy):
        ax.set_xticks(x, names, rotation=20 if len(names) > 1 else 0, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    sources = measured[0][1].get("power_source", {})
    estimated = (
        " (CPU power estimated from its TDP: no RAPL)"
        if "estimate" in sources.get("cpu", "")
        else ""
    )
    envs = ", ".join(sorted({r.summary["env"] for r, _ in measured}))
    fig.suptitle(f"{envs}: time and energy of each run{estimated}", fontsize=10)
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
        error = rates.std(0) if len(stats) > 1 else None
        x = np.arange(len(layers)) + i * width
        ax.bar(x, rates.mean(0), width, yerr=error, capsize=3, label=f"{label} (n={len(stats)})")
    ax.set_xticks(np.arange(len(layers)) + width * (len(with_spikes) - 1) / 2, layers)
    several = any(len(s) > 1 for s in with_spikes.values())
    ax.set_title(
        figure_title({k: groups[k] for k in with_spikes}, "firing rates at the final evaluation"),
        fontsize=10,
    )
    ax.set_ylabel("firing rate (spikes / neuron / timestep)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, title=STD_NOTE if several else None, title_fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def plot_runs(runs: list[RunRecord], out_dir: str) -> list[str]:
    """Writes every plot the runs have data for into ``out_dir``; returns the PNG paths."""
    expect("plot_runs(runs)", runs, list | tuple, "a list of RunRecords (sj.read_run(run_dir))")
    for run in runs:
        expect("plot_runs(runs)", run, RunRecord, "RunRecords (sj.read_run(run_dir)) only")
    expect_path("plot_runs(out_dir)", out_dir)
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
    fig = Figure(figsize=(8, 1.4 + 1.4 * len(trains)), layout="constrained")
    axes = fig.subplots(len(trains), 1, sharex=True, squeeze=False)[:, 0]
    length = len(next(iter(trains.values())))
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
        ax.set_ylabel(f"{layer}\n(neuron)", fontsize=8)
        ax.set_ylim(-1, train.shape[1])
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        ax.set_title(
            f"{layer}: {train.shape[1]} neurons, firing rate {rate:.2f} over these "
            f"{length} timesteps",
            fontsize=8,
            loc="left",
        )
    axes[-1].set_xlim(-0.5, length - 0.5)  # every timestep, the first (0) included
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel(f"spike timestep (0 to {length - 1}; {timesteps} per env step)")
    steps = length // timesteps
    fig.suptitle(
        f"spikes of the first {steps} env step{'s' * (steps > 1)} of an episode "
        f"(lines: env step boundaries)",
        fontsize=10,
    )
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

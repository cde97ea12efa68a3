"""Pure builders of a run's records: a metrics.csv row per evaluation, the summary, and a
member's share of a population's energy."""

from __future__ import annotations

import time
from typing import NamedTuple

from spikerl_jax.config import TrainConfig
from spikerl_jax.reporting.activity import spike_report


class EvalResult(NamedTuple):
    """One member's deterministic episodes: returns, and the actor's spikes over all steps."""

    mean: float
    std: float
    length: float  # mean episode length
    spikes: dict[str, float]  # layer -> spikes summed over neurons, timesteps, inferences
    inferences: int  # single-observation actor calls the spike totals cover


def eval_results(returns_ME, lengths_ME, spikes: list[dict]) -> list[EvalResult]:
    """Each member's ``EvalResult`` from its episodes' returns and lengths ``(M, E)``."""
    return [
        EvalResult(
            float(r.mean()),
            float(r.std()),
            float(n.mean()),
            {k: float(v) for k, v in s.items()},
            int(n.sum()),
        )
        for r, n, s in zip(returns_ME, lengths_ME, spikes, strict=True)
    ]


class Throughput:
    """Time, env steps and update rounds of this process: since its start (for the summary)
    and since the last row of each kind (``eval``, ``log``), and the latest update metrics."""

    def __init__(self, step: int, updates: int):
        self.t_start = time.perf_counter()
        self.first = (step, updates)
        # Per kind of row: when, at which step and update count it was, update seconds since.
        self.windows = {k: [self.t_start, step, updates, 0.0] for k in ("eval", "log")}
        self.update_s, self.metrics = 0.0, {}

    def rounds(self, metrics: dict, seconds: float) -> None:
        """Update rounds that took ``seconds`` ended with ``metrics``."""
        for window in self.windows.values():
            window[3] += seconds
        self.update_s, self.metrics = self.update_s + seconds, metrics

    def seconds(self) -> float:
        return time.perf_counter() - self.t_start

    def since(self, kind: str, step: int, updates: int) -> dict:
        """Env steps/s and updates/s since the last row of ``kind`` (empty: no update ran)."""
        now = time.perf_counter()
        t, first_step, first_updates, update_s = self.windows[kind]
        self.windows[kind] = [now, step, updates, 0.0]
        return {
            "env_steps_per_s": (step - first_step) / (now - t),
            "updates_per_s": (updates - first_updates) / update_s if update_s else "",
        }

    def since_start(self, step: int, updates: int) -> dict:
        return {
            "env_steps_per_s": (step - self.first[0]) / self.seconds(),
            "updates_per_s": (updates - self.first[1]) / self.update_s if self.update_s else None,
        }


def log_row(step: int, episodes, speeds: dict, metrics: dict) -> dict:
    """One train.csv row: the training episodes ended since the last row (``episodes``:
    count, return and length sums), the latest update round's metrics (none before the
    first: the columns stay empty), the wall time and the throughput since the last row
    (``speeds``)."""
    count, returns, lengths = (float(x) for x in episodes)
    return {
        "step": step,
        "wall_s": speeds["wall_s"],
        "episodes": int(count),
        "train_return": returns / count if count else "",
        "train_length": lengths / count if count else "",
        **{k: float(v) for k, v in metrics.items()},
        "env_steps_per_s": speeds["env_steps_per_s"],
        "updates_per_s": speeds["updates_per_s"],
    }


def spikes_of(result, cfg: TrainConfig, obs_dim: int, action_dim: int) -> dict | None:
    """The spike statistics of an evaluation (``training.backend.EvalResult``); None for a
    non-spiking actor."""
    if not result.spikes:
        return None
    return spike_report(
        result.spikes,
        result.inferences,
        obs_dim,
        action_dim,
        cfg.actor,
        cfg.pj_per_synop,
        cfg.pj_per_mac,
    )


def metric_row(
    step: int,
    result: EvalResult,
    train_return,
    speeds: dict,
    metrics: dict,
    spikes: dict | None,
) -> dict:
    """One metrics.csv row: the evaluation, the training episodes, the wall time and
    throughput (``speeds``) and the latest update round's metrics (empty before the first)."""
    return {
        "step": step,
        "eval_return": result.mean,
        "eval_return_std": result.std,
        "eval_length": result.length,
        "train_return": "" if train_return is None else train_return,
        "wall_s": speeds["wall_s"],
        "env_steps_per_s": speeds["env_steps_per_s"],
        "updates_per_s": speeds["updates_per_s"],
        **{k: float(v) for k, v in metrics.items()},
        "synops_per_inference": spikes["synops_per_inference"] if spikes else "",
    }


def share_energy(report: dict, members: int) -> dict:
    """A member's share of the process's energy report: energy and emissions divided equally
    between the ``members`` trained together (durations stay: each member took that long)."""
    if members == 1 or not report.get("enabled"):
        return report
    divided = (
        "energy_kwh",
        "cpu_energy_kwh",
        "gpu_energy_kwh",
        "ram_energy_kwh",
        "emissions_kg",
        "mean_power_w",
    )
    out = dict(report, shared_by=members)
    for phase in ("train", "eval", "total"):
        out[phase] = {
            k: (v / members if k in divided and v is not None else v)
            for k, v in report[phase].items()
        }
    return out


def summary(cfg: TrainConfig, record, run: dict) -> dict:
    """A member's ``summary.json``: its config's task and seed, its evaluation ``record``
    (``training.state.MemberRecord``) and ``run``, what the whole population shares
    (counters, time, throughput, layout, energy already shared out)."""
    return {
        "env": cfg.env,
        "seed": cfg.seed,
        "total_steps": run["total_steps"],
        "final_eval_return": record.last_return,
        "best_eval_return": record.best_return,
        "best_step": record.best_step,
        **{k: run[k] for k in ("wall_s", "segments", "env_steps_per_s", "updates")},
        **{k: run[k] for k in ("updates_per_s", "resumed_from", "target_reached_at")},
        "run_dir": cfg.out,
        "devices": run["devices"],
        "global_batch_size": cfg.batch_size * run["batch_devices"],
        "members": run["members"],
        "energy": run["energy"],
        "spikes": record.spikes,
    }


def announcement(cfg: TrainConfig, members: int, devices: tuple[int, str], step, root) -> str:
    """The first line of a run: the task, the members, the devices (count, kind), the step it
    starts from and where its records go."""
    who = f"{members} members" if members > 1 else "1 run"
    start = f" from step {step:,}" if step else ""
    return (
        f"{cfg.env}: {who} on {devices[0]} {devices[1]} device(s) ({cfg.backend}){start}; "
        f"records in {root}"
    )

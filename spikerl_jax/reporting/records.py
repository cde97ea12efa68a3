"""Pure builders of a run's records: a metrics.csv row per evaluation, the summary, and a
member's share of a population's energy."""

from __future__ import annotations

import dataclasses

from spikerl_jax.config import TrainConfig
from spikerl_jax.reporting.activity import spike_report

LOSS_COLUMNS = ("critic_loss", "actor_loss", "q", "critic_grad_norm", "actor_grad_norm")


@dataclasses.dataclass(frozen=True)
class Window:
    """The stretch since the last evaluation, for its throughput: when and at which step and
    update count it began, and the seconds its update rounds took."""

    t: float
    step: int
    updates: int
    update_s: float = 0.0


def spikes_of(result, cfg: TrainConfig, obs_dim: int, action_dim: int) -> dict | None:
    """The spike statistics of an evaluation (``training.backend.EvalResult``); None for a
    non-spiking actor."""
    if not result.spikes:
        return None
    return spike_report(result.spikes, result.inferences, obs_dim, action_dim, cfg.actor,
                        cfg.pj_per_synop, cfg.pj_per_mac)  # fmt: skip


def metric_row(cfg: TrainConfig, step: int, updates: int, result, train_return, wall_s: float,
               window: Window, now: float, metrics: dict, spikes: dict | None) -> dict:  # fmt: skip
    """One metrics.csv row: the evaluation, the training episodes, the throughput since the
    last evaluation and the latest update round's losses (empty before the first)."""
    columns = LOSS_COLUMNS + (("proxy_loss",) if cfg.td3.target_actor == "proxy" else ())
    return {
        "step": step,
        "eval_return": result.mean,
        "eval_return_std": result.std,
        "eval_length": result.length,
        "train_return": "" if train_return is None else train_return,
        "wall_s": wall_s,
        "env_steps_per_s": (step - window.step) / (now - window.t),
        "updates_per_s": (updates - window.updates) / window.update_s if window.update_s else "",
        **{k: float(metrics[k]) if k in metrics else "" for k in columns},
        "synops_per_inference": spikes["synops_per_inference"] if spikes else "",
    }


def share_energy(report: dict, members: int) -> dict:
    """A member's share of the process's energy report: energy and emissions divided equally
    between the ``members`` trained together (durations stay: each member took that long)."""
    if members == 1 or not report.get("enabled"):
        return report
    divided = ("energy_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh",
               "emissions_kg", "mean_power_w")  # fmt: skip
    out = dict(report, shared_by=members)
    for phase in ("train", "eval", "total"):
        out[phase] = {k: (v / members if k in divided and v is not None else v)
                      for k, v in report[phase].items()}  # fmt: skip
    return out

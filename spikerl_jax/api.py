"""The public API: what ``from spikerl_jax import ...`` gives, for scripts and notebooks.

    import dataclasses
    import spikerl_jax as sj

    cfg = dataclasses.replace(sj.preset_for("InvertedPendulum-v4"), total_steps=5000,
                              out="runs/nb")
    result = sj.train(cfg)                  # runs the loop; returns summary, metrics, state
    result.metrics[-1]["eval_return"]       # metrics.csv rows as dicts
    policy = sj.load_policy(result.run_dir) # a function obs -> action, for Gymnasium agents
    sj.evaluate(result.run_dir, episodes=5) # returns, spike statistics

The command line (``spikerl-jax``) is a thin layer over these functions.
"""

from __future__ import annotations

import dataclasses

from spikerl_jax.config import (
    CriticConfig,
    PopSANConfig,
    TD3Config,
    TrainConfig,
    preset_for,
)
from spikerl_jax.export.nir import export_nir, popsan_to_nir
from spikerl_jax.export.policy import Policy, episode_spike_trains, load_policy
from spikerl_jax.export.policy import evaluate_run as evaluate
from spikerl_jax.reporting.activity import spike_report
from spikerl_jax.reporting.compare import compare_runs
from spikerl_jax.reporting.plots import (
    plot_learning_curves,
    plot_receptive_fields,
    plot_runs,
    plot_spike_raster,
)
from spikerl_jax.reporting.runlog import RunRecord, read_run
from spikerl_jax.rl.networks import MLPActor, TwinQ, make_networks
from spikerl_jax.snn.popsan import PopSAN
from spikerl_jax.training.state import RunState
from spikerl_jax.training.sweep import SweepSpec
from spikerl_jax.training.trainer import train_members, train_sweep


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
      summary: ``summary.json``'s content (returns, wall time, energy, spike statistics).
      metrics: ``metrics.csv``'s rows (numbers as floats, None where empty).
      run_dir: the run directory (config, records, checkpoints).
      state: the final device state of the run (``RunState``: parameters, optimizer states,
        targets, normalizer, replay buffer; a leading member axis of one).
    """

    summary: dict
    metrics: list[dict]
    run_dir: str
    state: RunState

    def policy(self, checkpoint: str = "best") -> Policy:
        """The trained actor as a function of observations (``load_policy``)."""
        return load_policy(self.run_dir, checkpoint)


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Trains one run (see ``spikerl_jax.training.trainer``); the records are written to
    ``config.run_dir()`` as the CLI writes them.

    Raises:
      ConfigError: a bad configuration (nothing is written), or a bad checkpoint to resume.
      TrainingError: non-finite losses.
    """
    summaries, state = train_members([config], resume=resume)
    summary = summaries[0]
    return TrainResult(summary, read_run(summary["run_dir"]).metrics, summary["run_dir"], state)


__all__ = [
    "CriticConfig",
    "MLPActor",
    "Policy",
    "PopSAN",
    "PopSANConfig",
    "RunRecord",
    "SweepSpec",
    "TD3Config",
    "TrainConfig",
    "TrainResult",
    "TwinQ",
    "compare_runs",
    "episode_spike_trains",
    "evaluate",
    "export_nir",
    "load_policy",
    "make_networks",
    "plot_learning_curves",
    "plot_receptive_fields",
    "plot_runs",
    "plot_spike_raster",
    "popsan_to_nir",
    "preset_for",
    "read_run",
    "spike_report",
    "train",
    "train_sweep",
]

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

# Re-exports (``import x as x`` marks them as such for linters).
from spikerl_jax.api_names import PUBLIC_NAMES
from spikerl_jax.arguments import expect
from spikerl_jax.config import CriticConfig as CriticConfig
from spikerl_jax.config import PopSANConfig as PopSANConfig
from spikerl_jax.config import TD3Config as TD3Config
from spikerl_jax.config import TrainConfig as TrainConfig
from spikerl_jax.config import preset_for as preset_for
from spikerl_jax.export.deploy import deploy as deploy
from spikerl_jax.export.nir import export_nir as export_nir
from spikerl_jax.export.nir import popsan_to_nir as popsan_to_nir
from spikerl_jax.export.policy import Policy as Policy
from spikerl_jax.export.policy import episode_spike_trains as episode_spike_trains
from spikerl_jax.export.policy import evaluate_run
from spikerl_jax.export.policy import load_policy as load_policy
from spikerl_jax.reporting.activity import neuron_saturation as neuron_saturation
from spikerl_jax.reporting.activity import spike_report as spike_report
from spikerl_jax.reporting.compare import compare_runs as compare_runs
from spikerl_jax.reporting.plots import plot_learning_curves as plot_learning_curves
from spikerl_jax.reporting.plots import plot_receptive_fields as plot_receptive_fields
from spikerl_jax.reporting.plots import plot_runs as plot_runs
from spikerl_jax.reporting.plots import plot_spike_raster as plot_spike_raster
from spikerl_jax.reporting.runs import RunRecord as RunRecord
from spikerl_jax.reporting.runs import read_run as read_run
from spikerl_jax.rl.networks import MLPActor as MLPActor
from spikerl_jax.rl.networks import TwinQ as TwinQ
from spikerl_jax.rl.networks import make_networks as make_networks
from spikerl_jax.snn.popsan import PopSAN as PopSAN
from spikerl_jax.sweep_spec import SweepSpec as SweepSpec
from spikerl_jax.training.state import RunState
from spikerl_jax.training.trainer import train_members
from spikerl_jax.training.trainer import train_sweep as train_sweep


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
    expect("train(config)", config, TrainConfig, 'a TrainConfig, e.g. sj.preset_for("Hopper-v4")')
    summaries, state = train_members([config], resume=resume)
    summary = summaries[0]
    return TrainResult(summary, read_run(summary["run_dir"]).metrics, summary["run_dir"], state)


# The names ``spikerl_jax`` exports (listed once, in its __init__, which stays light).
__all__ = list(PUBLIC_NAMES)


def evaluate(
    run_dir: str,
    episodes: int = 10,
    checkpoint: str = "best",
    seed: int = 0,
    render: str | None = None,
    raster: str | None = None,
) -> dict:
    """Deterministic episodes of a run's policy: mean and std of the returns and episode
    lengths, and (PopSAN) the spike statistics (``spikerl_jax.reporting.activity``);
    ``render`` also records the first episode as an mp4, ``raster`` draws every layer's spikes
    over its first steps as a PNG. What ``spikerl-jax eval`` prints."""
    return evaluate_run(run_dir, episodes, checkpoint, seed, render, raster)

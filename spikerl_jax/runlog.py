"""A run directory's records: config.json, metrics.csv, emissions.csv, TensorBoard, summary.json.

On resume, each CSV keeps its rows up to the checkpoint's step; rows written after that
checkpoint (by the interrupted process) are dropped, as the resumed run writes them again.
TensorBoard events after the checkpoint are purged the same way.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Sequence

from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.energy import EMISSIONS_COLUMNS

METRICS_COLUMNS = (
    "step",
    "eval_return",
    "eval_return_std",
    "eval_length",
    "train_return",
    "wall_s",
    "env_steps_per_s",
    "updates_per_s",
    "critic_loss",
    "actor_loss",
    "q",
    "critic_grad_norm",
    "actor_grad_norm",
    "synops_per_inference",
)
# TensorBoard groups scalars by the tag's prefix.
TENSORBOARD_TAGS = {
    "eval_return": "eval/return",
    "eval_return_std": "eval/return_std",
    "eval_length": "eval/length",
    "train_return": "train/episode_return",
    "env_steps_per_s": "speed/env_steps_per_s",
    "updates_per_s": "speed/updates_per_s",
    "critic_loss": "loss/critic",
    "actor_loss": "loss/actor",
    "q": "loss/q",
    "critic_grad_norm": "grad_norm/critic",
    "actor_grad_norm": "grad_norm/actor",
    "synops_per_inference": "spikes/synops_per_inference",
}


class CsvLog:
    """A CSV file written one flushed row at a time (a crash keeps every finished row).

    Args:
      path: the file.
      columns: its header.
      resume_step: keep the existing file's rows with ``step <= resume_step``; None: a new file.
    """

    def __init__(self, path: str, columns: Sequence[str], resume_step: int | None = None):
        kept: list[dict] = []
        if resume_step is not None and os.path.exists(path):
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self._file = open(path, "w", newline="")  # noqa: SIM115 (closed by close())
        self._writer = csv.DictWriter(self._file, columns, extrasaction="ignore")
        self._writer.writeheader()
        self._writer.writerows(kept)
        self._file.flush()

    def write(self, row: dict) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class RunRecorder:
    """Everything a training run writes besides checkpoints.

    Args:
      run_dir: the run directory (created).
      cfg: written to ``config.json``.
      resume_step: the checkpoint step a resumed run continues from; None for a new run (then
        a directory already holding a run is refused).
      tensorboard: also write TensorBoard event files to ``run_dir/tensorboard``.
    """

    def __init__(self, run_dir: str, cfg: TrainConfig, resume_step: int | None, tensorboard: bool):
        self.run_dir = run_dir
        if resume_step is None and os.path.exists(os.path.join(run_dir, "metrics.csv")):
            raise ConfigError(
                f"{run_dir} already holds a run (metrics.csv); choose another --out, or "
                f"continue it with --resume {run_dir}"
            )
        try:
            os.makedirs(run_dir, exist_ok=True)
            with open(os.path.join(run_dir, "config.json"), "w") as f:
                json.dump(dataclasses.asdict(cfg), f, indent=2)
            self.metrics = CsvLog(os.path.join(run_dir, "metrics.csv"), METRICS_COLUMNS,
                                  resume_step)  # fmt: skip
            self.emissions = CsvLog(os.path.join(run_dir, "emissions.csv"), EMISSIONS_COLUMNS,
                                    resume_step)  # fmt: skip
        except OSError as e:
            raise ConfigError(
                f"cannot write the run directory --out {run_dir}: {e.strerror}"
            ) from e
        self._tensorboard = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            self._tensorboard = SummaryWriter(os.path.join(run_dir, "tensorboard"),
                                              purge_step=purge)  # fmt: skip

    def evaluation(self, row: dict, firing_rates: dict[str, float]) -> None:
        """One evaluation: a metrics.csv row, and its numbers and firing rates as scalars."""
        self.metrics.write(row)
        if self._tensorboard is None:
            return
        step = row["step"]
        for column, tag in TENSORBOARD_TAGS.items():
            value = row.get(column)
            if isinstance(value, int | float):
                self._tensorboard.add_scalar(tag, value, step)
        for layer, rate in firing_rates.items():
            self._tensorboard.add_scalar(f"spikes/firing_rate_{layer}", rate, step)
        self._tensorboard.flush()

    def summary(self, summary: dict) -> None:
        with open(os.path.join(self.run_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)

    def close(self) -> None:
        self.metrics.close()
        self.emissions.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A finished run's records, read back (``read_run``)."""

    run_dir: str
    config: dict
    summary: dict
    metrics: list[dict]  # metrics.csv rows, numbers as floats (None where empty)


def read_run(run_dir: str) -> RunRecord:
    """Reads ``run_dir``'s config.json, summary.json and metrics.csv.

    Raises:
      ConfigError: the directory is not a run, or the run has not finished (no summary.json).
    """
    paths = {name: os.path.join(run_dir, name)
             for name in ("config.json", "summary.json", "metrics.csv")}  # fmt: skip
    if not os.path.isfile(paths["config.json"]):
        raise ConfigError(f"{run_dir} is not a run directory (no config.json)")
    if not os.path.isfile(paths["summary.json"]):
        raise ConfigError(
            f"{run_dir} has no summary.json: the run has not finished; finish it with "
            f"spikerl-jax train --resume {run_dir}"
        )
    try:
        with open(paths["config.json"]) as f:
            config = json.load(f)
        with open(paths["summary.json"]) as f:
            summary = json.load(f)
        with open(paths["metrics.csv"], newline="") as f:
            metrics = [{k: float(v) if v not in ("", None) else None for k, v in row.items()}
                       for row in csv.DictReader(f)]  # fmt: skip
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the run {run_dir}: {e}") from None
    return RunRecord(run_dir, config, summary, metrics)

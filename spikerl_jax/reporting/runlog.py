"""A run directory's records: config.json, metrics.csv, emissions.csv, TensorBoard, summary.json.

On resume, each CSV keeps its rows up to the checkpoint's step; rows written after that
checkpoint (by the interrupted process) are dropped, as the resumed run writes them again.
TensorBoard events after the checkpoint are purged the same way.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import os
import warnings
from collections.abc import Sequence

from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.reporting.energy import EMISSIONS_COLUMNS
from spikerl_jax.schema import write_json

# metrics.csv's and train.csv's columns around the update's metrics (``UPDATE``: the names
# the algorithm's update returns, ``rl.algorithm.Algorithm.metrics``).
UPDATE = "update metrics"
METRICS_COLUMNS = (
    "step",
    "eval_return",
    "eval_return_std",
    "eval_length",
    "train_return",
    "wall_s",
    "env_steps_per_s",
    "updates_per_s",
    UPDATE,
    "synops_per_inference",
)
LOG_COLUMNS = (
    "step",
    "wall_s",
    "episodes",
    "train_return",
    "train_length",
    UPDATE,
    "env_steps_per_s",
    "updates_per_s",
)
# TensorBoard groups scalars by the tag's prefix: evaluations (metrics.csv) give eval/ and
# spikes/, train.csv's rows (every --log-every steps) the rest.
EVAL_TAGS = {
    "eval_return": "eval/return",
    "eval_return_std": "eval/return_std",
    "eval_length": "eval/length",
    "synops_per_inference": "spikes/synops_per_inference",
}
LOG_TAGS = {
    "train_return": "train/episode_return",
    "train_length": "train/episode_length",
    "episodes": "train/episodes",
    "env_steps_per_s": "speed/env_steps_per_s",
    "updates_per_s": "speed/updates_per_s",
}


def with_metrics(columns: Sequence[str], metrics: Sequence[str]) -> tuple[str, ...]:
    """``columns`` with the update's ``metrics`` in the place of ``UPDATE``."""
    return tuple(c for column in columns for c in (metrics if column == UPDATE else (column,)))


def metric_tag(name: str) -> str:
    """The TensorBoard tag of an update metric: ``critic_loss`` -> ``loss/critic``,
    ``actor_grad_norm`` -> ``grad_norm/actor``, any other (``q``) -> ``loss/q``."""
    for suffix, group in (("_grad_norm", "grad_norm"), ("_loss", "loss")):
        if name.endswith(suffix):
            return f"{group}/{name.removesuffix(suffix)}"
    return f"loss/{name}"


class CsvLog:
    """A CSV file written one flushed row at a time (a crash keeps every finished row).

    Args:
      path: the file.
      columns: its header.
      resume_step: keep the existing file's rows with ``step <= resume_step``; None: a new file.
    """

    def __init__(self, path: str, columns: Sequence[str], resume_step: int | None = None):
        kept = kept_rows(path, resume_step) if resume_step is not None else []
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


def kept_rows(path: str, resume_step: int) -> list[dict]:
    """The rows of a run's CSV up to ``resume_step``; rows that do not parse (cut mid-line,
    a column missing or extra, a number that is not one: a damaged or hand-edited file) are
    dropped with one warning, as rows after the step are."""
    if not os.path.exists(path):
        return []
    kept, damaged = [], 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row_problem(row) is not None:
                damaged += 1
            elif int(float(row["step"])) <= resume_step:
                kept.append(row)
    if damaged:
        warnings.warn(f"{path}: dropped {damaged} row(s) that do not parse", stacklevel=2)
    return kept


TEXT_COLUMNS = {"phase"}  # emissions.csv's phase name; every other column is a number


def row_problem(row: dict) -> str | None:
    """Why a CSV row read back is damaged, or None."""
    if None in row or None in row.values():
        return "a column is missing or extra"
    for column, value in row.items():
        if column in TEXT_COLUMNS or value == "":
            continue
        try:
            float(value)
        except ValueError:
            return f"{column} is not a number: {value!r}"
    return None if row.get("step", "") != "" else "no step"


def has_records(run_dir: str) -> bool:
    """Whether ``run_dir`` holds a run's results: an evaluation row or a checkpoint (a run
    that failed before either, e.g. on a bad option, leaves a directory that may be reused)."""
    checkpoints = os.path.join(run_dir, "checkpoints")
    if os.path.isdir(checkpoints) and any(p.isdigit() for p in os.listdir(checkpoints)):
        return True
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.exists(path):
        return False
    with open(path, newline="") as f:
        return any(True for _ in csv.DictReader(f))


class RunLock:
    """An exclusive lock on a run directory (``RUN_DIR/.lock``, ``fcntl.flock``): one process
    trains a run at a time. The kernel releases it when the process dies, so a lock left by
    a killed process never blocks a resume.

    Raises:
      ConfigError: another live process holds the run (its pid is named).
    """

    def __init__(self, run_dir: str):
        try:
            os.makedirs(run_dir, exist_ok=True)
            self._file = open(os.path.join(run_dir, ".lock"), "a+")  # noqa: SIM115
        except OSError as e:
            raise ConfigError(
                f"cannot write the run directory --out {run_dir}: {e.strerror}"
            ) from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip() or "unknown"
            self._file.close()
            raise ConfigError(
                f"{run_dir} is in use by another spikerl-jax process (pid {holder}); wait for "
                "it to finish or stop it (Ctrl-C or kill: it saves a checkpoint), then resume"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            self._file.close()  # closing releases the flock


class RunRecorder:
    """Everything a training run writes besides checkpoints.

    Args:
      run_dir: the run directory (created).
      cfg: written to ``config.json``.
      metrics: the names of the update's metrics (columns, and TensorBoard scalars).
      resume_step: the checkpoint step a resumed run continues from; None for a new run (then
        a directory already holding a run is refused).
      tensorboard: also write TensorBoard event files to ``run_dir/tensorboard``.
    """

    def __init__(
        self,
        run_dir: str,
        cfg: TrainConfig,
        metrics: Sequence[str],
        resume_step: int | None,
        tensorboard: bool,
    ):
        self.run_dir = run_dir
        self.log_tags = {**LOG_TAGS, **{name: metric_tag(name) for name in metrics}}
        if resume_step is None and has_records(run_dir):
            raise ConfigError(
                f"{run_dir} already holds a run; choose another --out, or continue it with "
                f"--resume {run_dir}"
            )
        try:
            os.makedirs(run_dir, exist_ok=True)
            write_json(os.path.join(run_dir, "config.json"), dataclasses.asdict(cfg))
            self.metrics = CsvLog(
                os.path.join(run_dir, "metrics.csv"),
                with_metrics(METRICS_COLUMNS, metrics),
                resume_step,
            )
            self.emissions = CsvLog(
                os.path.join(run_dir, "emissions.csv"), EMISSIONS_COLUMNS, resume_step
            )
            self.train = CsvLog(
                os.path.join(run_dir, "train.csv"), with_metrics(LOG_COLUMNS, metrics), resume_step
            )
        except OSError as e:
            raise ConfigError(
                f"cannot write the run directory --out {run_dir}: {e.strerror}"
            ) from e
        self._tensorboard = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            self._tensorboard = SummaryWriter(
                os.path.join(run_dir, "tensorboard"), purge_step=purge
            )

    def evaluation(self, row: dict, firing_rates: dict[str, float]) -> None:
        """One evaluation: a metrics.csv row, and its numbers and firing rates as scalars."""
        self.metrics.write(row)
        if self._tensorboard is None:
            return
        self._scalars(row, EVAL_TAGS)
        for layer, rate in firing_rates.items():
            self._tensorboard.add_scalar(f"spikes/firing_rate_{layer}", rate, row["step"])
        self._tensorboard.flush()

    def log(self, row: dict) -> None:
        """One train.csv row, and its numbers as TensorBoard scalars."""
        self.train.write(row)
        if self._tensorboard is not None:
            self._scalars(row, self.log_tags)
            self._tensorboard.flush()

    def _scalars(self, row: dict, tags: dict) -> None:
        for column, tag in tags.items():
            value = row.get(column)
            if isinstance(value, int | float):
                self._tensorboard.add_scalar(tag, value, row["step"])

    def summary(self, summary: dict) -> None:
        write_json(os.path.join(self.run_dir, "summary.json"), summary)

    def close(self) -> None:
        self.metrics.close()
        self.emissions.close()
        self.train.close()
        if self._tensorboard is not None:
            self._tensorboard.close()

"""A run directory read back: its config, summary and metrics, each checked, so that a
damaged or hand-edited file is one line naming the problem, not a traceback later."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import warnings

from spikerl_jax.arguments import expect_path
from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.reporting.population import population_of
from spikerl_jax.reporting.runlog import row_problem
from spikerl_jax.sweep_spec import SPEC_FILE


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A finished run's records, read back (``read_run``)."""

    run_dir: str
    config: dict
    summary: dict
    metrics: list[dict]  # metrics.csv rows, numbers as floats (None where empty)


def not_a_run(run_dir: str) -> ConfigError:
    """The error for a directory without a config.json: for a sweep's root, it names the
    member directories that the run commands take."""
    if os.path.isfile(os.path.join(run_dir, SPEC_FILE)):
        members = sorted(
            name
            for name in os.listdir(run_dir)
            if os.path.isfile(os.path.join(run_dir, name, "config.json"))
        )
        listed = ", ".join(os.path.join(run_dir, m) for m in members[:3])
        more = f" and {len(members) - 3} more" if len(members) > 3 else ""
        which = f": {listed}{more}" if members else " (none has started yet)"
        return ConfigError(f"{run_dir} is a sweep's root; give one of its members{which}")
    if not os.path.exists(run_dir):
        return ConfigError(f"{run_dir} does not exist")
    return ConfigError(f"{run_dir} is not a run directory (no config.json)")


def read_run(run_dir: str) -> RunRecord:
    """Reads ``run_dir``'s config.json, summary.json and metrics.csv.

    Raises:
      ConfigError: the directory is not a run, or the run has not finished (no summary.json).
    """
    expect_path("read_run(run_dir)", run_dir)
    paths = {
        name: os.path.join(run_dir, name) for name in ("config.json", "summary.json", "metrics.csv")
    }
    if not os.path.isfile(paths["config.json"]):
        raise not_a_run(run_dir)
    if not os.path.isfile(paths["summary.json"]):
        root, _ = population_of(run_dir)
        how = f"sweep --resume {root}" if root != run_dir else f"train --resume {run_dir}"
        raise ConfigError(
            f"{run_dir} has no summary.json: the run has not finished; finish "
            f"it with spikerl-jax {how}"
        )
    try:
        with open(paths["config.json"]) as f:
            config = json.load(f)
        with open(paths["summary.json"]) as f:
            summary = json.load(f)
        with open(paths["metrics.csv"], newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the run {run_dir}: {e}") from None
    problem = summary_problem(summary)
    if problem:
        raise ConfigError(f"cannot read the run {run_dir}: {problem}; rerun or resume it")
    damaged = [i + 2 for i, r in enumerate(rows) if row_problem(r)]
    if damaged:  # a torn or edited row: the others still hold the curve
        warnings.warn(
            f"{paths['metrics.csv']}: dropped {len(damaged)} row(s) that do not parse "
            f"(line {', '.join(map(str, damaged))})",
            stacklevel=2,
        )
    metrics = [
        {k: float(v) if v != "" else None for k, v in r.items()}
        for i, r in enumerate(rows)
        if i + 2 not in damaged
    ]
    return RunRecord(run_dir, config, summary, metrics)


SUMMARY_NUMBERS = ("total_steps", "final_eval_return", "best_eval_return", "wall_s")


def summary_problem(summary) -> str | None:
    """Why a summary.json read back cannot be used, or None."""
    if not isinstance(summary, dict):
        return f"summary.json is not an object but {type(summary).__name__}"
    for key in SUMMARY_NUMBERS:
        if not isinstance(summary.get(key), int | float) or isinstance(summary.get(key), bool):
            return f"summary.json's {key} is not a number ({summary.get(key)!r})"
    if not isinstance(summary.get("env"), str):
        return "summary.json has no env"
    return None


def load_run_config(run_dir: str) -> TrainConfig:
    """The ``TrainConfig`` a run was started with (its ``config.json``), validated.

    Raises:
      ConfigError: no run there, or a config.json that is not valid (one entry per problem).
    """
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise not_a_run(run_dir)
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e})") from None
    try:
        return TrainConfig.from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path} is not a valid run config: {e}") from None

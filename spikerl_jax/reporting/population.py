"""A sweep member's run directory names its population: the sweep root whose checkpoints
hold its state (``population.json``); a single run is its own population."""

from __future__ import annotations

import json
import os

from spikerl_jax.config import ConfigError
from spikerl_jax.schema import write_json

POPULATION_FILE = "population.json"  # in a sweep member's run directory


def population_of(run_dir: str) -> tuple[str, int]:
    """``(root, member)``: where ``run_dir``'s checkpoints are (a sweep's root) and which
    member of that population it is."""
    pointer = os.path.join(run_dir, POPULATION_FILE)
    if not os.path.isfile(pointer):
        return run_dir, 0
    try:
        with open(pointer) as f:
            saved = json.load(f)
        return os.path.normpath(os.path.join(run_dir, saved["root"])), int(saved["member"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{pointer} is damaged ({e}): it names the sweep that holds this run's checkpoints"
        ) from None


def write_population_file(run_dir: str, root: str, member: int) -> None:
    """Names the sweep ``root`` (relative to ``run_dir``) in a member's run directory."""
    write_json(
        os.path.join(run_dir, POPULATION_FILE),
        {"root": os.path.relpath(root, run_dir), "member": member},
        None,
    )

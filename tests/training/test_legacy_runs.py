"""Run directories and sweep roots written by earlier versions still load, evaluate, export
and resume.

``tests/fixtures/run_f02ead7`` and ``sweep_f02ead7`` were written by commit f02ead7 (before
the algorithm seam: its checkpoints keep the learner under ``td3``, its config.json has no
``algo``), by ``TINY`` with ``--checkpoint-buffer --no-energy --no-tensorboard`` (the sweep
with ``--seeds 0 1``); the step-300 checkpoints, the lock files and the sweep's plot were
deleted to keep them small.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from spikerl_jax import load_policy
from spikerl_jax.cli import main
from spikerl_jax.reporting.runs import load_run_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def legacy(tmp_path):
    """A writable copy of the fixtures."""
    for name in ("run_f02ead7", "sweep_f02ead7"):
        shutil.copytree(FIXTURES / name, tmp_path / name)
    return tmp_path


def steps(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def test_an_old_run_loads_as_td3_evaluates_and_exports(legacy):
    run = legacy / "run_f02ead7"
    assert load_run_config(str(run)).algo == "td3"
    best, latest = load_policy(str(run)), load_policy(str(run), "latest")
    assert latest.step == 600
    obs = np.zeros((3, best.spec.obs_dim), np.float32)
    assert best(obs).shape == latest(obs).shape == (3, best.spec.action_dim)
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    pytest.importorskip("nir")
    assert main(["export-nir", str(run), str(legacy / "actor.nir")]) == 0
    assert (legacy / "actor.nir").exists()


def test_an_old_run_resumes(legacy):
    run = legacy / "run_f02ead7"
    assert main(["train", "--resume", str(run), "--total-steps", "900"]) == 0
    assert steps(run) == [300, 600, 900]
    assert json.loads((run / "summary.json").read_text())["total_steps"] == 900


def test_an_old_sweep_resumes_and_its_members_load(legacy):
    root = legacy / "sweep_f02ead7"
    assert main(["sweep", "--resume", str(root), "--total-steps", "900"]) == 0
    for seed in (0, 1):
        member = root / f"base-s{seed}"
        assert load_run_config(str(member)).algo == "td3"
        assert steps(member) == [300, 600, 900]
        assert load_policy(str(member), "latest").step == 900

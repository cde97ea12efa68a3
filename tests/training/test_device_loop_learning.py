"""The MJX backend learns InvertedPendulum from the CLI (``--backend mjx``). A file of its
own, so that the suite's two workers run it beside the other MJX tests."""

import json

import pytest
from helpers import LEARNING_NETS

from spikerl_jax.cli import main


@pytest.mark.slow
def test_mjx_training_solves_inverted_pendulum(tmp_path):
    """The CLI's on-device backend, the preset's 20k steps: the best evaluation reaches
    the maximum return of 1000 (TD3 oscillates on this task: BENCHMARKS.md)."""
    out = tmp_path / "run"
    args = ["train", "--env", "InvertedPendulum-v4", "--backend", "mjx", "--no-progress",
            "--no-energy", "--devices", "1", "--out", str(out), *LEARNING_NETS]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 20_000
    assert summary["updates"] == (20_000 - 1_000) // 50 * 50 + 50  # rounds ending at 1k..20k
    assert summary["best_eval_return"] >= 950

"""The MJX backend learns InvertedPendulum from the CLI (``--backend mjx``). A file of its
own, so that the suite's two workers run it beside the other MJX tests."""

import json

import pytest
from helpers import LEARNING_NETS

from spikerl_jax.cli import main


@pytest.mark.slow
def test_mjx_training_solves_inverted_pendulum(tmp_path):
    """The CLI's on-device backend, 10 envs stepping together for 30k steps (a tenth of the
    vector steps of one env's 20k; with 10 envs seed 0 evaluates 934 at 20k, 1000 at 25k and
    30k): the best evaluation reaches the maximum return of 1000 (TD3 oscillates on this
    task: BENCHMARKS.md)."""
    out = tmp_path / "run"
    args = ["train", "--env", "InvertedPendulum-v4", "--backend", "mjx", "--num-envs", "10",
            "--total-steps", "30000", "--no-progress", "--no-energy", "--devices", "1",
            "--out", str(out), *LEARNING_NETS]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 30_000
    assert summary["updates"] == (30_000 - 1_000) // 50 * 50 + 50  # rounds ending at 1k..30k
    assert summary["best_eval_return"] >= 950

"""The MJX backend learns InvertedPendulum from the CLI (``--backend mjx``). A file of its
own, so that the suite's two workers run it beside the other MJX tests."""

import json

import pytest
from helpers import LEARNING_NETS, loop_physics

from spikerl_jax.cli import main
from spikerl_jax.training import device_loop


@pytest.mark.slow
def test_mjx_training_solves_inverted_pendulum(tmp_path, monkeypatch):
    """The CLI's on-device backend within the preset's 20k steps: an evaluation reaches 950,
    where ``--target-return`` stops the run. The physics is the loop tests' Euler without
    constraints (``helpers.loop_physics``; tests/envs/test_mjx_tasks.py checks the real
    physics against Gymnasium): this checks that the loop learns, and takes 72 s cold on
    the 2-core Xeon (1000 at 10k steps) against 147-211 s with RK4 and joint limits."""
    monkeypatch.setattr(device_loop, "make", loop_physics(device_loop.make))
    out = tmp_path / "run"
    args = [
        "train",
        "--env",
        "InvertedPendulum-v4",
        "--backend",
        "mjx",
        "--no-progress",
        "--no-energy",
        "--devices",
        "1",
        "--out",
        str(out),
        "--target-return",
        "950",
        *LEARNING_NETS,
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    steps = summary["total_steps"]
    assert summary["best_eval_return"] >= 950, summary
    assert summary["target_reached_at"] == steps <= 20_000
    assert summary["updates"] == (steps - 1_000) // 50 * 50 + 50  # rounds ending at 1k..steps

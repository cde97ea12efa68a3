"""PopSAN-TD3 learns: InvertedPendulum-v4 solved from its preset, seed fixed.

Budget: the preset's 20k env steps (1k random, updates from 1k, 50 per 50 steps), the
command README shows: ``spikerl-jax train --env InvertedPendulum-v4 --total-steps 20000``.
"""

import json

from spikerl_jax.cli import main


def test_popsan_td3_solves_inverted_pendulum(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--env", "InvertedPendulum-v4", "--total-steps", "20000", "--seed", "0"]
    assert main([*args, "--out", str(out), "--no-progress", "--devices", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # Solved: mean deterministic return over 10 episodes >= 950 (the maximum is 1000).
    assert summary["final_eval_return"] >= 950, summary

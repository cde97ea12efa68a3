"""The training loop: every compiled program is traced once per run, and PopSAN-TD3 learns
(InvertedPendulum-v4 solved from its preset by one of two fixed seeds).

Learning budget: the preset's 20k env steps (1k random, updates from 1k, 50 per 50 steps),
the command README shows: ``spikerl-jax train --env InvertedPendulum-v4 --total-steps 20000``.
"""

import pytest
from helpers import TINY, solve_inverted_pendulum

from spikerl_jax.batching import TRACES
from spikerl_jax.cli import main


def test_every_program_is_traced_once_per_run(tmp_path):
    """Rounds with and without updates, random and exploring steps, two evaluations, and a
    resume: each compiled program is traced (so compiled) once per process."""
    TRACES.clear()
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert set(TRACES) == {"init", "ingest", "learn", "explore", "act_with_spikes"}
    assert all(count == 1 for count in TRACES.values()), TRACES
    TRACES.clear()
    assert main(["train", "--resume", str(out), "--total-steps", "900"]) == 0
    assert all(count == 1 for count in TRACES.values()), TRACES


@pytest.mark.slow
def test_popsan_td3_solves_inverted_pendulum(tmp_path):
    # In the suite's setting seed 3 solves it on the avx512_bf16 Intel Xeon (at 20k steps),
    # seed 0 on the older Xeon (15k) and on the AMD EPYC of BENCHMARKS.md, where seeds 0 and 2
    # do not on the avx512_bf16 Xeon: three chances, the first that solves it ends the test.
    _, summary = solve_inverted_pendulum(tmp_path, ["--total-steps", "20000"], seeds=(3, 0, 2))
    # Solved: mean deterministic return over 10 episodes >= 950 (the maximum is 1000), where
    # the run stopped.
    assert summary["final_eval_return"] >= 950, summary
    assert summary["target_reached_at"] == summary["total_steps"] <= 20_000


@pytest.mark.slow
def test_popsan_ddpg_solves_inverted_pendulum(tmp_path):
    # PopSAN's DDPG reached 950 at 15k, 20k and 25k steps on seeds 0, 1 and 2 (2-core Intel
    # Xeon, 64x64 networks): three chances within 30k, the first that solves it ends the test.
    options = ["--algo", "ddpg", "--total-steps", "30000"]
    _, summary = solve_inverted_pendulum(tmp_path, options, seeds=(0, 1, 2))
    assert summary["final_eval_return"] >= 950, summary
    assert summary["target_reached_at"] == summary["total_steps"] <= 30_000

"""Checkpoints: exact resume, reproducibility, export, and every failure path's message."""

import csv
import json
import os
import shutil
import signal
import time

import jax
import numpy as np
import pytest
from helpers import (
    TINY,
    USER_TINY,
    assert_trees_equal,
    comparable,
    latest_state,
    rows,
    user_cli,
    user_cli_background,
    validations,
    wait_for_checkpoint,
)

from spikerl_jax.cli import main
from spikerl_jax.envs.gymnasium_backend import VectorCollector
from spikerl_jax.envs.registry import env_spec
from spikerl_jax.export.policy import load_policy
from spikerl_jax.reporting.runs import load_run_config
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.normalizer import Normalizer
from spikerl_jax.rl.policy import make_policies
from spikerl_jax.training import checkpoint


def checkpointed(tiny: list[str]) -> list[str]:
    """``tiny`` without its length, with a larger buffer."""
    args = [*tiny[: tiny.index("--total-steps")], *tiny[tiny.index("--total-steps") + 2 :]]
    args[args.index("--replay-size") + 1] = "2000"
    return args


CKPT = checkpointed(TINY)  # in-process runs: on one of conftest's 8 devices
USER_CKPT = checkpointed(USER_TINY)  # the signals' runs, as a user starts them


def train(out, *args):
    return main(["train", *CKPT, "--out", str(out), *args])


DEVICE_ITEMS = ("learner", "buffer", "best")


def latest_learner(run_dir):
    items, loop, step = latest_state(run_dir)
    return items["learner"], (items, loop), step


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """900 steps in one go, buffer checkpointed (the reference for resumes)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    with validations() as checked:
        assert train(out, "--total-steps", "900", "--checkpoint-buffer") == 0
    assert len(checked) == 1  # validated once on the command line's path
    return out


def test_same_seed_same_results(straight_run, tmp_path):
    out = tmp_path / "again"
    assert train(out, "--total-steps", "900", "--checkpoint-buffer") == 0
    assert rows(out) == rows(straight_run)
    (items, _, _), (ref, _, _) = latest_state(out), latest_state(straight_run)
    assert_trees_equal([items[k] for k in DEVICE_ITEMS], [ref[k] for k in DEVICE_ITEMS])


def test_resume_with_buffer_is_exact(straight_run, tmp_path):
    out = tmp_path / "resumed"
    assert train(out, "--total-steps", "300", "--checkpoint-buffer") == 0
    assert main(["train", "--resume", str(out), "--total-steps", "900"]) == 0
    assert rows(out) == rows(straight_run)  # same metrics, rows of the first part kept
    (items, loop, step), (ref, ref_loop, ref_step) = latest_state(out), latest_state(straight_run)
    assert step == ref_step == 900
    assert_trees_equal([items[k] for k in DEVICE_ITEMS], [ref[k] for k in DEVICE_ITEMS])
    # Counters, records, RNGs and env states too.
    assert comparable(items, loop) == comparable(ref, ref_loop)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == 300 and summary["total_steps"] == 900
    # The energy of the first process (up to its checkpoint) carries over: emissions.csv
    # keeps its stretches, and they and the new ones add up to the summary's total.
    with open(out / "emissions.csv") as f:
        stretches = list(csv.DictReader(f))
    assert {int(r["step"]) for r in stretches} == {300, 600, 900}
    assert sum(float(r["energy_kwh"]) for r in stretches) == pytest.approx(
        summary["energy"]["total"]["energy_kwh"], rel=1e-9
    )


@pytest.mark.parametrize("algo", ["ddpg", "sac"])
def test_every_algorithm_resumes_exactly(algo, tmp_path):
    """A run of another algorithm cut at its first checkpoint and resumed equals its straight
    run: records, learner (its own state: SAC's log-std network and alpha) and loop."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ("--algo", algo, "--checkpoint-buffer", "--no-energy", "--no-tensorboard")
    assert train(straight, "--total-steps", "600", *common) == 0
    assert train(resumed, "--total-steps", "300", *common) == 0
    assert main(["train", "--resume", str(resumed), "--total-steps", "600"]) == 0
    assert rows(resumed) == rows(straight)
    (items, loop, step), (ref, ref_loop, _) = latest_state(resumed), latest_state(straight)
    assert step == 600
    assert_trees_equal([items[k] for k in DEVICE_ITEMS], [ref[k] for k in DEVICE_ITEMS])
    assert comparable(items, loop) == comparable(ref, ref_loop)


def test_resume_without_buffer_refills_before_updating(straight_run, tmp_path):
    """Without the buffer the resumed run restarts it empty: updates pause until it holds
    update_after (100) transitions again, so the round ending at step 350 makes no updates and
    the params differ from the uninterrupted run's; evaluation, counters and env states carry
    on."""
    out = tmp_path / "resumed"
    assert train(out, "--total-steps", "300") == 0
    assert main(["train", "--resume", str(out), "--total-steps", "900"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    reference = json.loads((straight_run / "summary.json").read_text())
    assert summary["updates"] == reference["updates"] - 50
    assert [r["step"] for r in rows(out)] == ["300", "600", "900"]
    learner, _, _ = latest_learner(out)
    ref = latest_learner(straight_run)[0]
    kernel = learner["agent"]["actor_params"]["params"]["snn"]["kernel_0"]
    assert not np.array_equal(kernel, ref["agent"]["actor_params"]["params"]["snn"]["kernel_0"])


def test_resume_rejects_changed_architecture_and_env(straight_run, capsys):
    assert main(["train", "--resume", str(straight_run), "--hidden-sizes", "32", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        f"spikerl-jax: error: cannot resume {straight_run} with a different setting: "
        "--hidden-sizes: the run has (16, 16), this command gives (32, 32)"
    ]
    assert main(["train", "--resume", str(straight_run), "--env", "Hopper-v4"]) == 2
    assert "--env: the run has 'InvertedPendulum-v4'" in capsys.readouterr().err


def test_missing_and_corrupted_checkpoints(straight_run, tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert f"{tmp_path / 'nothing'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", str(tmp_path / "empty")]) == 2
    assert "is not a run directory (no config.json)" in capsys.readouterr().err
    # A run whose checkpoint files were damaged.
    broken = tmp_path / "broken"
    assert train(broken, "--total-steps", "300") == 0
    step_dir = broken / "checkpoints" / "300" / "learner"
    for root, _, files in os.walk(step_dir):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")
    capsys.readouterr()
    assert main(["train", "--resume", str(broken), "--total-steps", "600"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot restore" in err[0] and "300" in err[0], err
    # The CLI process as a user runs it: Orbax's threads and asyncio's loop, shut down at
    # exit, add nothing to that one line (no "Event loop is closed", no ERROR:absl).
    code, _, stderr = user_cli("train", "--resume", str(broken), "--total-steps", "600")
    assert code == 2
    assert stderr.strip().splitlines() == err, stderr


def test_a_checkpoint_of_another_format_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    """Checkpoints record their format; one this code cannot read is refused with the
    version that wrote it, and so is the per-member layout of format 1."""
    run = tmp_path / "run"
    assert train(run, "--total-steps", "300") == 0
    monkeypatch.setattr(checkpoint, "FORMAT", 4)  # as a later version would read it
    monkeypatch.setattr(checkpoint, "AGENT_KEYS", {4: "agent"})
    assert main(["train", "--resume", str(run), "--total-steps", "600"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has format 3 (written by spikerl_jax" in err[0], err
    assert "reads format 4" in err[0] and str(run) in err[0]
    legacy = tmp_path / "legacy"  # format 1: checkpoints/latest/STEP and best/STEP
    shutil.copytree(run, legacy)
    (legacy / "checkpoints" / "300").rename(legacy / "checkpoints" / "latest")
    assert main(["eval", str(legacy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "format 1" in err[0] and "spikerl_jax 0.1" in err[0], err


def test_exported_policy_reproduces_training_actor(straight_run):
    policy = load_policy(str(straight_run), "latest")
    learner, _, _ = latest_learner(straight_run)
    learner = jax.tree.map(lambda x: x[0], learner)  # the member axis of one
    learner["normalizer"] = Normalizer(**learner["normalizer"])
    cfg = load_run_config(str(straight_run))
    spec = env_spec(cfg.env)
    actor = make_networks(spec.action_dim, spec.action_limit, cfg.actor).actor
    act = jax.jit(make_policies(actor, cfg.obs_clip).act)  # what evaluation runs
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    expected = act(learner["agent"]["actor_params"], learner["normalizer"], obs, None)
    np.testing.assert_array_equal(policy(obs), np.asarray(expected))
    np.testing.assert_array_equal(policy(obs[0]), np.asarray(expected)[0])
    best = load_policy(str(straight_run), "best")
    assert best.step in (300, 600, 900)


def test_eval_command_prints_returns(straight_run, capsys):
    assert (
        main(["eval", str(straight_run), "--episodes", "3", "--checkpoint", "latest", "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 3 and result["step"] == 900 and result["return_mean"] > 0


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    original_step = VectorCollector.step
    calls = {"n": 0}

    def poisoned_step(self, action):
        calls["n"] += 1
        original_step(self, action)
        if calls["n"] > 450:  # a NaN reward reaches the buffer after step 450
            self._stage["reward"][0, self._size - 1] = np.nan

    monkeypatch.setattr(VectorCollector, "step", poisoned_step)
    out = tmp_path / "run"
    assert train(out, "--total-steps", "900") == 2
    err = capsys.readouterr().err
    assert "non-finite losses at step 500" in err and "last good checkpoint (step 300)" in err
    _, _, step = latest_learner(out)
    assert step == 300


def run_cli_background(*args):
    return user_cli_background("train", *USER_CKPT, *args)


def test_sigint_saves_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = run_cli_background(
        "--out",
        str(out),
        "--total-steps",
        "200000",
        "--eval-every",
        "1000",
        "--checkpoint-every",
        "1000",
    )
    wait_for_checkpoint(out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130  # 128 + SIGINT
    assert "interrupted by SIGINT at step" in err and "Traceback" not in err
    step = int(err.split("at step ")[1].split(";")[0])
    _, _, saved = latest_learner(out)
    assert saved == step  # the state at the interruption was saved


@pytest.mark.slow
def test_sigkill_mid_save_loses_at_most_one_interval(tmp_path):
    out = tmp_path / "run"
    latest = out / "checkpoints"
    # Checkpoints every 100 steps with a 300k-transition buffer (13 MB): each save takes long
    # enough for the kill below to land inside it.
    proc = run_cli_background(
        "--out",
        str(out),
        "--total-steps",
        "200000",
        "--eval-every",
        "100",
        "--checkpoint-every",
        "100",
        "--checkpoint-buffer",
        "--eval-episodes",
        "1",
        "--replay-size",
        "300000",
    )
    wait_for_checkpoint(out)
    deadline, in_flight = time.time() + 120, None
    while in_flight is None and time.time() < deadline:
        in_flight = next((p.name for p in latest.iterdir() if "tmp" in p.name), None)
    proc.send_signal(signal.SIGKILL)  # while Orbax writes `in_flight`
    proc.wait(timeout=60)
    assert in_flight is not None, "no save was caught in flight"
    killed_step = int(in_flight.split(".")[0])
    code, _, err = user_cli("train", "--resume", str(out), "--total-steps", str(killed_step + 200))
    assert code == 0, err[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    # The half-written checkpoint is ignored; the one before it (one interval back) is used.
    assert killed_step - 100 <= summary["resumed_from"] < killed_step
    assert summary["total_steps"] == killed_step + 200

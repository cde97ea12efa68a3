"""Sweeps and run records that survive any kill and never serve a wrong result: a population
is one checkpoint per step (state, best policy and records committed together), a sweep
killed anywhere resumes to the straight sweep's results, and every damaged input is one line.
"""

import json
import os
import shutil
import signal

import jax
import numpy as np
import pytest
from helpers import (
    USER_TINY,
    assert_trees_equal,
    in_flight,
    latest_state,
    one_line,
    rows,
    steps_saved,
    user_cli,
    user_cli_background,
    wait_until,
)

import spikerl_jax as sj
from spikerl_jax.cli import main
from spikerl_jax.config import ConfigError, PopSANConfig, TrainConfig
from spikerl_jax.training.checkpoint import read_checkpoint

# USER_TINY with evaluations and checkpoints every 100 steps, the buffer saved (exact
# resumes): the runs a user starts (``user_cli``: no --devices, no forced device count).
KILLABLE = [
    *USER_TINY[: USER_TINY.index("--eval-every")],
    *USER_TINY[USER_TINY.index("--eval-every") + 2 :],
]
KILLABLE += [
    "--eval-every",
    "100",
    "--no-energy",
    "--checkpoint-buffer",
    "--keep-checkpoints",
    "10",
]
# The in-process runs' (checks of what a resume refuses): on one of conftest's 8 devices.
IN_PROCESS = [*KILLABLE, "--devices", "1"]
SWEEP = ["--seeds", "0", "1"]


def cli(*args, cwd=None):
    return user_cli_background(*args, cwd=cwd)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The reference: a 2-member sweep, uninterrupted (as the killed one: on the user's path,
    whose CPU split gives each member a core)."""
    root = tmp_path_factory.mktemp("straight") / "root"
    code, _, err = user_cli("sweep", *KILLABLE, *SWEEP, "--out", str(root))
    assert code == 0, err[-3000:]
    return root


@pytest.mark.slow
def test_a_sweep_killed_anywhere_resumes_to_the_straight_sweep(straight, tmp_path):
    """kill -9 before the first checkpoint, during a save, right after one and between
    evaluations; each time ``sweep --resume`` goes on, and the end equals the straight
    sweep: every member's metrics and the population's state. The resume after the first
    kill (before any checkpoint) says so and starts over."""
    root = tmp_path / "root"
    moments = [
        lambda: (root / "sweep_spec.json").exists(),  # started, nothing saved yet
        lambda: in_flight(root),  # while Orbax writes a checkpoint
        lambda: len(steps_saved(root)) >= 3,  # right after a checkpoint
        lambda: (
            (root / "base-s1" / "metrics.csv").exists() and len(rows(root / "base-s1")) >= 5
        ),  # between an evaluation and its checkpoint
    ]
    proc, said = cli("sweep", *KILLABLE, *SWEEP, "--out", str(root)), []
    for moment in moments:
        wait_until(lambda m=moment, p=proc: m() or p.poll() is not None)
        proc.send_signal(signal.SIGKILL)
        said.append(proc.communicate(timeout=60)[1])
        proc = cli("sweep", "--resume", str(root))
    _, err = proc.communicate(timeout=600)
    assert "has no checkpoint yet: it starts over" in said[1], said[1][-2000:]
    assert proc.returncode == 0, err[-2000:]
    for member in ("base-s0", "base-s1"):
        assert rows(root / member) == rows(straight / member)
    (items, loop, step), (ref, ref_loop, ref_step) = latest_state(root), latest_state(straight)
    assert step == ref_step == 600
    names = ("learner", "buffer", "best")
    assert_trees_equal([items[k] for k in names], [ref[k] for k in names])
    assert loop.members == ref_loop.members and loop.counters == ref_loop.counters


def test_the_best_policy_is_always_that_of_the_best_recorded_evaluation(tmp_path):
    """In every checkpoint the best policy is the actor of the checkpoint of its best step,
    which is the best evaluation in metrics.csv up to there; also across a kill -9 right
    after a checkpoint is complete, and for what eval and load_policy serve."""
    run = tmp_path / "run"
    proc = cli("train", *KILLABLE, "--total-steps", "600", "--out", str(run))
    wait_until(lambda: len(steps_saved(run)) >= 3 or proc.poll() is not None)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    code, _, err = user_cli("train", "--resume", str(run))
    assert code == 0, err[-3000:]
    metrics = rows(run)
    path = run / "checkpoints"
    for step in steps_saved(run):
        loop = json.loads((path / str(step) / "loop" / "metadata").read_text())
        record = loop["members"][0]
        upto = [float(r["eval_return"]) for r in metrics if int(r["step"]) <= step]
        assert record["best_return"] == max(upto)
        best = read_checkpoint_at(run, step)["best"]["actor_params"]
        then = read_checkpoint_at(run, record["best_step"])["learner"]["agent"]["actor_params"]
        assert_trees_equal(best, then)
    policy = sj.load_policy(str(run))
    best_step = json.loads((run / "summary.json").read_text())["best_step"]
    then = read_checkpoint_at(run, best_step)["learner"]["agent"]["actor_params"]
    assert_trees_equal(policy.actor_params, [x[0] for x in jax.tree.leaves(then)])


def read_checkpoint_at(run, step):
    """A checkpoint of an older step (the newest ones moved aside)."""
    hold = run.parent / f"hold-{step}"
    hold.mkdir()
    newer = [p for p in (run / "checkpoints").iterdir() if p.name.isdigit() and int(p.name) > step]
    for p in newer:
        p.rename(hold / p.name)
    try:
        return read_checkpoint(str(run))[0]
    finally:
        for p in newer:
            (hold / p.name).rename(p)
        hold.rmdir()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["default", "absolute", "relative-unicode-brackets"])
def test_sweep_outputs_anywhere_and_every_evaluation_line_names_its_member(where, tmp_path):
    """As a user starts it (no --devices: the CPU split), with no --out (runs/sweep-ENV-TIME
    in the working directory), an absolute root, and a relative one with unicode and glob
    brackets (tests/test_readme.py runs README's plain relative runs/hopper-sweep)."""
    out = {
        "default": [],
        "absolute": ["--out", str(tmp_path / "abs")],
        "relative-unicode-brackets": ["--out", "résumé-ß/株/a[1]*?"],
    }[where]
    short = [a if a != "--no-progress" else "--progress" for a in USER_TINY]
    code, _, err = user_cli("sweep", *short, *SWEEP, "--no-energy", *out, cwd=tmp_path)
    assert code == 0 and "Traceback" not in err, err[-3000:]
    roots = [p for p in tmp_path.rglob("sweep.json")]
    assert len(roots) == 1
    root = roots[0].parent
    if where == "default":
        assert root.parent == tmp_path / "runs" and root.name.startswith("sweep-InvertedPendulum")
    for member in ("base-s0", "base-s1"):
        assert (root / member / "summary.json").is_file()
        lines = [line for line in err.splitlines() if "eval" in line and "step 300" in line]
        assert any(member in line for line in lines), err
    assert main(["eval", str(root / "base-s1"), "--episodes", "1"]) == 0


def test_a_second_ctrl_c_stops_in_one_line_and_leaves_nothing_half_written(tmp_path):
    run = tmp_path / "run"
    proc = cli("train", *KILLABLE, "--total-steps", "200000", "--out", str(run))
    wait_until(lambda: steps_saved(run) or proc.poll() is not None)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    line = one_line(err)
    assert "SIGINT" in line and f"--resume {run}" in line
    assert not in_flight(run)
    assert latest_state(run)[2] == steps_saved(run)[-1]  # the newest checkpoint restores


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *IN_PROCESS, "--total-steps", "300", "--out", str(out)]) == 0
    return out


def copy(run, tmp_path, name="copy"):
    shutil.copytree(run, tmp_path / name)
    return tmp_path / name


def test_energy_measurement_cannot_change_on_resume(finished, capsys):
    assert main(["train", "--resume", str(finished), "--total-steps", "400", "--energy"]) == 2
    assert "--energy: the run has False" in one_line(capsys.readouterr().err)


def test_a_run_whose_summary_is_gone_gets_it_back_on_resume(finished, tmp_path, capsys):
    run = copy(finished, tmp_path)
    expected = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()
    assert main(["compare", str(run), str(finished)]) == 2
    assert "train --resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_eval_return"] == expected["final_eval_return"]
    assert summary["total_steps"] == 300 and rows(run) == rows(finished)
    assert main(["train", "--resume", str(run)]) == 2  # now there is nothing to do


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(backend="torch"), "--backend: expected 'gymnasium' or 'mjx', got 'torch'"),
        (dict(total_steps=3000.0), "--total-steps: expected int, got 3000.0"),
        (dict(total_steps="3000"), "--total-steps: expected int, got '3000'"),
        (dict(seed=None), "--seed: expected int, got None"),
        (dict(energy_country=None), "--energy-country: expected str, got None"),
        (
            dict(actor=PopSANConfig(encoder_mean_range=(float("nan"),) * 2)),
            "--encoder-mean-range must be two finite numbers",
        ),
    ],
)
def test_one_validator_refuses_from_python_what_config_json_would(changes, message, tmp_path):
    cfg = TrainConfig(out=str(tmp_path / "run"), **changes)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        sj.train(cfg)
    assert not (tmp_path / "run").exists()


def test_damaged_checkpoints_and_records_are_one_line_each(finished, tmp_path, capsys):
    # A checkpoint missing its learner.
    run = copy(finished, tmp_path, "no-learner")
    shutil.rmtree(run / "checkpoints" / "300" / "learner")
    assert main(["train", "--resume", str(run), "--total-steps", "400"]) == 2
    assert "lacks learner" in one_line(capsys.readouterr().err)
    # A checkpoint whose records name another step than its directory.
    run = copy(finished, tmp_path, "edited")
    loop_file = run / "checkpoints" / "300" / "loop" / "metadata"
    loop = json.loads(loop_file.read_text())
    loop["counters"]["step"] = 200
    loop_file.write_text(json.dumps(loop))
    assert main(["train", "--resume", str(run), "--total-steps", "400"]) == 2
    assert "records step 200, not 300" in one_line(capsys.readouterr().err)
    # Another task's config.json over these checkpoints.
    run = copy(finished, tmp_path, "other-task")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "env": "Hopper-v4"}))
    assert main(["eval", str(run)]) == 2
    assert "holds an actor of other sizes" in one_line(capsys.readouterr().err)
    # A summary of the wrong shape, for compare.
    run = copy(finished, tmp_path, "bad-summary")
    (run / "summary.json").write_text(json.dumps({"total_steps": "lots"}))
    assert main(["compare", str(finished), str(run)]) == 2
    assert "summary.json's total_steps is not a number" in one_line(capsys.readouterr().err)
    # Far more evaluation episodes than memory holds.
    assert (
        main(
            ["train", *IN_PROCESS, "--eval-episodes", "100000000", "--out", str(tmp_path / "huge")]
        )
        == 2
    )
    assert "lower --eval-episodes" in one_line(capsys.readouterr().err)


def test_damaged_metrics_rows_are_dropped_on_resume(finished, tmp_path, capsys):
    run = copy(finished, tmp_path)
    text = (run / "metrics.csv").read_text()
    header, first, *rest = text.splitlines(keepends=True)
    bad_value = first.replace(first.split(",")[1], "abc", 1)
    (run / "metrics.csv").write_text(header + bad_value + "".join(rest) + first[:15])
    with pytest.warns(UserWarning, match=r"dropped 2 row\(s\)"):
        assert main(["train", "--resume", str(run), "--total-steps", "400"]) == 0
    steps = [r["step"] for r in rows(run)]
    assert steps == ["200", "300", "400"]  # the damaged 100 row and the cut one are gone


def test_the_python_api_takes_empty_batches_single_observations_and_refuses_no_episodes(
    finished,
):
    policy = sj.load_policy(str(finished))
    assert policy(np.zeros((0, 4))).shape == (0, 1)
    action, counts = policy.with_spikes(np.zeros(4))
    assert action.shape == (1,) and all(np.ndim(c) == 0 for c in counts.values())
    action, trains = policy.spike_trains(np.zeros(4))
    assert action.shape == (1,) and trains["hidden_0"].shape == (5, 16)
    with pytest.raises(ConfigError, match="--episodes must be a positive integer"):
        sj.evaluate(str(finished), episodes=0)


def test_a_sweep_resumed_before_its_first_checkpoint_starts_over(tmp_path, capsys):
    """A sweep stopped before it saved anything (here: its checkpoints and summaries gone,
    its rows left) starts again from the beginning, its rows written anew."""
    root = tmp_path / "root"
    assert main(["sweep", *IN_PROCESS, *SWEEP, "--total-steps", "200", "--out", str(root)]) == 0
    shutil.rmtree(root / "checkpoints")
    for member in ("base-s0", "base-s1"):
        (root / member / "summary.json").unlink()
    with pytest.warns(UserWarning, match="has no checkpoint yet: it starts over"):
        assert main(["sweep", "--resume", str(root)]) == 0
    assert steps_saved(root) == [100, 200]
    assert [r["step"] for r in rows(root / "base-s0")] == ["100", "200"]


def test_two_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    """Without --out: runs/ENV-sSEED-TIME, then -2, -3 (made atomically, here within one
    second: the clock stopped)."""
    from spikerl_jax.config import base

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(base.time, "strftime", lambda fmt: "20261207-080000")
    cfg = TrainConfig(env="InvertedPendulum-v4")
    made = [cfg.run_dir() for _ in range(3)]
    stem = os.path.join("runs", "InvertedPendulum-v4-s0-20261207-080000")
    assert made == [stem, f"{stem}-2", f"{stem}-3"]
    assert all(os.path.isdir(p) for p in made)


def test_a_full_disk_at_the_sweep_summary_is_one_line_and_a_resume_writes_it(
    tmp_path, monkeypatch, capsys
):
    """The disk fills while sweep.csv is written: one line, no torn file, the members' results
    kept; once there is space, ``sweep --resume`` writes the summary without training."""
    import errno
    import types

    from spikerl_jax.reporting import sweep

    class FullDisk(sweep.csv.DictWriter):  # the summary's writer only, not the runs'
        def writeheader(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    root = tmp_path / "root"
    args = [*IN_PROCESS[: IN_PROCESS.index("--eval-every")], "--eval-every", "300"]
    args += IN_PROCESS[IN_PROCESS.index("--eval-every") + 2 :]
    with monkeypatch.context() as patch:
        patch.setattr(sweep, "csv", types.SimpleNamespace(DictWriter=FullDisk))
        assert main(["sweep", *args, *SWEEP, "--out", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"spikerl-jax: error: cannot write the sweep's summary {root}/sweep.csv: No space left "
        "on device ("
    ), err
    assert err[0].endswith(f"free space, then spikerl-jax sweep --resume {root} writes it")
    assert not (root / "sweep.csv").exists() and not (root / "sweep.csv.tmp").exists()
    metrics = (root / "base-s0" / "metrics.csv").read_text()
    assert main(["sweep", "--resume", str(root)]) == 0
    assert (root / "base-s0" / "metrics.csv").read_text() == metrics  # not trained again
    ranked = json.loads((root / "sweep.json").read_text())["settings"]
    assert (root / "sweep.csv").read_text().count("\n") == len(ranked) + 1
    assert main(["sweep", "--resume", str(root)]) == 2  # now there is nothing to do
    assert "nothing to do" in capsys.readouterr().err

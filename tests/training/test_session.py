"""Run records that survive resumes, concurrent starts, signals, full disks and hostile
files: what a session guarantees around the training loop."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import (
    TINY,
    USER_TINY,
    assert_trees_equal,
    latest_state,
    rows,
    user_cli,
    user_cli_background,
    user_env,
    wait_for_checkpoint,
)

from spikerl_jax.cli import main
from spikerl_jax.config import CriticConfig, PopSANConfig, preset_for
from spikerl_jax.training import session


def without_length(args: list[str]) -> list[str]:
    i = args.index("--total-steps")
    return [*args[:i], *args[i + 2 :]]


SHORT = without_length(TINY)  # in-process runs: on one of conftest's 8 devices
USER_SHORT = without_length(USER_TINY)  # the user's: no --devices, no forced device count


def train(out, *args):
    return main(["train", *SHORT, "--out", str(out), *args])


def cli(*args):
    return user_cli_background(*args)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A user's finished run (the reference of ``test_same_seed_...``; the in-process tests
    only read it, or resume copies that are refused before training)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    code, _, err = user_cli("train", *USER_SHORT, "--total-steps", "600", "--out", str(out))
    assert code == 0, err[-3000:]
    return out


def test_a_resume_with_nothing_to_do_says_so_and_changes_nothing(finished):
    before = {name: (finished / name).read_bytes() for name in ("summary.json", "metrics.csv")}
    code, _, err = user_cli("train", "--resume", str(finished))
    assert code == 2 and "nothing to do" in err, err[-3000:]
    code, _, err = user_cli("train", "--resume", str(finished), "--total-steps", "300")
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert {name: (finished / name).read_bytes() for name in before} == before


def test_time_and_energy_accumulate_across_resumes(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--total-steps", "300") == 0
    first = json.loads((out / "summary.json").read_text())
    assert main(["train", "--resume", str(out), "--total-steps", "600"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (start_a, end_a, wall_a), (start_b, end_b, wall_b) = summary["segments"]
    assert (start_a, end_a, start_b, end_b) == (0, 300, 300, 600)
    assert summary["wall_s"] == pytest.approx(wall_a + wall_b)
    # The first process's time up to its last checkpoint (its summary adds the close-down).
    assert 0.5 * first["wall_s"] < wall_a <= first["wall_s"]
    assert summary["wall_s"] > wall_b  # not the resumed part's alone
    # (No comparison with the straight run's wall time: it compiled, while these two runs
    # may load its programs from the persistent cache and take a fraction of its time.)


def test_one_process_per_run_directory_and_stale_locks_do_not_block(tmp_path):
    out = tmp_path / "run"
    first = cli(
        "train", *USER_SHORT, "--total-steps", "200000", "--eval-every", "300", "--out", str(out)
    )
    try:
        wait_for_checkpoint(out)
        second = cli("train", "--resume", str(out), "--total-steps", "900")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2
        assert f"is in use by another spikerl-jax process (pid {first.pid})" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    # The killed process's lock died with it: the run resumes.
    saved = max(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    code, _, err = user_cli("train", "--resume", str(out), "--total-steps", str(saved + 300))
    assert code == 0, err[-3000:]
    # Time adds up over both processes, the killed one's up to its last checkpoint.
    summary = json.loads((out / "summary.json").read_text())
    (start_a, end_a, wall_a), (start_b, end_b, wall_b) = summary["segments"]
    assert (start_a, end_a, start_b, end_b) == (0, saved, saved, saved + 300)
    assert summary["wall_s"] == pytest.approx(wall_a + wall_b) and wall_a > 0


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "train",
        *USER_SHORT,
        "--total-steps",
        "200000",
        "--eval-every",
        "1000",
        "--checkpoint-every",
        "1000",
        "--out",
        str(out),
    )
    wait_for_checkpoint(out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143  # 128 + SIGTERM
    assert "interrupted by SIGTERM at step" in err and "Traceback" not in err
    assert err.strip().endswith(f"continue with spikerl-jax train --resume {out}")  # whole
    step = int(err.split("at step ")[1].split(";")[0])
    assert latest_state(out)[2] == step  # the state at the signal was saved


def test_same_seed_is_bit_identical_on_one_thread_and_under_load(finished, tmp_path):
    """The same run on one CPU (so one XLA thread) while another process keeps the CPUs
    busy gives the same metrics.csv and parameters as the unloaded run (both as a user
    starts them)."""
    out = tmp_path / "run"
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        pinned = (
            "import os, sys; os.sched_setaffinity(0, {0}); "
            "from spikerl_jax.cli import main; sys.exit(main(sys.argv[1:]))"
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                pinned,
                "train",
                *USER_SHORT,
                "--total-steps",
                "600",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=user_env(),
        )
    finally:
        burner.kill()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert rows(out) == rows(finished)
    (items, _, _), (ref, _, _) = latest_state(out), latest_state(finished)
    assert_trees_equal(
        [items[k] for k in ("learner", "best")], [ref[k] for k in ("learner", "best")]
    )


def test_resume_may_change_eval_episodes_and_survives_a_damaged_metrics_row(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--total-steps", "300") == 0
    with open(out / "metrics.csv", "a") as f:
        f.write("garbage,,,\n")
    with pytest.warns(UserWarning, match=r"metrics\.csv: dropped 1 row\(s\) that do not parse"):
        assert (
            main(["train", "--resume", str(out), "--total-steps", "600", "--eval-episodes", "3"])
            == 0
        )
    assert "Traceback" not in capsys.readouterr().err
    assert [r["step"] for r in rows(out)] == ["300", "600"]
    assert json.loads((out / "summary.json").read_text())["total_steps"] == 600


@pytest.mark.parametrize(
    "content, problems",
    [
        ("[1, 2]", ["expected an object, got list"]),
        (
            '{"td3": {"actor_lr": "fast"}, "seed": "one"}',
            [
                "seed: expected int, got 'one'",
                "td3.actor_lr: expected float, got 'fast'",
                "env: missing",
                "td3.gamma: missing",
            ],
        ),
        ("{not json", ["is not valid JSON"]),
    ],
)
def test_a_damaged_config_json_is_refused_naming_each_problem(
    finished, tmp_path, content, problems, capsys
):
    """Every problem in one line; a missing key is one (it is not filled in from the
    preset, whose value may not be what the run trained with)."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "config.json").write_text(content)
    assert main(["train", "--resume", str(out), "--total-steps", "900"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(p in err[0] for p in problems), err


def test_a_config_json_missing_a_key_is_refused_and_left_as_it_is(finished, tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    config = json.loads((out / "config.json").read_text())
    del config["td3"]["gamma"], config["exploration_noise"]
    (out / "config.json").write_text(json.dumps(config))
    before = (out / "config.json").read_text()
    assert main(["train", "--resume", str(out), "--total-steps", "900"]) == 2
    err = capsys.readouterr().err
    assert "td3.gamma: missing" in err and "exploration_noise: missing" in err
    assert (out / "config.json").read_text() == before


def test_nan_before_any_checkpoint_says_none_was_kept(tmp_path, monkeypatch, capsys):
    from spikerl_jax.envs.gymnasium_backend import VectorCollector

    original = VectorCollector.step

    def poisoned(self, action):
        original(self, action)
        self._stage["reward"][0, self._size - 1] = np.nan

    monkeypatch.setattr(VectorCollector, "step", poisoned)
    assert train(tmp_path / "run", "--total-steps", "600") == 2
    err = capsys.readouterr().err
    assert "non-finite losses at step 100" in err and "no checkpoint was saved yet" in err


def test_a_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    """A save that fails (here: ENOSPC from the second checkpoint on, where Orbax writes the
    host state) stops training at once with one line naming the path and the free space;
    the earlier checkpoint stays restorable and no temporary directory is left."""
    import errno

    import orbax.checkpoint as ocp

    saves = {"n": 0}
    original = ocp.CheckpointManager.save

    def full_disk(self, step, *args, **kwargs):
        saves["n"] += 1
        if step >= 600:
            tmp = os.path.join(str(self.directory), f"{step}.orbax-checkpoint-tmp-1")
            os.makedirs(tmp, exist_ok=True)  # as a half-written save leaves it
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    out = tmp_path / "run"
    assert train(out, "--total-steps", "1200") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "cannot save checkpoint 600" in err[0] and "No space left on device" in err[0]
    assert "MB free" in err[0] and "the last complete checkpoint (step 300) is kept" in err[0]
    latest = out / "checkpoints"
    assert sorted(p.name for p in latest.iterdir()) == ["300"]
    monkeypatch.undo()
    assert latest_state(out)[2] == 300
    assert rows(out)[-1]["step"] == "600"  # training stopped at the failed save


def test_a_failed_start_closes_what_it_opened_and_a_retry_starts(tmp_path, monkeypatch):
    """A start that fails after opening the records (here: the progress display) closes the
    records, checkpointers and energy meter and releases the run directory's lock, so a
    notebook can fix the problem and start again in the same process."""
    cfg = dataclasses.replace(
        preset_for("InvertedPendulum-v4"),
        total_steps=300,
        start_steps=200,
        update_after=100,
        replay_size=1000,
        actor=PopSANConfig(hidden_sizes=(16, 16)),
        devices=1,
        energy=False,
        critic=CriticConfig(critic_hidden_sizes=(16, 16)),
        out=str(tmp_path / "run"),
    )
    closed = []
    for cls in (session.RunRecorder, session.Checkpointer, session.EnergyMeter):

        def close(self, original=cls.close):
            closed.append(type(self).__name__)
            original(self)

        monkeypatch.setattr(cls, "close", close)

    def broken_display(*args, **kwargs):
        raise RuntimeError("no terminal")

    precision = lambda: jax.config.jax_default_matmul_precision  # noqa: E731
    with jax.default_matmul_precision("bfloat16"):  # a notebook's own setting
        with monkeypatch.context() as patch:
            patch.setattr(session, "TrainProgress", broken_display)
            with pytest.raises(RuntimeError, match="no terminal"):
                session.Session([cfg])
        assert sorted(closed) == ["Checkpointer", "EnergyMeter", "RunRecorder"]
        assert precision() == "bfloat16"  # the failed start restored it too
        closed.clear()
        with session.Session([cfg]):  # the lock was released: the retry starts
            assert precision() == "highest"  # the session's programs: full float32
        assert sorted(closed) == ["Checkpointer", "EnergyMeter", "RunRecorder"]
        assert precision() == "bfloat16"  # and the session leaves the process's setting


def test_a_tensorstore_write_error_is_reported_with_its_os_error_and_whole_path(tmp_path):
    """TensorStore's errors are not OSErrors: the reason comes from its status text (the OS
    error and the file being written, the path whole), and the loop-closed noise of its
    callbacks is dropped."""
    from spikerl_jax.training import checkpoint

    deep = str(tmp_path / ("d" * 150) / "600.orbax-checkpoint-tmp" / "learner" / "_sharding")
    status = (
        f'RESOURCE_EXHAUSTED: Error writing local file "{deep}": Failed writing: "{deep}.__lock":'
        " Failed to write 10007 bytes to file 12: No space left on device [os_error_code='28']"
    )
    saver = checkpoint.Checkpointer(str(tmp_path), 1, False)
    line = saver._explain(600, ValueError(status))
    saver.close()
    assert f"No space left on device ({deep}.__lock)" in line and "os_error_code" not in line
    assert "no complete checkpoint exists yet" in line
    read = Exception(
        "Encountered error while reading array index. See full TensorStore details: <bound"
    )
    read.__cause__ = ValueError('FAILED_PRECONDITION: Error reading "k/0" in OCDBT: Truncated')
    assert (
        checkpoint._reason(read) == 'FAILED_PRECONDITION: Error reading "k/0" in OCDBT: Truncated'
    )

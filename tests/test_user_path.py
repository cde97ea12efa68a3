"""What a new user meets first, each a bug a user found (issue 51): sweeps without a root,
the flags a sweep replaces, resumed records, signals at start-up, a closed pipe, and the
one-line answers to a changed grid, a missing root, a sweep root given as a run and a task
with discrete actions."""

import csv
import os
import shutil
import signal
import time
import typing

import orbax.checkpoint as ocp
import pytest
from helpers import TIMING, TINY, USER_TINY, user_cli_background

from spikerl_jax.cli import main
from spikerl_jax.cli.training import Precision
from spikerl_jax.config import TrainConfig
from spikerl_jax.envs.registry import env_spec
from spikerl_jax.precision import PRECISIONS
from spikerl_jax.sweep_spec import SweepSpec, save_spec
from spikerl_jax.training.checkpoint import orbax_path

USER = USER_TINY  # the user's default devices


def test_a_sweep_counts_its_members_before_it_has_a_root():
    """The CPU split needs the member count before ``with_root`` names a default root."""
    spec = SweepSpec(TrainConfig(), seeds=(0, 1), grid=(("gamma", (0.9, 0.8, 0.7)),))
    assert spec.root is None and spec.size == 6 == len(spec.placed().members())


def test_a_deleted_root_with_glob_characters_is_made_again(tmp_path):
    """Orbax reaches such a root through a link; once the root is deleted the link dangles,
    and the same command again must make the root, not fail on the link."""
    root = tmp_path / "dir [x]" / "checkpoints"
    link = orbax_path(str(root))
    assert os.path.realpath(link) == os.path.realpath(root)
    shutil.rmtree(tmp_path / "dir [x]")
    ocp.CheckpointManager(orbax_path(str(root)), options=ocp.CheckpointManagerOptions(create=True))
    assert root.is_dir()


def test_sweep_refuses_seed_in_one_line_and_writes_nothing(tmp_path, capsys):
    """``--seed`` is a single run's; a sweep's members take ``--seeds`` (it was accepted and
    ignored: the members were seed 0)."""
    out = tmp_path / "root"
    assert main(["sweep", *USER, "--seed", "7", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["spikerl-jax: error: a sweep does not take --seed; use --seeds (the seeds "
                   "of every setting, e.g. --seeds 0 1 2)"]  # fmt: skip
    assert not out.exists()
    assert main(["sweep", "--help"]) == 0
    helped = capsys.readouterr().out
    assert "--seeds" in helped and "--seed " not in helped and "--seed\n" not in helped


def test_precision_choices_are_the_precision_policies():
    assert set(typing.get_args(Precision)) == set(PRECISIONS)


def non_timing(path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def test_a_resumed_run_writes_the_straight_runs_train_rows(tmp_path):
    """A run killed right after its step-300 checkpoint resumes to the same train.csv as the
    straight run: the row at 400 counts the episodes since the row at 200, not since the
    checkpoint (every column but the timing ones)."""
    # In-process, under the suite's 8 forced devices: one, as a user's CPU run has.
    args = [*TINY[: TINY.index("--eval-every")], *TINY[TINY.index("--eval-every") + 2 :]]
    args += ["--eval-every", "100", "--log-every", "200", "--checkpoint-buffer"]
    args += ["--keep-checkpoints", "10", "--no-energy", "--no-tensorboard"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["train", *args, "--out", str(straight)]) == 0
    shutil.copytree(straight, killed)
    for step in (400, 500, 600):  # what a kill -9 just after the save at 300 leaves
        shutil.rmtree(killed / "checkpoints" / str(step))
    (killed / "summary.json").unlink()
    assert main(["train", "--resume", str(killed)]) == 0
    rows = non_timing(straight / "train.csv")
    assert [r["step"] for r in rows] == ["200", "400", "600"]
    assert non_timing(killed / "train.csv") == rows


def sigterm_caught(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (its SigCgt mask)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(line for line in f if line.startswith("SigCgt:")).split()[1]
    except (OSError, StopIteration):
        return False
    return bool(int(mask, 16) >> (signal.SIGTERM - 1) & 1)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc/PID/status")
def test_sigterm_during_start_up_is_one_line_and_status_143(tmp_path):
    """SIGTERM as soon as the command can take it (imports and compiles still ahead): the
    shell's status for SIGTERM and one line, not a silent death by the signal."""
    proc = user_cli_background("train", *USER, "--out", str(tmp_path / "run"))
    deadline = time.time() + 60
    while not sigterm_caught(proc.pid) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert err.strip() == "spikerl-jax: terminated outside training: nothing to save"


def test_help_into_a_closed_pipe_exits_quietly():
    """``spikerl-jax sweep --help | head``: the reader gone before the help is written."""
    proc = user_cli_background("sweep", "--help")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE and err == ""


@pytest.fixture
def sweep_root(tmp_path):
    """A sweep's root as ``sweep`` leaves it before its first checkpoint: the spec and the
    members' config files."""
    root = tmp_path / "root"
    spec = SweepSpec(
        TrainConfig(env="InvertedPendulum-v4", out=str(root)),
        seeds=(0, 1),
        grid=(("gamma", (0.9, 0.8)),),
    )
    save_spec(spec)
    for member in spec.members():
        os.makedirs(member.out)
        with open(os.path.join(member.out, "config.json"), "w") as f:
            f.write("{}")
    return root


def test_a_changed_grid_on_resume_names_every_value(sweep_root, capsys):
    assert main(["sweep", "--resume", str(sweep_root), "--gamma", "0.9", "0.7"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"spikerl-jax: error: cannot resume {sweep_root} with other seeds or grid values: the "
        "sweep has --seeds 0 1 --gamma 0.9 0.8, this command gives --seeds 0 1 --gamma 0.9 0.7"
    )


def test_a_missing_root_and_a_sweep_root_given_as_a_run_say_what_to_give(
    sweep_root, tmp_path, capsys
):
    assert main(["sweep", "--resume", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("nowhere does not exist; --resume takes the root of a sweep"), err
    assert main(["eval", str(sweep_root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"spikerl-jax: error: {sweep_root} is a sweep's root; give one of its members: "
        f"{sweep_root}/gamma=0.8-s0, {sweep_root}/gamma=0.8-s1, {sweep_root}/gamma=0.9-s0 "
        "and 1 more"
    ]


def test_discrete_actions_are_named_alone():
    """CartPole's observations are a 1-D Box: only its actions are unsuitable."""
    with pytest.raises(ValueError) as e:
        env_spec("CartPole-v1")
    assert str(e.value) == (
        "CartPole-v1 has actions Discrete(2); the actor needs a 1-D Box of actions "
        "(continuous control)"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda sj: sj.train({"env": "Hopper-v4"}), r"train\(config\) takes a TrainConfig, e\.g\."),
        (lambda sj: sj.preset_for(123), r"preset_for\(env\) takes a Gymnasium id"),
        (lambda sj: sj.load_policy(123), r"load_policy\(run_dir\) takes a path .*got int 123"),
        (lambda sj: sj.read_run(None), r"read_run\(run_dir\) takes a path .*got NoneType"),
        (lambda sj: sj.evaluate("x", episodes="3"), r"evaluate\(episodes\) takes a number"),
        (lambda sj: sj.export_nir("run", 5), r"export_nir\(path\) takes a path"),
        (lambda sj: sj.plot_runs("runs/a", "plots"), r"plot_runs\(runs\) takes a list of Run"),
    ],
)
def test_wrong_types_through_the_python_api_name_the_argument(call, message, tmp_path, monkeypatch):
    """From a notebook: one TypeError naming the argument, before anything is written."""
    import spikerl_jax as sj

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=message):
        call(sj)
    assert os.listdir(tmp_path) == []


def test_processes_that_never_all_start_end_in_one_line(tmp_path):
    """Process 0 of 2 alone: a line saying it waits, then one error line at --init-timeout
    (JAX's own wait blocks signals, then aborts with a C++ dump); nothing written."""
    proc = user_cli_background(
        "sweep",
        *USER,
        "--coordinator-address",
        "127.0.0.1:47319",
        "--num-processes",
        "2",
        "--process-id",
        "0",
        "--init-timeout",
        "2",
        "--out",
        str(tmp_path / "mp"),
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [
        "spikerl-jax: process 0 of 2: waiting up to 2 s for the others at 127.0.0.1:47319",
        "spikerl-jax: error: not all 2 processes reached 127.0.0.1:47319 within 2 s: start "
        "every process (--process-id 0 to 1) with the same --coordinator-address and "
        "--num-processes, or wait longer with --init-timeout",
    ]
    assert not (tmp_path / "mp").exists()


def test_a_dead_peer_process_is_one_line_and_no_wait_at_exit(monkeypatch, capsys):
    """A collective that fails because another process died: one line with the way on, and
    the exit skips JAX's shutdown barrier, which would wait for the dead peer and abort."""
    import jax
    from jax.errors import JaxRuntimeError

    from spikerl_jax import processes
    from spikerl_jax.cli import training

    def peer_died(self):
        raise JaxRuntimeError("UNKNOWN: Gloo all-reduce failed: Connection reset by peer\nmore")

    exits = []
    monkeypatch.setattr(training.Sweep, "run", peer_died)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(processes, "_DISTRIBUTED", True)
    monkeypatch.setattr(processes, "exit_at_once", exits.append)
    assert main(["sweep", *USER, "--out", "unused"]) == 2 and exits == [2]
    assert capsys.readouterr().err.strip() == (
        "spikerl-jax: error: another process of this run failed (UNKNOWN: Gloo all-reduce "
        "failed: Connection reset by peer); its last checkpoint is kept: start every process "
        "again with --resume ROOT (the same --coordinator-address, --num-processes and "
        "--process-id)"
    )

"""A researcher's first day: any Gymnasium task, logs between evaluations, help that teaches,
comparisons that say what differs, readable eval output and one-line render errors."""

import csv
import importlib.util
import json
import os
import warnings

import numpy as np
import pytest
from helpers import TINY, USER_TINY, read_scalars, user_cli

import spikerl_jax.export.video as video_module
from spikerl_jax.cli import main, parse
from spikerl_jax.config import TrainConfig
from spikerl_jax.envs.registry import EnvSpec, env_spec

# A few hundred steps of any task: updates from the round ending at step 100, one
# evaluation, train.csv rows every 100 steps.
SHORT = [
    "--total-steps",
    "300",
    "--start-steps",
    "100",
    "--update-after",
    "100",
    "--eval-every",
    "300",
    "--eval-episodes",
    "1",
    "--log-every",
    "100",
    "--hidden-sizes",
    "16",
    "16",
    "--critic-hidden-sizes",
    "16",
    "16",
    "--replay-size",
    "1000",
    "--no-progress",
    "--no-energy",
    "--devices",
    "1",
]
TESTS = os.path.dirname(os.path.abspath(__file__))


def run_cli(*args, env=None):
    """``spikerl-jax ARGS`` as a user runs it (no forced devices), in a 200-column terminal
    with tests/ importable (its ``user_envs`` module registers a task)."""
    return user_cli(*args, env={"COLUMNS": "200", "PYTHONPATH": TESTS, **(env or {})}, timeout=300)


@pytest.mark.parametrize(
    "env_id, episode",
    [("Pendulum-v1", 200), ("user_envs:PointMass-v0", 50)],
    ids=["Pendulum-v1", "registered-by-a-module"],
)
def test_any_box_task_trains_and_logs_between_evaluations(env_id, episode, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--env", env_id, *SHORT, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["env"] == env_id
    metrics = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["step"]) for r in metrics] == [300]  # one evaluation...
    train = list(csv.DictReader((out / "train.csv").open()))
    assert [int(r["step"]) for r in train] == [100, 200, 300]  # ...and a log row every 100
    assert all(r["critic_loss"] != "" and float(r["updates_per_s"]) > 0 for r in train)
    assert sum(int(r["episodes"]) for r in train) >= 300 // episode
    scalars = read_scalars(out)
    assert [s for s, _ in scalars["train/episodes"]] == [100, 200, 300]
    assert [s for s, _ in scalars["eval/return"]] == [300]
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert np.isfinite(result["return_mean"]) and 0 < result["length_mean"] <= episode


def test_spaces_are_read_off_the_env_and_unversioned_ids_resolve():
    assert env_spec("Pendulum-v1") == EnvSpec(3, 1, 2.0, 200)
    # [0, 2] actions: rescaled to [-1, 1] by the host backend.
    assert env_spec("user_envs:PointMass-v0") == EnvSpec(2, 1, 1.0, 50)
    assert TrainConfig(env="Pendulum").env == "Pendulum-v1"
    assert TrainConfig(env="Hopper").env == "Hopper-v5"  # the newest version
    hopper = parse(["train", "--env", "Hopper"]).config
    assert hopper.start_steps == 10_000  # the locomotion preset follows the family


def test_a_schedule_that_never_acts_or_learns_is_announced(tmp_path):
    code, _, err = run_cli(
        "train",
        *USER_TINY,
        "--total-steps",
        "300",
        "--start-steps",
        "300",
        "--update-after",
        "300",
        "--no-energy",
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 0, err
    lines = err.strip().splitlines()
    random = [x for x in lines if "every action is uniformly random" in x]
    frozen = [x for x in lines if "no update ever runs" in x]
    assert len(random) == 1 and "--start-steps (300) is not below --total-steps (300)" in random[0]
    assert len(frozen) == 1 and "lower it" in frozen[0]
    assert all(x.startswith("spikerl-jax: warning: ") for x in random + frozen)


def test_cleanrl_spellings_are_accepted_or_answered(capsys):
    spelled = ["--env-id", "Hopper-v4", "--total-timesteps", "20000", "--buffer-size", "5000"]
    cfg = parse(["train", *spelled, "--policy-frequency", "4", "--updates-per-round", "8"]).config
    assert (cfg.env, cfg.total_steps, cfg.replay_size, cfg.td3.policy_delay) == (
        "Hopper-v4",
        20_000,
        5_000,
        4,
    )
    assert cfg.start_steps == 10_000  # --env-id selects the preset as --env does
    assert main(["train", "--tau", "0.005"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "spikerl-jax: error: --tau is not a spikerl-jax option; use --polyak, which is 1 - tau"
    ]


def test_help_teaches():
    code, out, _ = run_cli("sweep", "--help")
    assert code == 0
    for text in ("--seeds", "--resume", "--actor-lr [FLOAT [FLOAT ...]]", "Several values sweep"):
        assert text in out, text
    code, out, _ = run_cli("train", "--help")
    assert code == 0 and "--env-id STR, --env STR" in out and "--seeds" not in out
    # A field's docstring is one paragraph, not broken where its source lines break (after
    # "(Hopper-v4,").
    assert "(Hopper-v4, Pendulum-v1; unversioned" in out


@pytest.fixture(scope="module")
def two_lengths(tmp_path_factory):
    """Finished InvertedPendulum runs of 600 and 300 steps."""
    root = tmp_path_factory.mktemp("lengths")
    for steps in (600, 300):
        args = [*TINY, "--total-steps", str(steps), "--out", str(root / f"run{steps}")]
        assert main(["train", *args]) == 0
    return root / "run600", root / "run300"


def test_compare_says_the_runs_differ_in_length(two_lengths, tmp_path, monkeypatch, capsys):
    long, short = two_lengths
    monkeypatch.chdir(tmp_path)  # nothing may be written into the working directory
    with pytest.warns(UserWarning) as caught:
        assert main(["compare", str(long), str(short)]) == 0
    messages = [str(w.message) for w in caught]
    assert any("differ in lengths (600, 300)" in m and "per-1k-steps" in m for m in messages)
    printed = capsys.readouterr().out
    assert "steps" in printed and "600" in printed and "300" in printed
    assert "time per 1k steps" in printed
    assert os.listdir(tmp_path) == []
    rows = json.loads((long / "comparison.json").read_text())
    assert [r["steps"] for r in rows] == [600, 300]
    seconds = [r["duration_s"] / r["steps"] * 1000 for r in rows]
    assert [r["s_per_1k_steps"] for r in rows] == pytest.approx(seconds)


def test_eval_prints_tables_or_one_json_line(two_lengths, capsys):
    run = str(two_lengths[0])
    assert main(["eval", run, "--episodes", "1"]) == 0
    tables = capsys.readouterr().out
    for text in ("best policy (step", "return", "firing rate", "hidden_0", "ANN / spiking"):
        assert text in tables, text
    assert main(["eval", run, "--episodes", "1", "--json"]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1 and json.loads(line)["episodes"] == 1


def _no_display(monkeypatch):
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)


def test_render_without_an_opengl_library_is_one_line(two_lengths, tmp_path, monkeypatch, capsys):
    _no_display(monkeypatch)
    monkeypatch.setattr(video_module.ctypes.util, "find_library", lambda name: None)
    video = tmp_path / "v.mp4"
    assert main(["eval", str(two_lengths[0]), "--render", str(video)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no display and no OpenGL library" in err[0], err
    assert "libegl1" in err[0] and not video.exists()


def test_render_without_ffmpeg_is_one_line(two_lengths, tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "imageio_ffmpeg" else real(name, *args)

    monkeypatch.setattr(video_module.importlib.util, "find_spec", find_spec)
    assert main(["eval", str(two_lengths[0]), "--render", str(tmp_path / "v.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "spikerl-jax: error: --render writes mp4 with imageio-ffmpeg: "
        "pip install 'spikerl_jax[render]'"
    ]


def test_a_mujoco_gl_that_cannot_load_is_one_line(two_lengths):
    code, _, err = run_cli("eval", str(two_lengths[0]), env={"MUJOCO_GL": "no-such-backend"})
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "spikerl-jax: error: MuJoCo cannot load its OpenGL backend MUJOCO_GL=no-such-backend "
        "(RuntimeError); unset MUJOCO_GL, or install that backend's library (egl: apt-get "
        "install libegl1, osmesa: libosmesa6)"
    ]


class _FramesEnv:
    """Stands in for a rendering env (no OpenGL): three steps of 64x64 frames."""

    unwrapped = type("Unwrapped", (), {"dt": 0.04})()

    def __init__(self):
        self.steps = 0

    def reset(self, seed=None):
        return np.zeros(4), {}

    def render(self):
        return np.full((64, 64, 3), 40 * self.steps, np.uint8)

    def step(self, action):
        self.steps += 1
        return np.zeros(4), 1.0, self.steps == 3, False, {}

    def close(self):
        pass


def test_a_video_is_written_without_the_fork_warning(tmp_path, monkeypatch):
    import spikerl_jax.envs.gymnasium_backend as backend

    monkeypatch.setenv("MUJOCO_GL", "egl")  # chosen: no library lookup
    monkeypatch.setattr(backend, "quiet_make", lambda *a, **k: _FramesEnv())
    video = tmp_path / "v.mp4"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = video_module.record_video(lambda obs: 0.0, "InvertedPendulum-v4", str(video), 0)
        assert written == str(video)
    assert video.stat().st_size > 0
    assert not [w for w in caught if "fork" in str(w.message)], [str(w.message) for w in caught]

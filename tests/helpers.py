"""Helpers shared by the test modules."""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import jax
import mujoco
import numpy as np
import pytest
from mujoco import mjx

# A tiny InvertedPendulum run: 16x16 networks, short phases, two evaluation episodes.
TINY = [
    "--env",
    "InvertedPendulum-v4",
    "--total-steps",
    "600",
    "--start-steps",
    "200",
    "--update-after",
    "100",
    "--eval-every",
    "300",
    "--eval-episodes",
    "2",
    "--hidden-sizes",
    "16",
    "16",
    "--critic-hidden-sizes",
    "16",
    "16",
    "--replay-size",
    "1000",
    "--no-progress",
    "--devices",
    "1",
]
# TINY as a user would type it: no --devices (the CLI chooses: all local devices, and a sweep
# splits the CPU's cores). For the tests of the user's path (``user_cli``); in-process tests
# keep TINY, whose --devices 1 runs them on one of conftest's 8 forced devices.
assert TINY[-2:] == ["--devices", "1"]
USER_TINY = TINY[:-2]
# The learning tests' networks: 64x64 actor and critics solve InvertedPendulum within the
# preset's 20k steps (seed 0: 1000 at 20k in fp32 and bf16) at a fifth of 256x256's time.
LEARNING_NETS = ["--hidden-sizes", "64", "64", "--critic-hidden-sizes", "64", "64"]
TIMING = {"wall_s", "env_steps_per_s", "updates_per_s"}


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: the test process's (``JAX_PLATFORMS=cpu``, the shared
    compile cache) without the host device count conftest forces, with ``extra`` added."""
    env = {**os.environ, **extra}
    flags = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    return env


def spikerl_jax_command() -> list[str]:
    """The installed ``spikerl-jax`` script beside this interpreter (as a user runs it), or
    ``python -m spikerl_jax.cli`` where the package is not installed with its scripts."""
    script = Path(sys.executable).with_name("spikerl-jax")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "spikerl_jax.cli"]


def user_cli_background(*args: str, cwd=None, env: dict[str, str] | None = None):
    """``spikerl-jax ARGS`` started as a user starts it (``user_env``, no forced devices), in
    ``cwd``; a ``Popen`` with text stdout and stderr pipes."""
    return subprocess.Popen(
        [*spikerl_jax_command(), *args],
        cwd=cwd,
        env=user_env(**(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def user_cli(*args: str, cwd=None, env: dict[str, str] | None = None, timeout: float = 600):
    """``spikerl-jax ARGS`` run to its end as a user runs it (``user_cli_background``);
    returns ``(returncode, stdout, stderr)``."""
    proc = user_cli_background(*args, cwd=cwd, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        message = f"spikerl-jax {' '.join(args)} ran past {timeout} s:\n{err[-3000:]}"
        raise AssertionError(message) from None
    return proc.returncode, out, err


def loop_physics(make):
    """``make`` (``spikerl_jax.envs.mjx_tasks.make``) for the tests of the training loop: MJX
    ports that integrate with Euler and skip constraints.

    Those tests check the loop (segments against a Python loop, resume, population members
    against single runs), which holds for any physics; tests/envs/test_mjx_tasks.py checks the
    physics against Gymnasium. InvertedPendulum's env step compiles in about 16 s this way
    against 37 s with its RK4 and joint limits (2-core Intel Xeon).
    """

    def cheap(env_id, **options):
        env = make(env_id, **options)
        cheapen(env.mj_model)
        env.mjx_model = mjx.put_model(env.mj_model, impl="jax")
        return env

    return cheap


def cheapen(model: mujoco.MjModel) -> mujoco.MjModel:
    """``loop_physics``'s change to a MuJoCo model (in place): Euler, no constraints."""
    model.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONSTRAINT
    return model


def train_inverted_pendulum(tmp_path, options: list[str], seed: int):
    """Trains InvertedPendulum-v4 from its preset (20k steps) with ``LEARNING_NETS`` and
    ``options``, stopping at an evaluation of 950.

    Returns:
      The run's directory and its ``summary.json``.
    """
    import json

    from spikerl_jax.cli import main

    out = tmp_path / f"s{seed}"
    args = [
        "train",
        "--env",
        "InvertedPendulum-v4",
        "--seed",
        str(seed),
        "--target-return",
        "950",
        *LEARNING_NETS,
        *options,
        "--out",
        str(out),
        "--no-progress",
        "--devices",
        "1",
    ]
    assert main(args) == 0
    return out, json.loads((out / "summary.json").read_text())


def solve_inverted_pendulum(tmp_path, options: list[str], seeds: tuple[int, ...]):
    """``train_inverted_pendulum`` for each of ``seeds`` in turn until one solves it.

    64x64 networks solve this task within 20k steps for some seeds only, and which seeds
    depends on the CPU: XLA's kernels differ between CPU models, and with them each seed's
    trajectory (BENCHMARKS.md, precision policies). The learning tests ask one of three seeds.

    Returns:
      The last run's directory and its ``summary.json``.
    """
    for seed in seeds:
        out, summary = train_inverted_pendulum(tmp_path, options, seed)
        if summary["best_eval_return"] >= 950:
            break
    return out, summary


def solved_seeds(tmp_path, options: list[str], seeds: tuple[int, ...], needed: int) -> dict:
    """``train_inverted_pendulum`` for ``seeds`` in order, until ``needed`` of them solve it
    or too few are left to: ``{seed: the step it reached 950 at, or None}``."""
    reached: dict[int, int | None] = {}
    for i, seed in enumerate(seeds):
        solved = sum(step is not None for step in reached.values())
        if solved >= needed or solved + len(seeds) - i < needed:
            break
        _, summary = train_inverted_pendulum(tmp_path, options, seed)
        reached[seed] = summary["target_reached_at"]
    return reached


def init_td3(td3, networks, obs_dim: int, td3_cfg, key=None, encoder_std: float = 0.15**0.5):
    """A TD3 state as the learner makes one: the actor from the first half of the key."""
    from spikerl_jax.rl.td3 import hparams_from_config

    key = jax.random.key(0) if key is None else key
    actor = networks.init_actor(jax.random.split(key)[0], obs_dim, encoder_std)
    return td3.init(key, actor, obs_dim, hparams_from_config(td3_cfg))


def init_learner(learner, configs):
    """``learner.init`` for the members ``configs`` (their seeds and settings)."""
    from spikerl_jax.training.members import members_of

    members = members_of(configs)
    return learner.init(members.keys["init"], members.hparams, members.encoder_std)


def as_numpy(tree) -> list[np.ndarray]:
    """Every leaf as numpy (PRNG keys as their key data)."""

    def leaf(x):
        is_key = jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        return np.asarray(jax.random.key_data(x) if is_key else x)

    return [leaf(x) for x in jax.tree.leaves(tree)]


def assert_trees_equal(a, b) -> None:
    for x, y in zip(as_numpy(a), as_numpy(b), strict=True):
        np.testing.assert_array_equal(x, y)


def rows(run_dir) -> list[dict]:
    """metrics.csv without its timing columns (which differ between any two runs)."""
    import csv
    import os

    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def latest_state(run_dir):
    """``(items, loop, step)`` of the newest checkpoint of a run's population: every item
    as saved (``learner``, ``policy``, ``best``, ``host``, ``buffer``, ``env``)."""
    from spikerl_jax.training.checkpoint import read_checkpoint

    return read_checkpoint(str(run_dir))


def comparable(items: dict, loop) -> dict:
    """A checkpoint's host state and records without the measured energy and time, and with
    each pickled MjData replaced by its physics (its profiling timers are wall-clock
    readings, which differ between any two runs)."""
    import dataclasses
    import pickle
    import zlib

    def plain(x):  # NaN pads the finished returns; NaN != NaN
        x = np.asarray(x)
        return (np.where(np.isnan(x), np.inf, x) if x.dtype.kind == "f" else x).tolist()

    host = {k: plain(v) for k, v in items["host"].items() if k not in ("physics", "physics_bytes")}
    if "physics" in items["host"]:
        blobs, lengths = items["host"]["physics"], items["host"]["physics_bytes"]
        physics = []
        for row, n in zip(blobs.reshape(-1, blobs.shape[-1]), lengths.reshape(-1), strict=True):
            data = pickle.loads(zlib.decompress(row[:n].tobytes()))
            physics.append(
                [
                    np.asarray(getattr(data, f)).tolist()
                    for f in ("time", "qpos", "qvel", "act", "qacc_warmstart", "xpos", "ctrl")
                ]
            )
        host["physics"] = physics
    records = dataclasses.replace(loop, energy={}, wall_s=0.0, segments=())
    return {"host": host, "loop": records}


def wait_for_checkpoint(run_dir, timeout: float = 180) -> None:
    """Blocks until ``run_dir`` has a complete latest checkpoint."""
    import time

    latest = run_dir / "checkpoints"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir()):
            return
        time.sleep(0.2)
    raise TimeoutError("no checkpoint appeared")


def read_scalars(run_dir):
    """``{tag: [(step, value)]}`` from TensorBoard event files (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    scalars = {}
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + length])
            i += 12 + length + 4  # length, its crc, the record, its crc
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def mlp_numpy(params: dict, x: np.ndarray) -> np.ndarray:
    """A ReLU MLP from its Flax parameters ``{Dense_i: {kernel, bias}}``, in float64 (the
    algorithms' tests' reference for critics and MLP actors)."""
    layers = [params[f"Dense_{i}"] for i in range(len(params))]
    for i, layer in enumerate(layers):
        x = x @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64)
        x = np.maximum(x, 0.0) if i < len(layers) - 1 else x
    return x


@contextlib.contextmanager
def validations():
    """Collects every ``TrainConfig`` that ``TrainConfig.validate`` checks inside the block
    (a run's path validates each member once)."""
    from spikerl_jax.config import TrainConfig

    checked, validate = [], TrainConfig.validate

    def counted(cfg):
        checked.append(cfg)
        return validate(cfg)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TrainConfig, "validate", counted)
        yield checked


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def wait_until(condition, timeout=240.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.002)
    raise TimeoutError("the moment to kill at never came")


def in_flight(root):
    folder = root / "checkpoints"
    return folder.is_dir() and any("tmp" in p.name for p in folder.iterdir())


def steps_saved(root):
    folder = root / "checkpoints"
    return (
        sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []
    )

"""Helpers shared by the test modules."""

from __future__ import annotations

import jax
import mujoco
import numpy as np
from mujoco import mjx

from spikerl_jax.config import TrainConfig
from spikerl_jax.rl.td3 import hparams_from_config

# A tiny InvertedPendulum run: 16x16 networks, short phases, two evaluation episodes.
TINY = [
    "--env", "InvertedPendulum-v4", "--total-steps", "600", "--start-steps", "200",
    "--update-after", "100", "--eval-every", "300", "--eval-episodes", "2",
    "--hidden-sizes", "16", "16", "--critic-hidden-sizes", "16", "16", "--replay-size", "1000",
    "--no-progress", "--devices", "1",
]  # fmt: skip
# The learning tests' networks: 64x64 actor and critics solve InvertedPendulum within the
# preset's 20k steps (seed 0: 1000 at 20k in fp32 and bf16) at a fifth of 256x256's time.
LEARNING_NETS = ["--hidden-sizes", "64", "64", "--critic-hidden-sizes", "64", "64"]
TIMING = {"wall_s", "env_steps_per_s", "updates_per_s"}


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


def solve_inverted_pendulum(tmp_path, options: list[str], seeds: tuple[int, ...]):
    """Trains InvertedPendulum-v4 from its preset (20k steps) with ``LEARNING_NETS`` and
    ``options``, stopping at an evaluation of 950, for each of ``seeds`` in turn until one
    solves it.

    64x64 networks solve this task within 20k steps for some seeds only, and which seeds
    depends on the CPU: XLA's kernels differ between CPU models, and with them each seed's
    trajectory (BENCHMARKS.md, precision policies). The learning tests ask one of two seeds.

    Returns:
      The last run's directory and its ``summary.json``.
    """
    import json

    from spikerl_jax.cli import main

    for seed in seeds:
        out = tmp_path / f"s{seed}"
        args = ["train", "--env", "InvertedPendulum-v4", "--seed", str(seed),
                "--target-return", "950", *LEARNING_NETS, *options,
                "--out", str(out), "--no-progress", "--devices", "1"]  # fmt: skip
        assert main(args) == 0
        summary = json.loads((out / "summary.json").read_text())
        if summary["best_eval_return"] >= 950:
            break
    return out, summary


def hparams(td3_cfg=None, **train_fields):
    """The ``HParams`` of a config with ``td3_cfg`` (and other TrainConfig fields)."""
    cfg = TrainConfig(**train_fields) if td3_cfg is None else TrainConfig(td3=td3_cfg,
                                                                          **train_fields)
    return hparams_from_config(cfg)


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


def latest_state(run_dir, which: str = "latest"):
    """``(items, host, step)`` of a run's newest checkpoint (learner, buffer, MJX envs)."""
    import json
    import os

    from spikerl_jax.reporting.runlog import load_run_config
    from spikerl_jax.training.checkpoint import restore
    from spikerl_jax.training.session import abstract_run_state

    cfg = load_run_config(str(run_dir))
    summary = os.path.join(str(run_dir), "summary.json")
    devices = 1
    if os.path.exists(summary):
        with open(summary) as f:
            devices = json.load(f).get("devices", 1)
    abstract = abstract_run_state(cfg, with_env=True, devices=devices)
    return restore(str(run_dir), abstract, which)


def comparable(host):
    """Host state without the measured energy and time, and with each pickled MjData replaced
    by its physics (its profiling timers are wall-clock readings, which differ between any two
    runs)."""
    import base64
    import pickle
    import zlib

    from spikerl_jax.schema import to_jsonable

    host = to_jsonable(host)
    for key in ("energy", "wall_s", "segments"):  # measured, differs between any two runs
        del host["loop"][key]
    for envs in host["backend"]:
        for env in envs["collector"]["envs"]:
            data = pickle.loads(zlib.decompress(base64.b64decode(env.pop("mjdata"))))
            env["physics"] = [
                np.asarray(getattr(data, f)).tolist()
                for f in ("time", "qpos", "qvel", "act", "qacc_warmstart", "xpos", "ctrl")
            ]
    return host


def wait_for_checkpoint(run_dir, timeout: float = 180) -> None:
    """Blocks until ``run_dir`` has a complete latest checkpoint."""
    import time

    latest = run_dir / "checkpoints" / "latest"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir()):
            return
        time.sleep(0.2)
    raise TimeoutError("no checkpoint appeared")

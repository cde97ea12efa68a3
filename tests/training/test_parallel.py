"""Data parallelism on 8 forced CPU devices and across 2 processes (gloo)."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import init_learner, init_td3
from jax.sharding import PartitionSpec as P

from spikerl_jax.cli import main
from spikerl_jax.config import CriticConfig, PopSANConfig, TD3Config, TrainConfig
from spikerl_jax.envs.registry import EnvSpec
from spikerl_jax.processes import core_devices_for, usable_cores
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.replay import random_transitions
from spikerl_jax.rl.td3 import make_td3
from spikerl_jax.training.learner import make_learner
from spikerl_jax.training.parallel import AXIS, make_layout, make_mesh

pytestmark = pytest.mark.devices  # 8 forced CPU devices, and processes with their own counts

SPEC = EnvSpec(obs_dim=3, action_dim=2, action_limit=1.0, max_episode_steps=1000)
ACTOR, CRITIC = PopSANConfig(hidden_sizes=(16,)), CriticConfig(critic_hidden_sizes=(16,))
# Deterministic updates: regular encoder, no target smoothing noise.
TD3_CFG = TD3Config(batch_size=4, target_noise=0.0)
CFG = TrainConfig(
    actor=ACTOR, critic=CRITIC, td3=TD3_CFG, replay_size=256, update_every=16, updates_per_round=4
)
CHUNKS = [random_transitions(jax.random.key(10 + i), 16, 3, 2) for i in range(5)]


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("drive_penalty", [0.0, 1.0])
def test_eight_device_update_equals_one_device_update_on_the_concatenated_batch(drive_penalty):
    """Also with --drive-penalty, whose batch statistic is the global batch's."""
    mesh = make_mesh(8)
    networks = make_networks(
        2, 1.0, dataclasses.replace(ACTOR, drive_penalty=drive_penalty), CRITIC
    )
    single, sharded = make_td3(networks, TD3_CFG), make_td3(networks, TD3_CFG, axis_name=AXIS)
    state = init_td3(single, networks, 3, TD3_CFG)
    batch = random_transitions(jax.random.key(1), 8 * 4, 3, 2)  # per-device b = 4
    key = jax.random.key(2)
    ref, ref_metrics = jax.jit(lambda s: single.update(s, lambda k: batch, key, 3))(state)

    def body(s, local_batch):
        new, metrics = sharded.update(s, lambda k: local_batch, key, 3)
        return jax.tree.map(lambda x: x[None], new), metrics  # each device's copy, stacked

    run = jax.shard_map(
        body, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(AXIS), P()), check_vma=False
    )  # as make_learner: the pmean is TD3's own
    copies, metrics = jax.jit(run)(state, batch)
    for stacked, reference in zip(leaves(copies), leaves(ref), strict=True):
        assert all(np.array_equal(stacked[0], stacked[i]) for i in range(8))  # bitwise
        np.testing.assert_allclose(stacked[0], reference, rtol=1e-5, atol=1e-5)
    assert metrics["critic_loss"] == pytest.approx(float(ref_metrics["critic_loss"]), rel=1e-5)
    assert not np.array_equal(leaves(copies)[0][0], leaves(state)[0])  # it did learn


def learner_on(devices: int):
    return make_learner(CFG, SPEC, make_layout(1, make_mesh(devices)))


def run_rounds(learner):
    state = init_learner(learner, [CFG])
    for chunk in CHUNKS:
        state, metrics = learner.learn(state, jax.tree.map(lambda x: x[None], chunk))
    return state, metrics


def test_replicas_stay_bit_identical_and_buffers_are_sharded():
    learner = learner_on(8)
    assert learner.layout.mode == "data"
    state, metrics = run_rounds(learner)
    for leaf in jax.tree.leaves(state.agent):
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        assert len(shards) == 8 and all(np.array_equal(shards[0], x) for x in shards)
    # Each device's shard holds its 2 rows of each 16-row chunk (5 rounds: 10 each).
    assert np.asarray(state.buffer.size).tolist() == [[10] * 8]
    first_rows = np.asarray(state.buffer.data.obs)[0, [0, 32]]  # shards are 32 rows long
    np.testing.assert_array_equal(first_rows, np.asarray(CHUNKS[0].obs)[[0, 2]])
    assert np.isfinite(metrics["critic_loss"]).all()


def test_eight_device_training_from_the_cli(tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "--env",
        "InvertedPendulum-v4",
        "--total-steps",
        "384",
        "--start-steps",
        "192",
        "--update-after",
        "96",
        "--eval-every",
        "192",
        "--eval-episodes",
        "2",
        "--hidden-sizes",
        "16",
        "--critic-hidden-sizes",
        "16",
        "--replay-size",
        "800",
        "--update-every",
        "48",
        "--updates-per-round",
        "4",
        "--num-envs",
        "2",
        "--devices",
        "8",
        "--no-progress",
        "--no-energy",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["devices"] == 8 and summary["global_batch_size"] == 800
    assert summary["total_steps"] == 384 and summary["updates"] > 0
    # The sharded run's checkpoints resume on 8 devices and load for evaluation on one.
    assert main(["train", "--resume", str(out), "--total-steps", "480"]) == 0
    assert json.loads((out / "summary.json").read_text())["total_steps"] == 480
    assert main(["eval", str(out), "--episodes", "1"]) == 0


WORKER = """
import json, sys
import jax, numpy as np
from spikerl_jax.processes import init_distributed
from spikerl_jax.training.parallel import make_layout, make_mesh
init_distributed({address!r}, 2, int(sys.argv[1]))  # before anything touches a device
sys.path[:0] = [{tests!r}, {tests!r} + "/training"]
import test_parallel as t
from helpers import init_learner
from spikerl_jax.training.learner import make_learner
learner = make_learner(t.CFG, t.SPEC, make_layout(1, make_mesh()))
state = init_learner(learner, [t.CFG])
sharding = learner.layout.sharding(learner.layout.spec(0))
half = slice(8 * jax.process_index(), 8 * jax.process_index() + 8)
for chunk in t.CHUNKS:
    local = jax.tree.map(lambda x: np.asarray(x)[None, half], chunk)
    chunk = jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local)
    state, metrics = learner.learn(state, chunk)
params = [np.asarray(x.addressable_data(0)).tolist() for x in jax.tree.leaves(state.agent)]
if jax.process_index() == 0:
    json.dump(params, open(sys.argv[2], "w"))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_agree_with_one(tmp_path):
    """2 processes x 4 CPU devices (gloo collectives on 127.0.0.1) run the same rounds as one
    process with 8 devices, each process feeding its half of every chunk."""
    script = tmp_path / "worker.py"
    address = f"127.0.0.1:{free_port()}"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent.parent), address=address))
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
    }
    out = tmp_path / "params.json"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output[-3000:]
    two_process = json.loads(out.read_text())
    state, _ = run_rounds(learner_on(8))
    for mine, theirs in zip(leaves(state.agent), two_process, strict=True):
        np.testing.assert_allclose(mine, np.asarray(theirs), rtol=1e-5, atol=1e-6)


def test_devices_beyond_the_machine_are_refused():
    from spikerl_jax.config import ConfigError

    with pytest.raises(ConfigError, match="--devices 9: this process has 8"):
        make_mesh(9)


@pytest.mark.parametrize(
    ("members", "cores", "devices"),
    [(8, 2, 2), (16, 2, 2), (5, 2, 1), (6, 4, 3), (12, 8, 6), (1, 8, 1)],
)
def test_whole_members_take_the_most_cores_that_divide_them(members, cores, devices):
    assert core_devices_for(members, cores) == devices


SPLIT = """
import sys, jax
from spikerl_jax.processes import split_cpu_for_members
if sys.argv[1] == "started":
    jax.numpy.zeros(1).block_until_ready()
print(split_cpu_for_members(4), jax.local_device_count())
"""


def test_a_sweep_process_splits_the_cpu_into_a_device_per_core():
    """Before JAX starts, 4 members get as many CPU devices as divide them, up to one per
    core; once JAX has started, or where XLA_FLAGS sets a count, the devices stay."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}

    def devices(when: str, **extra) -> tuple[int, int]:
        out = subprocess.run(
            [sys.executable, "-c", SPLIT, when],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        split, count = out.split()
        return int(split), int(count)

    cores = core_devices_for(4, usable_cores())
    assert devices("fresh", JAX_PLATFORMS="cpu") == (cores, cores)
    assert devices("started", JAX_PLATFORMS="cpu") == (1, 1)
    forced = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=3"}
    assert devices("fresh", **forced) == (1, 3)


TWO_PROCESS = [
    "--env",
    "InvertedPendulum-v4",
    "--start-steps",
    "96",
    "--update-after",
    "48",
    "--eval-every",
    "96",
    "--eval-episodes",
    "1",
    "--hidden-sizes",
    "16",
    "--critic-hidden-sizes",
    "16",
    "--replay-size",
    "800",
    "--update-every",
    "48",
    "--updates-per-round",
    "4",
    "--num-envs",
    "2",
    "--no-progress",
    "--no-energy",
    "--checkpoint-buffer",
]
# 4 updates per round, not 50: over gloo between processes an update takes about 0.3 s.


def two_processes(*args):
    """Runs ``spikerl-jax ARGS`` as 2 processes x 2 CPU devices (gloo on 127.0.0.1)."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    command = [
        sys.executable,
        "-m",
        "spikerl_jax.cli",
        *args,
        "--coordinator-address",
        address,
        "--num-processes",
        "2",
        "--process-id",
    ]
    procs = [
        subprocess.Popen(
            [*command, str(i)], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for i in range(2)
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-3000:]


@pytest.mark.slow
def test_two_process_training_and_resume_from_the_cli(tmp_path):
    """`spikerl-jax train` on 2 processes x 2 devices: each steps its env, process 0 writes
    the records (one metrics.csv, summary with 4 devices); a run stopped at step 96 and
    resumed (each process restoring its shards and its envs) equals the straight run. A
    2-member `spikerl-jax sweep` on the same processes, stopped at step 96 and resumed, has
    each process step its share of both members' envs: each member equals its single run
    (to 1e-5: the population vmaps the members; evaluation returns exactly)."""
    from helpers import assert_trees_equal, comparable, latest_state, rows

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    two_processes("train", *TWO_PROCESS, "--total-steps", "192", "--out", str(straight))
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["devices"] == 4 and summary["total_steps"] == 192 and summary["updates"] > 0
    assert [r["step"] for r in rows(straight)] == ["96", "192"]

    two_processes("train", *TWO_PROCESS, "--total-steps", "96", "--out", str(resumed))
    two_processes("train", "--resume", str(resumed), "--total-steps", "192")
    assert rows(resumed) == rows(straight)
    (items, loop, _), (ref_items, ref_loop, _) = latest_state(resumed), latest_state(straight)
    devices = ("learner", "buffer", "best")
    assert_trees_equal([items[k] for k in devices], [ref_items[k] for k in devices])
    assert items["host"]["action_rng"].shape[:2] == (1, 2)  # each process's generators
    assert comparable(items, loop) == comparable(ref_items, ref_loop)
    assert json.loads((resumed / "summary.json").read_text())["resumed_from"] == 96

    sweep = tmp_path / "sweep"
    two_processes(
        "sweep", *TWO_PROCESS, "--seeds", "0", "1", "--total-steps", "96", "--out", str(sweep)
    )
    two_processes("sweep", "--resume", str(sweep), "--total-steps", "192")
    assert json.loads((sweep / "sweep.json").read_text())["settings"][0]["seeds"] == 2
    seed1 = tmp_path / "seed1"
    two_processes("train", *TWO_PROCESS, "--seed", "1", "--total-steps", "192", "--out", str(seed1))
    for seed, single_run in ((0, straight), (1, seed1)):
        member = rows(sweep / f"base-s{seed}")
        assert [r["step"] for r in member] == ["96", "192"]
        for mine, single in zip(member, rows(single_run), strict=True):
            assert mine["eval_return"] == single["eval_return"]
            for column in ("critic_loss", "actor_loss", "q"):
                assert float(mine[column]) == pytest.approx(
                    float(single[column]), rel=1e-5, abs=1e-6
                )
    # The seeds' runs differ, so the comparison above tells the members apart.
    assert rows(seed1)[-1]["critic_loss"] != rows(straight)[-1]["critic_loss"]

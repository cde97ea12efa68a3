"""Populations: member i of a population (its own seed and actor learning rate) equals the
single run with that seed and learning rate, on both backends; members split across devices
equal members on one device; a sweep from the CLI writes runs that compare, plot and eval
like single runs, and its resume equals the straight sweep."""

import dataclasses
import json
import signal

import jax
import numpy as np
import pytest
from helpers import (
    TINY,
    as_numpy,
    assert_trees_equal,
    init_learner,
    latest_state,
    loop_physics,
    rows,
    validations,
)

from spikerl_jax.cli import main
from spikerl_jax.config import CriticConfig, PopSANConfig, TD3Config, TrainConfig
from spikerl_jax.envs.registry import env_spec
from spikerl_jax.processes import Interrupted
from spikerl_jax.rl.replay import random_transitions
from spikerl_jax.training import device_loop, trainer
from spikerl_jax.training.build import build
from spikerl_jax.training.learner import make_learner
from spikerl_jax.training.parallel import make_layout, make_mesh
from spikerl_jax.training.schedule import Counters

BASE = TrainConfig(
    env="InvertedPendulum-v4",
    num_envs=1,
    update_every=20,
    updates_per_round=4,
    start_steps=40,
    update_after=20,
    replay_size=400,
    eval_episodes=2,
    actor=PopSANConfig(hidden_sizes=(16,)),
    critic=CriticConfig(critic_hidden_sizes=(16,)),
    td3=TD3Config(batch_size=8),
)
SEEDS, LRS = (0, 1, 2, 3), (1e-3, 3e-4, 1e-3, 3e-4)
MEMBERS = [
    dataclasses.replace(BASE, seed=s, td3=dataclasses.replace(BASE.td3, actor_lr=lr))
    for s, lr in zip(SEEDS, LRS, strict=True)
]


def run_backend(configs, rounds, devices=1, evaluate=True):
    """``rounds`` rounds of a population of ``configs`` through its backend: the final state,
    the rounds' stats and (``evaluate``) the members' evaluations."""
    population = build([dataclasses.replace(c, devices=devices) for c in configs])
    steps = rounds * configs[0].update_every
    state, stats = population.backend.rounds(population.state, Counters(), steps)
    results = population.backend.evaluate(state, steps) if evaluate else None
    population.backend.close()
    return state, stats, results


def assert_member_equals_single(population, single, member):
    (p_state, p_stats, p_results), (s_state, s_stats, s_results) = population, single
    mine = as_numpy(jax.tree.map(lambda x: x[member], p_state.learner))
    theirs = as_numpy(jax.tree.map(lambda x: x[0], s_state.learner))
    for a, b in zip(mine, theirs, strict=True):
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        else:  # counters, positions, PRNG keys
            np.testing.assert_array_equal(a, b)
    for name, values in p_stats.metrics.items():
        np.testing.assert_allclose(
            values[member], s_stats.metrics[name][0], rtol=1e-5, atol=1e-5, err_msg=name
        )
    if p_results is not None:
        assert p_results[member].mean == pytest.approx(s_results[0].mean, rel=1e-5)


@pytest.mark.parametrize(
    ("backend", "devices"),
    [
        ("gymnasium", 1),
        pytest.param("gymnasium", 2, marks=pytest.mark.devices),
        pytest.param("mjx", 1, marks=pytest.mark.slow),
    ],
)
def test_member_equals_the_single_run_with_its_seed_and_learning_rate(
    backend, devices, monkeypatch
):
    """Also with the members split over 2 devices (as a sweep splits a CPU's cores), where
    they act on one of them."""
    configs = [dataclasses.replace(c, backend=backend) for c in MEMBERS]
    if backend == "mjx":
        monkeypatch.setattr(device_loop, "make", loop_physics(device_loop.make))
        configs = [dataclasses.replace(c, env="InvertedPendulum-v5", num_envs=2) for c in configs]
    rounds = 5  # 2 random rounds, 3 exploring ones; updates from the first
    population = run_backend(configs, rounds, devices, evaluate=backend == "gymnasium")
    params = [np.asarray(x) for x in jax.tree.leaves(population[0].learner.agent.actor_params)]
    assert not np.allclose(params[-1][0], params[-1][1])  # the members did differ
    for member in (0, 3):
        single = run_backend([configs[member]], rounds, evaluate=backend == "gymnasium")
        assert_member_equals_single(population, single, member)


@pytest.mark.parametrize(
    ("algo", "backend", "devices"),
    [
        ("ddpg", "gymnasium", 1),
        ("sac", "gymnasium", 1),
        pytest.param("sac", "gymnasium", 2, marks=pytest.mark.devices),
        pytest.param("sac", "mjx", 1, marks=pytest.mark.slow),
    ],
)
def test_a_member_of_another_algorithm_equals_its_single_run(algo, backend, devices, monkeypatch):
    """The algorithm seam's promise for every algorithm: its traced settings differ per
    member in one program (the seeds and actor learning rates of ``MEMBERS``), on either
    backend, the members split over devices too (SAC's stochastic acting policy included)."""
    configs = [dataclasses.replace(c, algo=algo, backend=backend) for c in MEMBERS[:2]]
    if backend == "mjx":
        monkeypatch.setattr(device_loop, "make", loop_physics(device_loop.make))
        configs = [dataclasses.replace(c, env="InvertedPendulum-v5", num_envs=2) for c in configs]
    evaluate = backend == "gymnasium"
    population = run_backend(configs, 4, devices, evaluate=evaluate)
    for member in (0, 1):
        single = run_backend([configs[member]], 4, evaluate=evaluate)
        assert_member_equals_single(population, single, member)


@pytest.mark.devices
def test_members_split_across_devices_equal_members_on_one():
    """8 members on 8 devices (whole members per device) equal the same members on one
    device; 4 members on 8 devices split each member's data across them (the DDP update:
    every device's replica of every member stays bit-identical)."""
    chunk = random_transitions(jax.random.key(7), 16, 4, 1, 3.0)
    spec = env_spec("InvertedPendulum-v4")

    def rounds(count, devices):
        configs = [dataclasses.replace(BASE, seed=s, update_every=16) for s in range(count)]
        layout = make_layout(count, make_mesh(devices))
        learner = make_learner(configs[0], spec, layout)
        state = init_learner(learner, configs)
        chunks = jax.tree.map(lambda x: np.stack([np.asarray(x)] * count), chunk)
        for _ in range(3):
            state, metrics = learner.learn(state, chunks)
        return layout, state.agent, np.asarray(metrics["critic_loss"])

    layout, split, loss = rounds(8, 8)
    assert layout.mode == "members" and layout.local_members == 1
    _, whole, whole_loss = rounds(8, 1)
    np.testing.assert_allclose(loss, whole_loss, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(split), jax.tree.leaves(whole), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)

    layout, split, loss = rounds(4, 8)
    assert layout.mode == "data" and loss.shape == (4,) and np.all(np.isfinite(loss))
    for leaf in jax.tree.leaves(split):
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        assert len(shards) == 8 and all(np.array_equal(shards[0], x) for x in shards)


def test_a_sweep_without_devices_splits_the_cpu_for_its_members(monkeypatch, tmp_path):
    """Before JAX starts; with --devices the sweep runs where it is told."""
    from spikerl_jax import processes
    from spikerl_jax.config import ConfigError

    splits = []
    monkeypatch.setattr(processes, "split_cpu_for_members", splits.append)

    def stop(spec, resume=False):
        raise ConfigError("stopped before training")

    monkeypatch.setattr(trainer, "train_sweep", stop)
    assert TINY[-2:] == ["--devices", "1"]
    grid = ["--seeds", "0", "1", "--actor-lr", "1e-3", "3e-4", "--out", str(tmp_path)]
    assert main(["sweep", *TINY[:-2], *grid]) == 2
    assert splits == [4]
    assert main(["sweep", *TINY, *grid]) == 2
    assert splits == [4]


SWEEP = [
    *TINY,
    "--seeds",
    "0",
    "1",
    "--actor-lr",
    "1e-3",
    "3e-4",
    "--no-energy",
    "--checkpoint-buffer",
]


@pytest.fixture(scope="module")
def sweep_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep") / "root"
    with validations() as checked:
        assert main(["sweep", *SWEEP, "--out", str(root)]) == 0
    # Each of the 4 members validated once, on the command line's path.
    assert len(checked) == 4 and len({c.run_dir() for c in checked}) == 4, checked
    return root


def test_sweep_writes_member_runs_and_a_ranked_summary(sweep_root, tmp_path, capsys):
    summary = json.loads((sweep_root / "sweep.json").read_text())["settings"]
    assert [s["setting"] for s in summary] != [] and len(summary) == 2
    assert {s["setting"] for s in summary} == {"actor_lr=0.001", "actor_lr=0.0003"}
    assert summary[0]["final_mean"] >= summary[1]["final_mean"] and summary[0]["seeds"] == 2
    assert (sweep_root / "learning_curves.png").stat().st_size > 10_000
    runs = sorted(p.name for p in sweep_root.iterdir() if p.is_dir() and p.name != "checkpoints")
    assert runs == [
        "actor_lr=0.0003-s0",
        "actor_lr=0.0003-s1",
        "actor_lr=0.001-s0",
        "actor_lr=0.001-s1",
    ]
    member = sweep_root / "actor_lr=0.001-s1"
    config = json.loads((member / "config.json").read_text())
    assert config["seed"] == 1 and config["td3"]["actor_lr"] == 1e-3
    member_summary = json.loads((member / "summary.json").read_text())
    assert member_summary["members"] == 4 and member_summary["total_steps"] == 600
    # Every member is a run: eval, compare and plot take it.
    assert main(["eval", str(member), "--episodes", "1"]) == 0
    others = [str(sweep_root / r) for r in runs]
    assert main(["compare", *others, "--out", str(tmp_path / "cmp")]) == 0
    assert main(["plot", *others, "--out", str(tmp_path / "plots")]) == 0
    capsys.readouterr()


def test_sweep_resume_equals_the_straight_sweep(sweep_root, tmp_path):
    resumed = tmp_path / "resumed"
    short = [*SWEEP]
    short[short.index("--total-steps") + 1] = "300"
    assert main(["sweep", *short, "--out", str(resumed)]) == 0
    assert main(["sweep", "--resume", str(resumed), "--total-steps", "600"]) == 0
    for member in ("actor_lr=0.001-s0", "actor_lr=0.0003-s1"):
        assert rows(resumed / member) == rows(sweep_root / member)
    (items, _, step), (ref_items, _, ref_step) = latest_state(resumed), latest_state(sweep_root)
    assert step == ref_step == 600
    devices = ("learner", "buffer", "best")
    assert_trees_equal([items[k] for k in devices], [ref_items[k] for k in devices])
    ranked = json.loads((resumed / "sweep.json").read_text())["settings"]
    assert ranked == json.loads((sweep_root / "sweep.json").read_text())["settings"]


def test_sweep_refuses_shape_changing_grids_and_bad_seeds(tmp_path, capsys):
    """A shape-changing setting takes one value (the parser names the extra one); repeated
    seeds are one line."""
    assert main(["sweep", *TINY, "--batch-size", "8", "16", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "16" in err and "Traceback" not in err
    assert main(["sweep", *TINY, "--seeds", "1", "1", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "repeated seeds" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_interrupted_sweep_says_to_resume_its_root(tmp_path, monkeypatch, capsys):
    """A signal stops a sweep like a run (tests/training/test_session.py), but the way on is
    ``sweep --resume ROOT``, not its members' run directories."""

    def stopped(*args, **kwargs):
        raise Interrupted("interrupted by SIGTERM at step 40", "--resume a b", signal.SIGTERM)

    monkeypatch.setattr(trainer, "train_members", stopped)
    root = tmp_path / "root"
    assert main(["sweep", *SWEEP, "--out", str(root)]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip() == (
        "spikerl-jax: interrupted by SIGTERM at step 40; checkpoint saved, continue with "
        f"spikerl-jax sweep --resume {root}"
    )

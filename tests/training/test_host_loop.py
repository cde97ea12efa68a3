"""The host loop's transitions (true last observations, terminated vs truncated, member
layout), its batched evaluation of every member's episodes, and where it acts
(``--act-device``)."""

import dataclasses

import jax
import numpy as np
import pytest
from helpers import TINY, rows

from spikerl_jax.cli import main
from spikerl_jax.config import TrainConfig
from spikerl_jax.envs.gymnasium_backend import VectorCollector, evaluate_episodes, make_vector_env
from spikerl_jax.reporting.records import eval_results
from spikerl_jax.training import host_loop
from spikerl_jax.training.host_loop import acting_device
from spikerl_jax.training.parallel import Layout, make_mesh

ENV = "InvertedPendulum-v4"


def test_truncation_stores_final_obs_and_bootstraps():
    envs = make_vector_env(ENV, num_envs=2, max_episode_steps=3)
    collector = VectorCollector(envs, capacity=6, seeds=[0])
    for _ in range(3):
        collector.step(np.zeros((1, 2, 1), np.float32))  # balanced: no termination in 3 steps
    chunk = collector.take()
    obs, next_obs = chunk["obs"][0], chunk["next_obs"][0]
    assert np.all(chunk["terminated"] == 0)  # truncated, not terminated
    # Rows are (step, env): within an episode each next_obs is the following obs ...
    np.testing.assert_allclose(next_obs[:4], obs[2:], rtol=1e-6)
    # ... and the truncated step keeps the true last obs, not the auto-reset one.
    assert not np.allclose(next_obs[4:], collector.obs[0])
    assert len(collector.finished_returns[0]) == 2 and collector.finished_returns[0][0] == 3.0
    assert collector.take()["reward"].shape == (1, 0)  # the stage starts empty again


def test_termination_is_stored_as_terminal():
    envs = make_vector_env(ENV, num_envs=1)
    collector = VectorCollector(envs, capacity=1000, seeds=[1])
    for _ in range(200):
        collector.step(np.full((1, 1, 1), 3.0, np.float32))  # full push: the pole falls
        if collector.finished_returns[0]:
            break
    chunk = collector.take()
    terminated = chunk["terminated"][0]
    assert terminated[-1] == 1 and np.all(terminated[:-1] == 0)
    # The stored final observation is past the termination angle (|angle| > 0.2); the env
    # itself has already been reset to a near-upright state.
    assert abs(float(chunk["next_obs"][0, -1, 1])) > 0.2
    assert abs(float(collector.obs[0, 0, 1])) <= 0.01


def test_members_have_their_own_envs_seeds_and_rows():
    """Two members in one vector env: each member's rows come from its own envs, seeded as a
    single run with its seed would seed them."""
    seeds = [3, 8]
    both = VectorCollector(make_vector_env(ENV, 4), capacity=4, seeds=seeds)
    alone = [VectorCollector(make_vector_env(ENV, 2), capacity=4, seeds=[s]) for s in seeds]
    rng = np.random.default_rng(0)
    for _ in range(2):
        action = rng.uniform(-3, 3, (2, 2, 1)).astype(np.float32)
        both.step(action)
        for m, collector in enumerate(alone):
            collector.step(action[m : m + 1])
    chunk = both.take()
    for m, collector in enumerate(alone):
        mine = collector.take()
        for field in VectorCollector.FIELDS:
            np.testing.assert_array_equal(chunk[field][m], mine[field][0])


class _Episode:
    """An env whose episode ends after ``length`` steps, reward 1 per step."""

    def __init__(self, length):
        self.length = length

    def reset(self):
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), 1.0, self.t == self.length, False, {}


def test_evaluation_batches_members_and_counts_spikes_of_running_envs_only():
    envs = [[_Episode(3), _Episode(5)], [_Episode(2), _Episode(2)]]
    calls = []

    def act(obs_MED):  # 2 encoder spikes and 1 output spike per observation
        calls.append(obs_MED.shape)
        m, e = obs_MED.shape[:2]
        return np.zeros((m, e, 1)), {"encoder": np.full((m, e), 2.0), "output": np.ones((m, e))}

    first, second = eval_results(*evaluate_episodes(act, envs))
    assert calls == [(2, 2, 2)] * 5  # one batched call per step for every member's episodes
    assert (first.mean, first.length, first.inferences) == (4.0, 4.0, 8)
    assert first.spikes == {"encoder": 16.0, "output": 8.0}
    assert (second.mean, second.inferences) == (2.0, 4)
    assert second.spikes == {"encoder": 8.0, "output": 4.0}


@pytest.mark.devices
def test_act_device_follows_the_platform_and_the_batch(monkeypatch):
    cfg, cpu = TrainConfig(num_envs=1), jax.devices("cpu")[0]
    one, eight = Layout(None, 1, "single"), Layout(None, 8, "single")
    assert acting_device(cfg, one) is None  # no accelerator: act where training runs
    # ... unless members split over CPU devices: on one of them
    assert acting_device(cfg, Layout(make_mesh(2), 8, "members")) == jax.local_devices()[0]
    assert acting_device(cfg, Layout(make_mesh(2), 1, "data")) is None
    monkeypatch.setattr(host_loop, "platform", lambda: "gpu")
    assert acting_device(cfg, one) == cpu  # auto: a small actor call goes to the host CPU
    assert acting_device(dataclasses.replace(cfg, num_envs=16), eight) is None  # 128 obs
    assert acting_device(dataclasses.replace(cfg, act_device="accelerator"), one) is None
    assert acting_device(dataclasses.replace(cfg, num_envs=16, act_device="cpu"), eight) == cpu
    assert acting_device(dataclasses.replace(cfg, backend="mjx"), one) is None


def test_acting_on_the_cpu_copy_trains_as_acting_on_the_training_device(monkeypatch, tmp_path):
    """The platform faked as a GPU: the run with --act-device cpu acts on its copy of the
    parameters (here on the same CPU, so the numbers are the same) and trains identically."""
    monkeypatch.setattr(host_loop, "platform", lambda: "gpu")
    for act in ("accelerator", "cpu"):
        args = [*TINY, "--total-steps", "300", "--act-device", act, "--no-energy"]
        assert main(["train", *args, "--out", str(tmp_path / act)]) == 0
    assert rows(tmp_path / "cpu") == rows(tmp_path / "accelerator")

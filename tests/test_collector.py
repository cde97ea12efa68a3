"""The host loop's transitions: true last observations, terminated vs truncated."""

import numpy as np

from spikerl_jax.envs.gymnasium_backend import env_spec, make_vector_env
from spikerl_jax.train import HostCollector

ENV = "InvertedPendulum-v4"


def test_truncation_stores_final_obs_and_bootstraps():
    envs = make_vector_env(ENV, num_envs=2, max_episode_steps=3)
    collector = HostCollector(envs, env_spec(ENV), capacity=6, seed=0)
    for _ in range(3):
        collector.step(np.zeros((2, 1), np.float32))  # balanced: no termination in 3 steps
    chunk = collector.take()
    obs, next_obs = np.asarray(chunk.obs), np.asarray(chunk.next_obs)
    assert np.all(np.asarray(chunk.terminated) == 0)  # truncated, not terminated
    # Rows are (step, env): within an episode each next_obs is the following obs ...
    np.testing.assert_allclose(next_obs[:4], obs[2:], rtol=1e-6)
    # ... and the truncated step keeps the true last obs, not the auto-reset one.
    assert not np.allclose(next_obs[4:], collector.obs)
    assert len(collector.finished_returns) == 2 and collector.finished_returns[0] == 3.0
    assert collector.take().reward.shape == (0,)  # the stage starts empty again


def test_termination_is_stored_as_terminal():
    envs = make_vector_env(ENV, num_envs=1)
    collector = HostCollector(envs, env_spec(ENV), capacity=1000, seed=1)
    for _ in range(200):
        collector.step(np.full((1, 1), 3.0, np.float32))  # full push: the pole falls
        if collector.finished_returns:
            break
    chunk = collector.take()
    terminated = np.asarray(chunk.terminated)
    assert terminated[-1] == 1 and np.all(terminated[:-1] == 0)
    # The stored final observation is past the termination angle (|angle| > 0.2); the env
    # itself has already been reset to a near-upright state.
    assert abs(float(chunk.next_obs[-1, 1])) > 0.2
    assert abs(float(collector.obs[0, 1])) <= 0.01

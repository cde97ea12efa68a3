"""A trained run's policy outside training: it drives a Gymnasium env, refuses what it
cannot act on, and names the checkpoints that exist."""

import numpy as np
import pytest
from helpers import TINY

from spikerl_jax.cli import main
from spikerl_jax.config import ConfigError
from spikerl_jax.envs.gymnasium_backend import quiet_make
from spikerl_jax.export.policy import load_policy


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("policy") / "run"
    assert main(["train", *TINY, "--no-energy", "--out", str(out)]) == 0
    return out


def test_the_policy_drives_a_gymnasium_env_for_an_episode(run):
    policy = load_policy(str(run))
    env = quiet_make("InvertedPendulum-v4")
    obs, _ = env.reset(seed=0)
    steps, done = 0, False
    while not done:
        action = policy(obs)
        assert action.shape == (1,) and abs(float(action[0])) <= 3.0
        obs, _, terminated, truncated, _ = env.step(action)
        steps, done = steps + 1, terminated or truncated
    assert steps >= 1
    actions, spikes = policy.with_spikes(np.zeros((3, 4)))
    assert actions.shape == (3, 1) and set(spikes) == {"encoder", "hidden_0", "hidden_1", "output"}


def test_the_policy_refuses_nan_and_misshaped_observations(run):
    policy = load_policy(str(run), "latest")
    with pytest.raises(ValueError, match="NaN or infinite"):
        policy(np.full(4, np.nan))
    with pytest.raises(ValueError, match=r"observations have shape \(4,\)"):
        policy(np.zeros(5))


def test_only_best_and_latest_checkpoints_exist(run):
    with pytest.raises(ConfigError, match="checkpoint must be 'best' or 'latest', got 'foo'"):
        load_policy(str(run), "foo")


def test_eval_draws_a_spike_raster(run, tmp_path, capsys):
    from matplotlib.image import imread

    path = tmp_path / "raster.png"
    assert main(["eval", str(run), "--episodes", "1", "--raster", str(path)]) == 0
    assert str(path) in capsys.readouterr().out
    pixels = imread(path)[..., :3]
    assert pixels.shape[0] > 200 and pixels.std() > 0.05  # not blank
    dark = (pixels.mean(-1) < 0.3).mean()
    assert 0.001 < dark < 0.5  # spikes drawn, the canvas not filled


def test_export_nir_from_the_cli(run, tmp_path, capsys):
    import nir

    out = tmp_path / "actor.nir"
    assert main(["export-nir", str(run), str(out)]) == 0
    assert out.exists() and (tmp_path / "actor.popsan.npz").exists()
    graph = nir.read(str(out))
    assert isinstance(graph.nodes["lif0"], nir.CubaLIF)

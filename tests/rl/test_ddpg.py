"""DDPG against a hand-written NumPy critic target, and its update's structure."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import mlp_numpy

from spikerl_jax.config import CriticConfig, PopSANConfig, TD3Config, TrainConfig
from spikerl_jax.rl.ddpg import hparams_of, make_algorithm, make_losses, make_q
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.replay import random_transitions

OBS, ACT, LIMIT, BATCH = 4, 2, 2.0, 6
CFG = TrainConfig(
    algo="ddpg",
    actor_kind="mlp",
    updates_per_round=3,
    actor=PopSANConfig(hidden_sizes=(16, 16)),
    critic=CriticConfig(critic_hidden_sizes=(16, 16)),
    td3=TD3Config(batch_size=BATCH, gamma=0.9),
)


@pytest.fixture(scope="module")
def setup():
    nets = make_networks(ACT, LIMIT, CFG.actor, CFG.critic, "mlp")
    ddpg = make_algorithm(nets, CFG)
    key = jax.random.key(0)
    actor = nets.init_actor(jax.random.split(key)[0], OBS, 1.0)
    state = ddpg.init(key, actor, OBS, hparams_of(CFG))
    # Targets unlike the online networks, so that using the wrong ones shows.
    state = state.replace(
        target_actor_params=jax.tree.map(lambda x: 0.5 * x, state.actor_params),
        target_critic_params=jax.tree.map(lambda x: x + 0.1, state.critic_params),
    )
    batch = random_transitions(jax.random.key(1), BATCH, OBS, ACT).replace(
        terminated=jnp.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    )
    return nets, ddpg, state, batch


def test_critic_target_against_numpy(setup):
    nets, _, state, batch = setup
    obs, action, next_obs = (
        np.asarray(x, np.float64) for x in (batch.obs, batch.action, batch.next_obs)
    )
    reward, done = np.asarray(batch.reward, np.float64), np.asarray(batch.terminated, np.float64)
    # DDPG's target: the target actor's action (tanh times the limit), no smoothing noise,
    # one target critic, no bootstrap from terminal states.
    mu = LIMIT * np.tanh(mlp_numpy(state.target_actor_params["params"]["mlp"], next_obs))
    next_q = mlp_numpy(state.target_critic_params["params"], np.concatenate([next_obs, mu], -1))
    target = reward + 0.9 * (1.0 - done) * next_q[:, 0]
    q = mlp_numpy(state.critic_params["params"], np.concatenate([obs, action], -1))[:, 0]
    q_fn, _ = make_q(nets)
    critic_loss, _ = make_losses(nets, q_fn, lambda tree: tree)
    loss, metrics = critic_loss(state.critic_params, state, batch, jax.random.key(2))
    np.testing.assert_allclose(float(loss), ((q - target) ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["q"]), q.mean(), rtol=1e-5, atol=1e-6)


def test_each_update_is_a_critic_then_an_actor_step(setup):
    """A round of 3 updates: 3 critic and 3 actor Adam steps (no policy delay), the targets
    Polyak-averaged towards the online networks, the metrics the algorithm names."""
    _, ddpg, state, batch = setup
    update = jax.jit(lambda state, key: ddpg.update(state, lambda _: batch, key))
    new, metrics = update(state, jax.random.key(3))
    assert int(new.critic_opt_state.count) == int(new.actor_opt_state.count) == 3
    assert sorted(metrics) == sorted(ddpg.metrics)
    for target, old, online in (
        (new.target_actor_params, state.target_actor_params, state.actor_params),
        (new.target_critic_params, state.target_critic_params, state.critic_params),
    ):
        t, o, p = (jax.tree.leaves(x)[0] for x in (target, old, online))
        # Three steps of 1 - polyak = 0.005 towards the (moving) online networks.
        np.testing.assert_allclose(t - o, (1 - 0.995**3) * (p - o), rtol=0.05, atol=1e-4)


def test_ddpg_refuses_the_proxy_target():
    from spikerl_jax.config import ConfigError

    cfg = dataclasses.replace(CFG, td3=dataclasses.replace(CFG.td3, target_actor="proxy"))
    with pytest.raises(ConfigError, match="--target-actor proxy is TD3's"):
        cfg.validate()

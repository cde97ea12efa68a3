"""The proxy target (Xu et al., NeurIPS 2025): the proxy learns to imitate the actor, the
critic's target uses the proxy's (smoothed) action, the proxy gets no gradient from the critic
loss, and Polyak averaging moves the critic targets only."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import init_td3

from spikerl_jax.config import CriticConfig, PopSANConfig, TD3Config
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.proxy import make_proxy
from spikerl_jax.rl.replay import random_transitions
from spikerl_jax.rl.td3 import make_td3

OBS, ACT, LIMIT = 4, 2, 1.0
CFG = TD3Config(batch_size=32, target_actor="proxy", proxy_hidden_sizes=(32, 32))


@pytest.fixture(scope="module")
def setup():
    nets = make_networks(
        ACT,
        LIMIT,
        PopSANConfig(hidden_sizes=(16, 16), pop_in=3, pop_out=3, timesteps=3),
        CriticConfig(critic_hidden_sizes=(16, 16)),
    )
    td3 = make_td3(nets, CFG)
    state = init_td3(td3, nets, OBS, CFG)
    pool = random_transitions(jax.random.key(1), 256, OBS, ACT)

    def sample(k):
        idx = jax.random.randint(k, (CFG.batch_size,), 0, 256)
        return jax.tree.map(lambda x: x[idx], pool)

    return nets, td3, state, sample


def test_the_proxy_learns_to_imitate_the_actor(setup):
    nets, _, state, sample = setup
    proxy = make_proxy(nets.actor, CFG)
    fit = jax.jit(lambda p, k: proxy.fit(p, state.actor_params, sample, k, 1e-3))
    fitted, losses = state.proxy, []
    for i in range(60):
        fitted, metrics = fit(fitted, jax.random.key(i))
        losses.append(float(metrics["proxy_loss"]))
    assert np.mean(losses[-5:]) < 0.25 * np.mean(losses[:5]), losses
    obs = sample(jax.random.key(99)).obs
    error = proxy.act(fitted, obs) - nets.actor.apply(state.actor_params, obs)
    assert float(jnp.abs(error).mean()) < 0.2


def test_critic_target_uses_the_proxy_and_the_proxy_gets_no_critic_gradient(setup):
    nets, td3, state, sample = setup
    batch = sample(jax.random.key(5))
    key = jax.random.key(42)
    key_smooth, _ = jax.random.split(key)
    noise = np.clip(0.2 * np.asarray(jax.random.normal(key_smooth, batch.action.shape)), -0.5, 0.5)
    proxy = make_proxy(nets.actor, CFG)
    next_action = np.clip(np.asarray(proxy.act(state.proxy, batch.next_obs)) + noise, -1, 1)
    q_next = np.asarray(
        nets.critic.apply(state.target_critic_params, batch.next_obs, next_action)
    ).min(0)
    target = np.asarray(batch.reward) + 0.99 * (1 - np.asarray(batch.terminated)) * q_next
    q = np.asarray(nets.critic.apply(state.critic_params, batch.obs, batch.action))
    loss, _ = td3.critic_loss(state.critic_params, state, batch, key)
    np.testing.assert_allclose(float(loss), ((q - target) ** 2).mean(1).sum(), rtol=1e-5)

    def loss_of_proxy(proxy_params):
        moved = state.replace(proxy=state.proxy.replace(params=proxy_params))
        return td3.critic_loss(state.critic_params, moved, batch, key)[0]

    grads = jax.grad(loss_of_proxy)(state.proxy.params)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads))


def test_update_fits_the_proxy_every_critic_step_and_averages_critic_targets_only(setup):
    _, td3, state, sample = setup
    assert state.target_actor_params == {}  # no target actor with the proxy
    new, metrics = jax.jit(lambda s, k: td3.update(s, sample, k, 2))(state, jax.random.key(3))
    # 2 blocks x 2 critic steps x 3 proxy steps = 12 proxy Adam steps.
    assert int(new.proxy.opt_state.count) == 12 and int(new.critic_opt_state.count) == 4
    assert "proxy_loss" in metrics and np.isfinite(float(metrics["proxy_loss"]))
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(new.target_critic_params),
            jax.tree.leaves(state.target_critic_params),
            strict=True,
        )
    ]
    assert all(moved)


def test_snn_target_has_no_proxy_in_its_state(setup):
    nets, _, _, _ = setup
    plain = make_td3(nets, dataclasses.replace(CFG, target_actor="snn"))
    state = init_td3(plain, nets, OBS, CFG)
    assert state.proxy is None and state.target_actor_params != {}

"""TD3 against hand-computed targets and an explicit Python-loop reference of the schedule."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import init_td3

from spikerl_jax.config import CriticConfig, PopSANConfig, TD3Config
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.replay import random_transitions
from spikerl_jax.rl.td3 import make_td3
from spikerl_jax.snn.lif import STEPWISE_FROM_BATCH
from spikerl_jax.snn.popsan import PopSAN, output_drive_penalty

OBS, ACT, LIMIT = 4, 2, 1.0
CFG = TD3Config(batch_size=6, actor_lr=1e-3, critic_lr=1e-3)
TAU = 1 - CFG.polyak


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
    batch = random_transitions(jax.random.key(1), 6, OBS, ACT).replace(
        terminated=jnp.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    )
    return nets, td3, state, batch


def test_critic_target_by_hand(setup):
    nets, td3, state, batch = setup
    key = jax.random.key(42)
    # The documented key use: smoothing noise from the first half of split(key).
    key_smooth, _ = jax.random.split(key)
    noise = np.clip(0.2 * np.asarray(jax.random.normal(key_smooth, (6, ACT))), -0.5, 0.5)
    mu = np.asarray(nets.actor.apply(state.target_actor_params, batch.next_obs))
    next_action = np.clip(mu + noise, -LIMIT, LIMIT)
    q_next = np.asarray(nets.critic.apply(state.target_critic_params, batch.next_obs, next_action))
    r, d = np.asarray(batch.reward), np.asarray(batch.terminated)
    target = r + 0.99 * (1 - d) * q_next.min(0)
    q = np.asarray(nets.critic.apply(state.critic_params, batch.obs, batch.action))
    expected = ((q - target) ** 2).mean(1).sum()
    loss, _ = td3.critic_loss(state.critic_params, state, batch, key)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_terminal_transitions_do_not_bootstrap(setup):
    _, td3, state, batch = setup
    terminated = np.asarray(batch.terminated) == 1

    def loss_with_next_obs_moved(rows):
        next_obs = batch.next_obs.at[rows].add(5.0)
        return float(
            td3.critic_loss(
                state.critic_params, state, batch.replace(next_obs=next_obs), jax.random.key(0)
            )[0]
        )

    base = loss_with_next_obs_moved(np.zeros(6, bool))
    # Terminal rows: the target is the reward alone, whatever the next observation.
    assert loss_with_next_obs_moved(terminated) == base
    # Running (or time-limit truncated, stored as not terminated) rows bootstrap from it.
    for row in np.flatnonzero(~terminated):
        assert loss_with_next_obs_moved(np.arange(6) == row) != base


def test_actor_loss_leaves_critic_untouched(setup):
    nets, td3, state, batch = setup
    grads = jax.grad(td3.actor_loss, argnums=(0, 1))(
        state.actor_params, state.critic_params, batch.obs, None
    )
    assert all(np.abs(np.asarray(g)).sum() > 0 for g in jax.tree.leaves(grads[0]))
    expected = -np.asarray(
        nets.critic.apply(
            state.critic_params, batch.obs, nets.actor.apply(state.actor_params, batch.obs)
        )
    )[0].mean()
    np.testing.assert_allclose(
        float(td3.actor_loss(state.actor_params, state.critic_params, batch.obs, None)),
        expected,
        rtol=1e-6,
    )


def reference_updates(td3, nets, state, sample, key, num_blocks):
    """TD3 as an explicit loop over critic steps with a Python ``if`` for the delay."""
    actor_opt, critic_opt = optax.adam(CFG.actor_lr), optax.adam(CFG.critic_lr)
    s = state  # a fresh state: optax.adam's own states start where it does
    actor_opt_state = actor_opt.init(s.actor_params)
    critic_opt_state = critic_opt.init(s.critic_params)
    critic_keys, actor_keys = [], []
    for kb in jax.random.split(key, num_blocks):
        key_critic, key_actor = jax.random.split(kb)
        critic_keys += list(jax.random.split(key_critic, CFG.policy_delay))
        actor_keys.append(key_actor)
    actor_changes = []
    for i, kc in enumerate(critic_keys, start=1):
        ks, kl = jax.random.split(kc)
        batch = sample(ks)
        g, _ = jax.grad(td3.critic_loss, has_aux=True)(s.critic_params, s, batch, kl)
        upd, critic_opt_state = critic_opt.update(g, critic_opt_state)
        s = s.replace(critic_params=optax.apply_updates(s.critic_params, upd))
        if i % CFG.policy_delay == 0:
            g = jax.grad(td3.actor_loss)(
                s.actor_params, s.critic_params, batch.obs, actor_keys[i // 2 - 1]
            )
            upd, actor_opt_state = actor_opt.update(g, actor_opt_state)
            actor = optax.apply_updates(s.actor_params, upd)
            mix = lambda new, old: TAU * new + (1 - TAU) * old  # noqa: E731
            s = s.replace(
                actor_params=actor,
                target_actor_params=jax.tree.map(mix, actor, s.target_actor_params),
                target_critic_params=jax.tree.map(mix, s.critic_params, s.target_critic_params),
            )
            actor_changes.append(i)
    return s, actor_changes


def test_fused_update_equals_python_loop_with_delay(setup):
    nets, td3, state, batch = setup

    def sample(k):  # a fixed pool of 6; resample rows by key
        idx = jax.random.randint(k, (6,), 0, 6)
        return jax.tree.map(lambda x: x[idx], batch)

    key = jax.random.key(9)
    fused, metrics = jax.jit(lambda s, k: td3.update(s, sample, k, 3))(state, key)
    ref, actor_changes = reference_updates(td3, nets, state, sample, key, 3)
    assert actor_changes == [2, 4, 6]  # actor and targets move on every 2nd critic step only
    assert int(fused.actor_opt_state.count) == 3 and int(fused.critic_opt_state.count) == 6
    for name in ("actor_params", "critic_params", "target_actor_params", "target_critic_params"):
        for a, b in zip(
            jax.tree.leaves(getattr(fused, name)), jax.tree.leaves(getattr(ref, name)), strict=True
        ):
            np.testing.assert_allclose(
                np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=name
            )
    assert set(metrics) == {"critic_loss", "q", "actor_loss", "critic_grad_norm", "actor_grad_norm"}


def test_polyak_update_by_hand(setup):
    _, td3, state, batch = setup

    def sample(k):
        return batch

    new, _ = td3.update(state, sample, jax.random.key(3), 1)
    for online, target, old in (
        (new.actor_params, new.target_actor_params, state.target_actor_params),
        (new.critic_params, new.target_critic_params, state.target_critic_params),
    ):
        for o, t, t0 in zip(
            jax.tree.leaves(online), jax.tree.leaves(target), jax.tree.leaves(old), strict=True
        ):
            np.testing.assert_allclose(
                np.asarray(t), 0.995 * np.asarray(t0) + 0.005 * np.asarray(o), rtol=1e-6, atol=1e-7
            )
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(new.target_actor_params),
            jax.tree.leaves(state.target_actor_params),
            strict=True,
        )
    ]
    assert all(changed)


def test_drive_penalty_adds_to_the_actor_loss_only(setup):
    nets, td3, state, batch = setup
    penalised = make_networks(
        ACT,
        LIMIT,
        dataclasses.replace(nets.actor.config, drive_penalty=3.0),
        CriticConfig(critic_hidden_sizes=(16, 16)),
    )
    weighted = make_td3(penalised, CFG)
    _, trains = nets.actor.apply(state.actor_params, batch.obs, method=PopSAN.spike_trains)
    penalty = float(output_drive_penalty(nets.actor, state.actor_params, trains))
    assert penalty > 0  # this init has output neurons outside the band: the test can fail
    np.testing.assert_allclose(
        float(weighted.actor_loss(state.actor_params, state.critic_params, batch.obs, None)),
        float(td3.actor_loss(state.actor_params, state.critic_params, batch.obs, None))
        + 3.0 * penalty,
        rtol=1e-6,
    )
    key = jax.random.key(5)
    assert float(weighted.critic_loss(state.critic_params, state, batch, key)[0]) == float(
        td3.critic_loss(state.critic_params, state, batch, key)[0]
    )


def test_update_is_the_same_in_both_lif_formulations():
    """From batch 128 the default formulation is timestep by timestep on CPUs
    (``test_default_formulation_follows_the_batch``): its update equals layer by layer's, the
    default before, up to rounding."""
    batch = STEPWISE_FROM_BATCH
    cfg = dataclasses.replace(CFG, batch_size=batch)
    pool = random_transitions(jax.random.key(1), batch, OBS, ACT)

    def updated(layer_by_layer):
        actor = PopSANConfig(
            hidden_sizes=(16, 16), pop_in=3, pop_out=3, timesteps=3, layer_by_layer=layer_by_layer
        )
        nets = make_networks(ACT, LIMIT, actor, CriticConfig(critic_hidden_sizes=(16, 16)))
        td3 = make_td3(nets, cfg)
        state = init_td3(td3, nets, OBS, cfg)
        return state, jax.jit(lambda s: td3.update(s, lambda k: pool, jax.random.key(2), 2)[0])(
            state
        )

    (init, default), (_, layerwise) = updated(None), updated(True)
    for a, b in zip(jax.tree.leaves(default), jax.tree.leaves(layerwise), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # The actor learned (the comparison is not of untouched parameters).
    assert all(
        not np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(default.actor_params), jax.tree.leaves(init.actor_params), strict=True
        )
    )

"""The twin critic and the MLP baseline actor."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikerl_jax.config import PopSANConfig
from spikerl_jax.rl.networks import MLPActor, first_q, make_networks

OBS, ACT = 5, 2


def test_twin_critic_heads_are_independent_and_first_q_is_head_one():
    nets = make_networks(ACT, 1.0)
    obs, act = jnp.ones((4, OBS)), jnp.zeros((4, ACT))
    params = nets.critic.init(jax.random.key(0), obs, act)
    q = nets.critic.apply(params, obs, act)
    assert q.shape == (2, 4) and not np.allclose(np.asarray(q[0]), np.asarray(q[1]))
    np.testing.assert_allclose(
        np.asarray(first_q(nets.critic, params, obs, act)), np.asarray(q[0]), rtol=1e-6
    )
    kernel = params["params"]["q"]["Dense_0"]["kernel"]
    assert kernel.shape == (2, OBS + ACT, 256)


def test_mlp_actor_is_a_bounded_relu_mlp_with_the_actor_hidden_sizes():
    nets = make_networks(ACT, 1.5, PopSANConfig(hidden_sizes=(8, 6)), actor_kind="mlp")
    assert isinstance(nets.actor, MLPActor)
    obs = jax.random.normal(jax.random.key(1), (32, OBS)) * 10
    params = nets.actor.init(jax.random.key(0), obs)
    shapes = {k: v["kernel"].shape for k, v in params["params"]["mlp"].items()}
    assert shapes == {"Dense_0": (OBS, 8), "Dense_1": (8, 6), "Dense_2": (6, ACT)}
    # By hand: relu layers, then 1.5 * tanh.
    x = np.asarray(obs)
    layers = [params["params"]["mlp"][f"Dense_{i}"] for i in range(3)]
    for i, layer in enumerate(layers):
        x = x @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"])
        x = np.maximum(x, 0) if i < 2 else 1.5 * np.tanh(x)
    np.testing.assert_allclose(np.asarray(nets.actor.apply(params, obs)), x, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(nets.actor.apply(params, obs)).max()) <= 1.5
    with pytest.raises(ValueError, match="no spikes"):
        nets.actor.apply(params, obs, return_spike_counts=True)

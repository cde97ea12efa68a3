"""The PopSAN actor as a whole: shapes, bounds, spike counts, both LIF formulations,
gradients, the Poisson encoder."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikerl_jax.config import PopSANConfig
from spikerl_jax.snn.popsan import PopSAN

OBS, ACT = 5, 2
SMALL = PopSANConfig(hidden_sizes=(32, 24), pop_in=4, pop_out=5, timesteps=4)


@pytest.fixture(scope="module")
def actor_and_params():
    actor = PopSAN(ACT, action_limit=1.5, config=SMALL)
    params = actor.init(jax.random.key(0), jnp.zeros((1, OBS)))
    obs = jax.random.normal(jax.random.key(1), (16, OBS))
    return actor, params, obs


def test_actor_shapes_bounds_and_counts(actor_and_params):
    actor, params, obs = actor_and_params
    action = actor.apply(params, obs)
    assert action.shape == (16, ACT) and float(jnp.abs(action).max()) <= 1.5
    action2, counts = actor.apply(params, obs, return_spike_counts=True)
    np.testing.assert_array_equal(np.asarray(action), np.asarray(action2))
    assert {k: v.shape for k, v in counts.items()} == {
        "encoder": (16, OBS * 4),
        "hidden_0": (16, 32),
        "hidden_1": (16, 24),
        "output": (16, ACT * 5),
    }
    for c in counts.values():
        c = np.asarray(c)
        assert c.min() >= 0 and c.max() <= SMALL.timesteps and np.all(c == np.round(c))
    assert float(counts["hidden_0"].mean()) > 0  # the network is not silent


def test_layerwise_actor_equals_stepwise(actor_and_params):
    actor, params, obs = actor_and_params
    stepwise = actor.clone(config=dataclasses.replace(SMALL, layer_by_layer=False))
    a1, c1 = actor.apply(params, obs, return_spike_counts=True)
    a2, c2 = stepwise.apply(params, obs, return_spike_counts=True)
    for name in c1:
        np.testing.assert_array_equal(np.asarray(c1[name]), np.asarray(c2[name]))
    np.testing.assert_allclose(np.asarray(a1), np.asarray(a2), atol=1e-6)


def test_gradients_reach_every_parameter(actor_and_params):
    actor, params, obs = actor_and_params
    grads = jax.grad(lambda p: actor.apply(p, obs).sum())(params)["params"]
    flat = {
        "/".join(k.key for k in path): v for path, v in jax.tree_util.tree_leaves_with_path(grads)
    }
    expected = {"encoder/mean", "encoder/std", "decoder/weight", "decoder/bias"}
    expected |= {f"snn/{p}_{i}" for p in ("kernel", "bias") for i in range(3)}
    assert set(flat) == expected
    for name, g in flat.items():
        assert np.abs(np.asarray(g)).sum() > 0, f"no gradient reaches {name}"


def test_poisson_actor_needs_key_and_is_reproducible():
    actor = PopSAN(ACT, config=dataclasses.replace(SMALL, encoder="poisson"))
    obs = jax.random.normal(jax.random.key(1), (16, OBS))
    params = actor.init(jax.random.key(0), obs, jax.random.key(5))
    a = actor.apply(params, obs, jax.random.key(3))
    np.testing.assert_array_equal(
        np.asarray(a), np.asarray(actor.apply(params, obs, jax.random.key(3)))
    )
    assert not np.array_equal(
        np.asarray(a), np.asarray(actor.apply(params, obs, jax.random.key(4)))
    )
    with pytest.raises(ValueError, match="PRNG key"):
        actor.apply(params, obs)

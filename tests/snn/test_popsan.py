"""The PopSAN actor as a whole: shapes, bounds, spike counts, both LIF formulations,
gradients, the Poisson encoder."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikerl_jax.config import PopSANConfig
from spikerl_jax.snn.lif import STEPWISE_FROM_BATCH, lif_scan
from spikerl_jax.snn.popsan import PopSAN, drive_band, make_neuron, output_drive_penalty

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
    layerwise = actor.clone(config=dataclasses.replace(SMALL, layer_by_layer=True))
    stepwise = actor.clone(config=dataclasses.replace(SMALL, layer_by_layer=False))
    a1, c1 = layerwise.apply(params, obs, return_spike_counts=True)
    a2, c2 = stepwise.apply(params, obs, return_spike_counts=True)
    for name in c1:
        np.testing.assert_array_equal(np.asarray(c1[name]), np.asarray(c2[name]))
    np.testing.assert_allclose(np.asarray(a1), np.asarray(a2), atol=1e-6)


@pytest.mark.parametrize("batch", [1, STEPWISE_FROM_BATCH - 1, STEPWISE_FROM_BATCH, 300])
def test_default_formulation_follows_the_batch(actor_and_params, batch):
    """The default (``layer_by_layer=None``) runs layer by layer for acting-sized batches (one
    ``(T, B, n)`` matmul per layer) and timestep by timestep for large ones (``(B, n)``)."""
    actor, params, _ = actor_and_params
    jaxpr = str(jax.make_jaxpr(actor.apply)(params, jnp.zeros((batch, OBS))))
    shapes = re.findall(r"f32\[([\d,]+)\] = dot_general", jaxpr)
    assert len(shapes) == len(SMALL.hidden_sizes) + 1
    stepwise = batch >= STEPWISE_FROM_BATCH
    lead = (batch,) if stepwise else (SMALL.timesteps, batch)
    assert all(tuple(map(int, s.split(",")))[:-1] == lead for s in shapes), shapes


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


def test_drive_band_bounds_the_drives_that_fire_some_timesteps():
    """Checked against the LIF scan itself: constant drives just inside the band fire at some
    timesteps and not at all, just outside at none or at every one."""
    neuron = make_neuron(SMALL)
    low, high = drive_band(neuron, SMALL.timesteps)
    drives = jnp.array([0.99 * low, 1.01 * low, 0.99 * high, 1.01 * high])
    spikes_TBN, _ = lif_scan(neuron, jnp.broadcast_to(drives, (SMALL.timesteps, 1, 4)))
    counts = np.asarray(spikes_TBN.sum(0))[0]
    np.testing.assert_array_equal(counts == 0, [True, False, False, False])
    np.testing.assert_array_equal(counts == SMALL.timesteps, [False, False, False, True])


def test_output_drive_penalty_by_hand_and_its_gradient_reaches_stuck_neurons(actor_and_params):
    actor, params, obs = actor_and_params
    low, high = drive_band(make_neuron(SMALL), SMALL.timesteps)
    n_out = ACT * SMALL.pop_out
    last = len(SMALL.hidden_sizes)

    def with_output_layer(bias):
        snn = {
            **params["params"]["snn"],
            f"kernel_{last}": jnp.zeros((24, n_out)),
            f"bias_{last}": jnp.asarray(bias, jnp.float32),
        }
        return {"params": {**params["params"], "snn": snn}}

    def penalty(p):
        _, trains = actor.apply(p, obs, method=PopSAN.spike_trains)
        return output_drive_penalty(actor, p, trains)

    # With no input weights the drive is the bias: inside the band costs nothing; 0.5 above
    # it on half the neurons and 0.25 below on the other half, the mean of the squares.
    assert float(penalty(with_output_layer(jnp.full(n_out, (low + high) / 2)))) == 0.0
    stuck = np.r_[np.full(n_out // 2, high + 0.5), np.full(n_out - n_out // 2, low - 0.25)]
    expected = (0.25 * (n_out // 2) + 0.0625 * (n_out - n_out // 2)) / n_out
    np.testing.assert_allclose(float(penalty(with_output_layer(stuck))), expected, rtol=1e-6)

    # Stuck neurons pass no gradient from the actions (the rectangular surrogate is 0 that far
    # from the threshold); the penalty's gradient moves each back towards the band.
    stuck_params = with_output_layer(stuck)
    grad_action = jax.grad(lambda p: actor.apply(p, obs).sum())(stuck_params)
    grad_penalty = jax.grad(penalty)(stuck_params)
    bias_grad = lambda g: np.asarray(g["params"]["snn"][f"bias_{last}"])  # noqa: E731
    np.testing.assert_array_equal(bias_grad(grad_action), 0.0)
    np.testing.assert_array_equal(np.sign(bias_grad(grad_penalty)), np.sign(stuck - high / 2))

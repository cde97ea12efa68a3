"""Population encoder and decoder against analytic references."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.snn.popcode import (
    ENCODER_THRESHOLD,
    PopulationDecoder,
    PopulationEncoder,
    gaussian_activation,
    poisson_spikes,
    regular_spikes,
)


def test_gaussian_activation_closed_form():
    obs = np.array([[0.3, -1.2]], np.float32)
    mean = np.array([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]], np.float32)
    std = np.full((2, 3), math.sqrt(0.15), np.float32)
    expected = np.exp(-((obs[:, :, None] - mean) ** 2) / (2 * 0.15)).reshape(1, 6)
    np.testing.assert_allclose(np.asarray(gaussian_activation(obs, mean, std)), expected, rtol=1e-6)


def integrate_and_subtract(a, timesteps):
    """PopSAN's regular encoder as an explicit float32 loop."""
    threshold = np.float32(ENCODER_THRESHOLD)
    v, spikes = np.zeros_like(a), []
    for _ in range(timesteps):
        v = v + a
        s = (v > threshold).astype(np.float32)
        v = v - threshold * s
        spikes.append(s)
    return np.stack(spikes)


def test_regular_spikes_match_loop_and_analytic_count():
    timesteps = 5
    a = np.random.default_rng(0).uniform(0, 1, 4000).astype(np.float32)
    a[:3] = [0.0, 1.0, ENCODER_THRESHOLD]  # silent, always firing, never crossing strictly
    # Integrating a for t steps and subtracting 0.999 per spike fires the n-th spike as soon
    # as t*a > 0.999*n, so the count after T steps is #{n >= 1 : 0.999 n < T a} (at most T).
    threshold = np.float64(np.float32(ENCODER_THRESHOLD))  # the value the float32 code compares
    ratio = timesteps * a.astype(np.float64) / threshold
    analytic = np.clip(np.ceil(ratio) - 1, 0, timesteps)
    # Float32 sums cannot decide exact ties: leave out activations within 1e-4 of one.
    keep = np.ones_like(a, dtype=bool)
    for t in range(1, timesteps + 1):
        r = t * a.astype(np.float64) / threshold
        keep &= np.abs(r - np.round(r)) > 1e-4
    keep[:3] = True
    spikes = np.asarray(regular_spikes(jnp.asarray(a)[None], timesteps))[:, 0]
    np.testing.assert_array_equal(spikes[:, keep], integrate_and_subtract(a, timesteps)[:, keep])
    counts = spikes.sum(0)
    np.testing.assert_array_equal(counts[keep], analytic[keep])
    assert counts[0] == 0 and counts[1] == timesteps and counts[2] == timesteps - 1
    assert keep.mean() > 0.99


def test_regular_spikes_gradient_is_straight_through():
    a = jnp.array([[0.1, 0.5, 0.9]])
    grad = jax.grad(lambda a: (regular_spikes(a, 5) * jnp.arange(1.0, 6.0)[:, None, None]).sum())(a)
    np.testing.assert_allclose(
        np.asarray(grad), 15.0
    )  # sum over t of t * d s_t / d a = 1 + ... + 5


def test_poisson_spikes_reproducible_and_rate_matches_activation():
    a = jnp.linspace(0.0, 1.0, 21)
    batch, timesteps = 4000, 5
    act_BN = jnp.broadcast_to(a, (batch, a.shape[0]))
    s1 = poisson_spikes(act_BN, timesteps, jax.random.key(7))
    s2 = poisson_spikes(act_BN, timesteps, jax.random.key(7))
    s3 = poisson_spikes(act_BN, timesteps, jax.random.key(8))
    np.testing.assert_array_equal(np.asarray(s1), np.asarray(s2))
    assert not np.array_equal(np.asarray(s1), np.asarray(s3))
    assert set(np.unique(np.asarray(s1))) <= {0.0, 1.0}
    # Bernoulli(a) mean over n = 20,000 draws: 5 standard errors, plus float slack.
    n = batch * timesteps
    rate = np.asarray(s1.mean((0, 1)))
    tolerance = 5 * np.sqrt(np.asarray(a) * (1 - np.asarray(a)) / n) + 1e-6
    np.testing.assert_array_less(np.abs(rate - np.asarray(a)), tolerance)


def test_encoder_parameters_and_gradients():
    enc = PopulationEncoder(pop_size=10, timesteps=5)
    obs = jax.random.normal(jax.random.key(0), (8, 3))
    params = enc.init(jax.random.key(1), obs)
    np.testing.assert_allclose(
        np.asarray(params["params"]["mean"][1]), np.linspace(-3, 3, 10), atol=1e-6
    )
    np.testing.assert_allclose(np.asarray(params["params"]["std"]), math.sqrt(0.15), rtol=1e-6)
    assert enc.apply(params, obs).shape == (5, 8, 30)
    grads = jax.grad(lambda p: (enc.apply(p, obs) * jnp.arange(30)).sum())(params)["params"]
    assert np.abs(np.asarray(grads["mean"])).sum() > 0
    assert np.abs(np.asarray(grads["std"])).sum() > 0


def test_decoder_is_grouped_per_action():
    dec = PopulationDecoder(action_dim=3, pop_size=4, action_limit=2.0)
    spikes = (jax.random.uniform(jax.random.key(0), (5, 6, 12)) < 0.5).astype(jnp.float32)
    params = dec.init(jax.random.key(1), spikes)
    # Jacobian of each action w.r.t. the mean firing rates: block diagonal.
    rates = spikes.mean(0)
    jac = jax.jacobian(lambda r: dec.apply(params, jnp.broadcast_to(r, (5, *r.shape))))(rates)
    jac = np.asarray(jac)  # (B, A, B, A*P)
    for a in range(3):
        own = slice(4 * a, 4 * a + 4)
        others = np.delete(np.arange(12), np.arange(12)[own])
        assert np.abs(jac[:, a, :, own]).sum() > 0
        np.testing.assert_array_equal(jac[:, a][:, :, others], 0.0)
    # Flipping another action's spikes leaves this action's output unchanged.
    flipped = spikes.at[:, :, 4:].set(1.0 - spikes[:, :, 4:])
    out, out_flipped = dec.apply(params, spikes), dec.apply(params, flipped)
    np.testing.assert_array_equal(np.asarray(out[:, 0]), np.asarray(out_flipped[:, 0]))
    assert np.abs(np.asarray(out)).max() <= 2.0


def test_decoder_closed_form():
    dec = PopulationDecoder(action_dim=2, pop_size=3, action_limit=0.4)
    spikes = (jax.random.uniform(jax.random.key(3), (4, 5, 6)) < 0.5).astype(jnp.float32)
    params = dec.init(jax.random.key(1), spikes)
    w, b = np.asarray(params["params"]["weight"]), np.asarray(params["params"]["bias"])
    rate = np.asarray(spikes).mean(0).reshape(5, 2, 3)
    expected = 0.4 * np.tanh((rate * w).sum(-1) + b)
    np.testing.assert_allclose(np.asarray(dec.apply(params, spikes)), expected, rtol=1e-5)

"""The spike function: an exact Heaviside forward, surrogate gradients against closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikerl_jax.snn.surrogate import ArcTan, FastSigmoid, Rectangular, spike

CLOSED_FORMS = [
    (Rectangular(0.5), lambda x: (np.abs(x) < 0.5).astype(np.float32)),
    (Rectangular(0.2), lambda x: (np.abs(x) < 0.2).astype(np.float32)),
    (FastSigmoid(10.0), lambda x: 1.0 / (1.0 + 10.0 * np.abs(x)) ** 2),
    (FastSigmoid(3.0), lambda x: 1.0 / (1.0 + 3.0 * np.abs(x)) ** 2),
    (ArcTan(2.0), lambda x: 1.0 / (1.0 + (math.pi * x) ** 2)),
    (ArcTan(4.0), lambda x: 2.0 / (1.0 + (2 * math.pi * x) ** 2)),
]


@pytest.mark.parametrize("surrogate, derivative", CLOSED_FORMS)
def test_spike_forward_is_heaviside_and_grad_is_closed_form(surrogate, derivative):
    v = np.random.default_rng(0).uniform(-2, 2, 1000).astype(np.float32)
    threshold = 0.5
    out = spike(surrogate, jnp.asarray(v) - threshold)
    np.testing.assert_array_equal(np.asarray(out), (v > threshold).astype(np.float32))
    grad = jax.vmap(jax.grad(lambda x: spike(surrogate, x - threshold)))(jnp.asarray(v))
    np.testing.assert_allclose(np.asarray(grad), derivative(v - threshold), rtol=1e-5, atol=1e-7)


def test_rectangular_grad_is_zero_outside_window():
    v = jnp.array([-1.0, 0.0, 0.0001, 0.5, 0.9999, 1.0, 1.5, 3.0])
    grad = jax.vmap(jax.grad(lambda x: spike(Rectangular(0.5), x - 0.5)))(v)
    np.testing.assert_array_equal(np.asarray(grad), [0, 0, 1, 1, 1, 0, 0, 0])
    assert float(spike(Rectangular(), jnp.float32(0.0))) == 0.0  # H(0) = 0: v == threshold

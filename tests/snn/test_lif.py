"""LIF dynamics against an explicit float64 NumPy loop; both formulations of the spiking MLP
(which share the neuron step) against it and each other."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikerl_jax.snn.lif import (
    LIFNeuron,
    LIFState,
    SpikingMLP,
    lif_scan,
    lif_step,
    spiking_mlp_layerwise,
    spiking_mlp_stepwise,
)


def lif_reference(neuron, drive_TBN):
    """The LIF equations as an explicit float64 Python loop."""
    drive = np.asarray(drive_TBN, np.float64)
    c = v = s = np.zeros(drive.shape[1:])
    spikes, volts = [], []
    for t in range(drive.shape[0]):
        c = neuron.current_decay * c + drive[t]
        v = neuron.voltage_decay * v * (1 - s) + c
        s = (v > neuron.threshold).astype(np.float64)
        spikes.append(s)
        volts.append(v)
    return np.stack(spikes), np.stack(volts)


def mlp_reference(neuron, layers, spikes_TBN):
    out, x = [], np.asarray(spikes_TBN, np.float64)
    for kernel, bias in layers:
        x, _ = lif_reference(neuron, x @ np.asarray(kernel, np.float64) + np.asarray(bias))
        out.append(x)
    return out


def test_lif_scan_matches_python_loop():
    neuron = LIFNeuron()
    drive = jax.random.uniform(jax.random.key(0), (8, 16, 32), minval=-0.5, maxval=1.0)
    spikes, volts = lif_scan(neuron, drive)
    ref_spikes, ref_volts = lif_reference(neuron, drive)
    assert 0.05 < ref_spikes.mean() < 0.95  # the test exercises both spiking and resetting
    np.testing.assert_array_equal(np.asarray(spikes), ref_spikes)
    np.testing.assert_allclose(np.asarray(volts), ref_volts, atol=1e-6)


@pytest.fixture(scope="module")
def random_layers():
    keys = jax.random.split(jax.random.key(1), 6)
    sizes = [40, 64, 48, 20]
    layers = [
        (
            jax.random.normal(keys[2 * i], (m, n)) * 0.3,
            jax.random.normal(keys[2 * i + 1], (n,)) * 0.1,
        )
        for i, (m, n) in enumerate(itertools.pairwise(sizes))
    ]
    spikes_in = (jax.random.uniform(jax.random.key(2), (5, 12, 40)) < 0.4).astype(jnp.float32)
    return layers, spikes_in


def test_layerwise_and_stepwise_mlp_match_reference(random_layers):
    layers, spikes_in = random_layers
    neuron = LIFNeuron()
    ref = mlp_reference(neuron, layers, spikes_in)
    layerwise = spiking_mlp_layerwise(neuron, layers, spikes_in)
    stepwise = spiking_mlp_stepwise(neuron, layers, spikes_in)
    for ref_s, lw, sw in zip(ref, layerwise, stepwise, strict=True):
        assert 0.02 < ref_s.mean() < 0.98
        np.testing.assert_array_equal(np.asarray(lw), ref_s)
        np.testing.assert_array_equal(np.asarray(sw), ref_s)


def test_layerwise_and_stepwise_gradients_agree(random_layers):
    layers, spikes_in = random_layers
    neuron = LIFNeuron()

    def loss(layers, run):
        return sum((s * jnp.arange(s.shape[-1])).sum() for s in run(neuron, layers, spikes_in))

    g_layer = jax.grad(loss)(layers, spiking_mlp_layerwise)
    g_step = jax.grad(loss)(layers, spiking_mlp_stepwise)
    for a, b in zip(jax.tree.leaves(g_layer), jax.tree.leaves(g_step), strict=True):
        assert np.abs(np.asarray(a)).sum() > 0
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_spiking_mlp_module_layout():
    mlp = SpikingMLP(layer_sizes=(8, 4))
    x = jnp.ones((3, 2, 5))
    params = mlp.init(jax.random.key(0), x)
    shapes = jax.tree.map(jnp.shape, params)["params"]
    assert shapes == {"kernel_0": (5, 8), "bias_0": (8,), "kernel_1": (8, 4), "bias_1": (4,)}
    bound = 1 / math.sqrt(5)  # PyTorch's nn.Linear default init
    assert float(jnp.abs(params["params"]["kernel_0"]).max()) <= bound
    assert [o.shape for o in mlp.apply(params, x)] == [(3, 2, 8), (3, 2, 4)]


def test_neuron_step_matches_the_equations_once():
    neuron = LIFNeuron()
    state = LIFState(jnp.array([0.2, 0.0]), jnp.array([0.4, 0.6]), jnp.array([0.0, 1.0]))
    new, spikes = lif_step(neuron, state, jnp.array([0.3, 0.1]))
    # c = 0.5 c + drive; v = 0.75 v (1 - s) + c; s = v > 0.5
    np.testing.assert_allclose(np.asarray(new.current), [0.4, 0.1], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(new.voltage), [0.7, 0.1], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(spikes), [1.0, 0.0])

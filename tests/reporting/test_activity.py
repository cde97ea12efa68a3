"""Spike statistics: SynOps and firing rates against hand counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikerl_jax.config import PopSANConfig
from spikerl_jax.reporting.activity import ann_macs, neuron_saturation, spike_report
from spikerl_jax.snn.popsan import PopSAN

TINY = PopSANConfig(pop_in=2, hidden_sizes=(3,), pop_out=2, timesteps=3)  # obs 2, action 1


def test_report_of_given_counts_by_hand():
    # 2 inferences: encoder (4 neurons) 8 spikes, hidden (3) 4, output (2) 2.
    report = spike_report(
        {"encoder": 8, "hidden_0": 4, "output": 2}, 2, 2, 1, TINY, pj_per_synop=0.9, pj_per_mac=4.6
    )
    # Per inference: 4 encoder spikes reach 3 hidden synapses each, 2 hidden spikes reach 2
    # output synapses each, 1 output spike reaches its action's decoder sum.
    assert report["synops_per_inference"] == pytest.approx(4 * 3 + 2 * 2 + 1 * 1)
    assert report["ann_macs_per_inference"] == 4 * 3 + 3 * 2 + 2 == ann_macs(2, 1, TINY)
    rates = {k: v["firing_rate"] for k, v in report["layers"].items()}
    assert rates == pytest.approx({"encoder": 4 / 12, "hidden_0": 2 / 9, "output": 1 / 6})
    assert report["snn_energy_pj_per_inference"] == pytest.approx(17 * 0.9)
    assert report["ann_energy_pj_per_inference"] == pytest.approx(20 * 4.6)
    assert report["ann_over_snn_energy"] == pytest.approx(20 * 4.6 / (17 * 0.9))


def test_synops_equal_a_count_over_every_synapse_of_the_parameters():
    """The reported SynOps of real spikes equal a loop over each weight that a spike
    crosses, with the connectivity read from the parameters, not from the config."""
    actor = PopSAN(1, config=TINY)
    params = actor.init(jax.random.key(0), jnp.zeros((1, 2)))
    obs = jax.random.normal(jax.random.key(1), (5, 2)) * 2
    _, counts = actor.apply(params, obs, return_spike_counts=True)
    counts = {k: np.asarray(v) for k, v in counts.items()}  # (5, neurons) spikes over T
    p = params["params"]
    by_hand = 0.0
    layers = [("encoder", p["snn"]["kernel_0"]), ("hidden_0", p["snn"]["kernel_1"])]
    for layer, kernel in layers:
        for b in range(5):
            for i in range(kernel.shape[0]):
                for _j in range(kernel.shape[1]):
                    by_hand += counts[layer][b, i]
    actions, pop_out = p["decoder"]["weight"].shape
    for b in range(5):
        for a in range(actions):
            for k in range(pop_out):
                by_hand += counts["output"][b, a * pop_out + k]
    assert by_hand > 0
    totals = {k: float(v.sum()) for k, v in counts.items()}
    report = spike_report(totals, 5, 2, 1, TINY)
    assert report["synops_per_inference"] == pytest.approx(by_hand / 5)


def test_neuron_saturation_counts_saturated_silent_and_varying_neurons():
    T, B = 5, 4
    spikes = np.zeros((T, B, 4), np.float32)
    spikes[:, :, 0] = 1  # fires at every timestep for every observation
    spikes[0, 0, 2] = 1  # fires once, for the first observation only
    spikes[1:3, :, 3] = 1  # twice for every observation: constant, neither extreme
    out = neuron_saturation({"output": spikes}, T)["output"]
    assert out == pytest.approx(
        {
            "firing_rate": (B * T + 1 + 2 * B) / (T * B * 4),
            "saturated": 0.25,
            "silent": 0.25,
            "varies": 0.25,
        }
    )

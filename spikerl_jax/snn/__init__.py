"""Spiking networks: surrogate spikes, the LIF neuron, population coding and PopSAN."""

from spikerl_jax.snn.lif import LIFNeuron, SpikingMLP, lif_scan, lif_step
from spikerl_jax.snn.popcode import PopulationDecoder, PopulationEncoder
from spikerl_jax.snn.popsan import PopSAN, layer_names
from spikerl_jax.snn.surrogate import make_surrogate, spike

__all__ = [
    "LIFNeuron",
    "PopSAN",
    "PopulationDecoder",
    "PopulationEncoder",
    "SpikingMLP",
    "layer_names",
    "lif_scan",
    "lif_step",
    "make_surrogate",
    "spike",
]

"""Spike activity of the PopSAN actor: firing rates, synaptic operations, an energy estimate.

A synaptic operation (SynOp) is one spike arriving at one synapse: on neuromorphic hardware it
costs one accumulate. Per inference (``T`` timesteps) the actor performs

    SynOps = sum over spiking layers l of spikes(l) * fan_out(l)

with the encoder's spikes fanning out to the first hidden layer, each hidden layer's to the
next, and each output neuron's spike to its one action's decoder sum (fan-out 1). The
same-size ANN (the same weight matrices, one dense pass) needs

    MACs = (D*P_in)*H_0 + H_0*H_1 + ... + H_last*(A*P_out) + A*P_out (decoder).

The population encoder's receptive fields are the same computation in both and not counted.

Energy per operation defaults to the 45 nm CMOS figures of M. Horowitz, "Computing's energy
problem (and what we can do about it)", ISSCC 2014: a 32-bit float add 0.9 pJ (one SynOp) and
a 32-bit float multiply 3.7 pJ + add 0.9 pJ = 4.6 pJ (one MAC). These are the figures most
SNN energy estimates use; the estimate ignores memory access, which often dominates on real
chips, so treat the ratio as an operation-count comparison.
"""

from __future__ import annotations

import numpy as np

from spikerl_jax.config import PJ_PER_MAC, PJ_PER_SYNOP, PopSANConfig
from spikerl_jax.snn.popsan import layer_names


def layer_shapes(obs_dim: int, action_dim: int, cfg: PopSANConfig) -> dict[str, tuple[int, int]]:
    """``{layer: (neurons, fan_out)}`` of each spiking layer."""
    widths = [obs_dim * cfg.pop_in, *cfg.hidden_sizes, action_dim * cfg.pop_out]
    fan_outs = [*widths[1:], 1]  # an output neuron feeds its action's decoder sum only
    return dict(zip(layer_names(cfg), zip(widths, fan_outs, strict=True), strict=True))


def ann_macs(obs_dim: int, action_dim: int, cfg: PopSANConfig) -> int:
    """Multiply-accumulates of one pass of the same-size non-spiking network."""
    # Every synaptic layer's weight matrix is (neurons x fan_out) of the layer feeding it.
    return sum(n * fan_out for n, fan_out in layer_shapes(obs_dim, action_dim, cfg).values())


def spike_report(
    spike_totals: dict[str, float],
    inferences: int,
    obs_dim: int,
    action_dim: int,
    cfg: PopSANConfig,
    pj_per_synop: float = PJ_PER_SYNOP,
    pj_per_mac: float = PJ_PER_MAC,
) -> dict:
    """Firing rates, SynOps and energy per inference from spike counts over many inferences.

    Args:
      spike_totals: ``{layer: spikes summed over neurons, timesteps and inferences}``.
      inferences: how many single-observation actor calls the totals cover.
      obs_dim, action_dim, cfg: the actor's shape.
      pj_per_synop, pj_per_mac: energy per operation in picojoules.

    Returns:
      ``layers`` (per layer: neurons, fan_out, spikes_per_inference, firing_rate in spikes per
      neuron per timestep), ``synops_per_inference``, ``ann_macs_per_inference``, the energy
      of each in pJ and their ratio.
    """
    if inferences <= 0:
        raise ValueError("spike statistics need at least one inference")
    layers = {}
    synops = 0.0
    for name, (neurons, fan_out) in layer_shapes(obs_dim, action_dim, cfg).items():
        per_inference = spike_totals[name] / inferences
        synops += per_inference * fan_out
        layers[name] = {
            "neurons": neurons,
            "fan_out": fan_out,
            "spikes_per_inference": per_inference,
            "firing_rate": per_inference / (neurons * cfg.timesteps),
        }
    macs = ann_macs(obs_dim, action_dim, cfg)
    snn_pj, ann_pj = synops * pj_per_synop, macs * pj_per_mac
    return {
        "inferences": inferences,
        "timesteps": cfg.timesteps,
        "layers": layers,
        "synops_per_inference": synops,
        "ann_macs_per_inference": macs,
        "pj_per_synop": pj_per_synop,
        "pj_per_mac": pj_per_mac,
        "snn_energy_pj_per_inference": snn_pj,
        "ann_energy_pj_per_inference": ann_pj,
        "ann_over_snn_energy": ann_pj / snn_pj if snn_pj else None,
    }


def neuron_saturation(trains: dict, timesteps: int) -> dict[str, dict[str, float]]:
    """How much each spiking layer still tells its observations apart.

    A neuron that fires at every timestep for every observation (saturated) or never (silent)
    carries no information about the observation, and the rectangular surrogate gradient,
    nonzero only near the threshold, hardly reaches it: when a whole output population is in
    that state the action is constant and the actor stops learning (docs/learning.md).

    Args:
      trains: ``{layer: (T, B, N) spikes}`` over ``B`` observations (``Policy.spike_trains``).
      timesteps: ``T``.

    Returns:
      Per layer: ``firing_rate`` (spikes per neuron per timestep), and the fractions of its
      neurons that are ``saturated``, ``silent``, or whose spike count ``varies`` across the
      observations.
    """
    out = {}
    for layer, spikes in trains.items():
        counts = np.asarray(spikes).sum(0)  # (B, N)
        out[layer] = {
            "firing_rate": float(counts.mean() / timesteps),
            "saturated": float((counts == timesteps).all(0).mean()),
            "silent": float((counts == 0).all(0).mean()),
            "varies": float((counts != counts[:1]).any(0).mean()),
        }
    return out

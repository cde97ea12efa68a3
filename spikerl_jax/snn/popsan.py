"""PopSAN: the population-coded spiking actor (encoder -> LIF layers -> grouped decoder).

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims, ``T`` spike timesteps.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from spikerl_jax.config import PopSANConfig
from spikerl_jax.precision import get_policy
from spikerl_jax.snn.lif import LIFNeuron, SpikingMLP
from spikerl_jax.snn.popcode import PopulationDecoder, PopulationEncoder
from spikerl_jax.snn.surrogate import make_surrogate


def layer_names(cfg: PopSANConfig) -> list[str]:
    """The spiking layers in order, as ``PopSAN(..., return_spike_counts=True)`` names them."""
    return ["encoder", *(f"hidden_{i}" for i in range(len(cfg.hidden_sizes))), "output"]


def make_neuron(cfg: PopSANConfig) -> LIFNeuron:
    """The LIF constants and surrogate of ``cfg``."""
    return LIFNeuron(
        current_decay=cfg.current_decay,
        voltage_decay=cfg.voltage_decay,
        threshold=cfg.threshold,
        surrogate=make_surrogate(cfg.surrogate, cfg.surrogate_param),
    )


class PopSAN(nn.Module):
    """Population-coded spiking actor: encoder -> LIF layers -> grouped decoder.

    Attributes:
      action_dim: ``A``.
      action_limit: actions lie in ``[-action_limit, action_limit]``.
      config: architecture, neuron constants and LIF formulation.
    """

    action_dim: int
    action_limit: float = 1.0
    config: PopSANConfig = PopSANConfig()

    def __call__(
        self, obs_BD: jax.Array, key: jax.Array | None = None, return_spike_counts: bool = False
    ):
        """Maps normalized observations ``(B, D)`` to actions ``(B, A)``.

        Args:
          obs_BD: normalized observations.
          key: PRNG key for the Poisson encoder (unused by the regular one).
          return_spike_counts: also return each layer's spike count over ``T`` per neuron,
            ``{"encoder": (B, D*P_in), "hidden_0": (B, H0), ..., "output": (B, A*P_out)}``.
            A static flag: the plain forward computes no counts.
        """
        action, spikes = self.spike_trains(obs_BD, key)
        if not return_spike_counts:
            return action
        return action, {name: s.sum(0) for name, s in spikes.items()}

    @nn.compact
    def spike_trains(self, obs_BD: jax.Array, key: jax.Array | None = None):
        """Actions ``(B, A)`` and every layer's spikes over time ``{layer: (T, B, N)}`` (for
        rasters and exports; ``__call__`` is this with counts or nothing)."""
        cfg = self.config
        policy = get_policy(cfg.actor_precision)
        spikes_in = PopulationEncoder(
            pop_size=cfg.pop_in,
            timesteps=cfg.timesteps,
            mean_range=cfg.encoder_mean_range,
            std=cfg.encoder_std,
            mode=cfg.encoder,
            param_dtype=policy.param,
            name="encoder",
        )(obs_BD, key)
        layer_spikes = SpikingMLP(
            layer_sizes=(*cfg.hidden_sizes, self.action_dim * cfg.pop_out),
            neuron=make_neuron(cfg),
            layerwise=cfg.layer_by_layer,
            precision=cfg.actor_precision,
            name="snn",
        )(spikes_in)
        decoder = PopulationDecoder(
            self.action_dim,
            cfg.pop_out,
            self.action_limit,
            param_dtype=policy.param,
            name="decoder",
        )
        action = decoder(layer_spikes[-1])
        trains = [spikes_in, *layer_spikes]
        return action, dict(zip(layer_names(cfg), trains, strict=True))

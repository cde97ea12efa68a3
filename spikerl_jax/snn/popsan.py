"""PopSAN: the population-coded spiking actor (encoder -> LIF layers -> grouped decoder).

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims, ``T`` spike timesteps.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from spikerl_jax.config import PopSANConfig
from spikerl_jax.precision import get_precision
from spikerl_jax.snn.lif import LIFNeuron, SpikingMLP, lif_scan
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


def drive_band(neuron: LIFNeuron, timesteps: int) -> tuple[float, float]:
    """The constant input drives ``(low, high)`` under which a neuron starting at rest fires
    at some of ``timesteps`` but not at all of them.

    Above ``high`` (the threshold) it fires at the first timestep and, its current never
    falling below the drive, at every one after. Without a spike the membrane is linear in a
    constant drive ``d``: ``v_t = k_t d``, so it reaches the threshold within ``timesteps``
    only for ``d`` from ``low = threshold / max_t k_t`` up; under ``low`` it never fires.
    """
    # k_t from the LIF scan itself, driven too weakly to fire (k_t <= t^2 for decays <= 1).
    probe = neuron.threshold / (2 * timesteps**2)
    with jax.ensure_compile_time_eval():  # constants, also when called inside a trace
        _, voltages = lif_scan(neuron, jnp.full((timesteps, 1, 1), probe, jnp.float32))
        gain = float(voltages.max()) / probe
    return neuron.threshold / gain, neuron.threshold


def output_drive_penalty(
    actor: PopSAN, params, trains: dict[str, jax.Array], all_mean: Callable = lambda x: x
) -> jax.Array:
    """Mean squared distance of each output neuron's mean input drive from ``drive_band``.

    A neuron whose drive stays above the band for every state fires at every timestep, one
    below it never fires: either way its spike count, and so the decoded action, ignores the
    state, and the surrogate passes no gradient that could move it back. The mean drive over
    the batch and time is linear in the weights, so this penalty's gradient reaches them
    directly. Neurons inside the band (and those that vary around it) cost nothing.

    Args:
      actor: the PopSAN module.
      params: its parameters.
      trains: ``actor.apply(params, obs, key, method=PopSAN.spike_trains)[1]``.
      all_mean: the mean over data-parallel devices (identity on one device). The penalty
        is then that of the global batch's mean drive, and the devices' averaged gradients
        are its exact gradient, as one device holding the whole batch would compute.

    Returns:
      A scalar, 0 when every output neuron's mean drive lies in the band.
    """
    cfg = actor.config
    last = len(cfg.hidden_sizes)
    snn = params["params"]["snn"]
    # mean_{T,B}(s @ W + b) = mean_{T,B}(s) @ W + b: one (n_in,) @ (n_in, N) product.
    rate_in = trains[f"hidden_{last - 1}"].mean((0, 1))
    kernel, bias = (snn[f"{name}_{last}"].astype(jnp.float32) for name in ("kernel", "bias"))
    drive_N = rate_in @ kernel + bias
    # The global batch's mean drive as the value, this device's share as the gradient path:
    # averaging the devices' gradients then gives the gradient of the global penalty.
    drive_N = drive_N + jax.lax.stop_gradient(all_mean(drive_N) - drive_N)
    low, high = drive_band(make_neuron(cfg), cfg.timesteps)
    return jnp.mean(jax.nn.relu(drive_N - high) ** 2 + jax.nn.relu(low - drive_N) ** 2)


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
        self,
        obs_BD: jax.Array,
        key: jax.Array | None = None,
        return_spike_counts: bool = False,
        encoder_std: jax.Array | None = None,
        squash: bool = True,
    ):
        """Maps normalized observations ``(B, D)`` to actions ``(B, A)``.

        Args:
          obs_BD: normalized observations.
          key: PRNG key for the Poisson encoder (unused by the regular one).
          return_spike_counts: also return each layer's spike count over ``T`` per neuron,
            ``{"encoder": (B, D*P_in), "hidden_0": (B, H0), ..., "output": (B, A*P_out)}``.
            A static flag: the plain forward computes no counts.
          encoder_std: the receptive fields' initial width when the parameters are created
            (None: the config's).
          squash: False: the decoder's sums before tanh and the limit (``(B, A)``, the mean
            of SAC's Gaussian), a static flag.
        """
        action, spikes = self.spike_trains(obs_BD, key, encoder_std, squash)
        if not return_spike_counts:
            return action
        return action, {name: s.sum(0) for name, s in spikes.items()}

    @nn.compact
    def spike_trains(
        self,
        obs_BD: jax.Array,
        key: jax.Array | None = None,
        encoder_std: jax.Array | None = None,
        squash: bool = True,
    ):
        """Actions ``(B, A)`` (``squash`` False: before tanh, as ``__call__``) and every
        layer's spikes over time ``{layer: (T, B, N)}`` (for rasters and exports;
        ``__call__`` is this with counts or nothing)."""
        cfg = self.config
        precision = get_precision(cfg.actor_precision)
        if cfg.encoder_input == "tanh":
            obs_BD = jnp.tanh(obs_BD)
        spikes_in = PopulationEncoder(
            pop_size=cfg.pop_in,
            timesteps=cfg.timesteps,
            mean_range=cfg.encoder_mean_range,
            std=cfg.encoder_std,
            mode=cfg.encoder,
            param_dtype=precision.param,
            name="encoder",
        )(obs_BD, key, encoder_std)
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
            param_dtype=precision.param,
            name="decoder",
        )
        action = decoder(layer_spikes[-1], squash)
        trains = [spikes_in, *layer_spikes]
        return action, dict(zip(layer_names(cfg), trains, strict=True))

"""PopSAN spiking actor, twin-Q critic, and ``make_networks``.

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims, ``T`` spike timesteps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from spikerl_jax.config import CriticConfig, PopSANConfig
from spikerl_jax.popcode import PopulationDecoder, PopulationEncoder
from spikerl_jax.precision import get_policy
from spikerl_jax.spiking import LIFNeuron, SpikingMLP, make_surrogate, torch_uniform_init


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

    @nn.compact
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
        cfg = self.config
        policy = get_policy(cfg.actor_precision)
        neuron = LIFNeuron(
            current_decay=cfg.current_decay,
            voltage_decay=cfg.voltage_decay,
            threshold=cfg.threshold,
            surrogate=make_surrogate(cfg.surrogate, cfg.surrogate_param),
        )
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
            neuron=neuron,
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
        if not return_spike_counts:
            return action
        names = ["encoder", *(f"hidden_{i}" for i in range(len(cfg.hidden_sizes))), "output"]
        counts = {n: s.sum(0) for n, s in zip(names, [spikes_in, *layer_spikes], strict=True)}
        return action, counts


class MLP(nn.Module):
    """ReLU MLP with PyTorch-default init and a float32 scalar output per example."""

    hidden_sizes: Sequence[int]
    precision: str = "fp32"

    @nn.compact
    def __call__(self, x_BF: jax.Array) -> jax.Array:
        policy = get_policy(self.precision)

        def dense(size, x):
            init = torch_uniform_init(x.shape[-1])
            return nn.Dense(
                size, kernel_init=init, bias_init=init, dtype=policy.compute,
                param_dtype=policy.param,
            )(x)  # fmt: skip

        for size in self.hidden_sizes:
            x_BF = nn.relu(dense(size, x_BF))
        return dense(1, x_BF)[..., 0].astype(jnp.float32)


class TwinQ(nn.Module):
    """Two independent Q networks on ``[obs, action]``, batched into one set of matmuls.

    Returns ``(2, B)``: row 0 is Q1 (the actor's critic), row 1 is Q2.
    """

    hidden_sizes: Sequence[int] = (256, 256)
    precision: str = "fp32"

    @nn.compact
    def __call__(self, obs_BD: jax.Array, action_BA: jax.Array) -> jax.Array:
        twin = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=2,
        )
        return twin(self.hidden_sizes, self.precision, name="q")(
            jnp.concatenate([obs_BD, action_BA], -1)
        )


def first_q(critic: TwinQ, params, obs_BD: jax.Array, action_BA: jax.Array) -> jax.Array:
    """Q1 alone ``(B,)``: the actor's objective needs one head, so the other is not computed."""
    q1_params = jax.tree.map(lambda p: p[0], params["params"]["q"])
    return MLP(critic.hidden_sizes, critic.precision).apply(
        {"params": q1_params}, jnp.concatenate([obs_BD, action_BA], -1)
    )


class Networks(NamedTuple):
    """The actor and critic modules (stateless; parameters live in the training state)."""

    actor: PopSAN
    critic: TwinQ


def make_networks(
    action_dim: int,
    action_limit: float,
    actor_config: PopSANConfig = PopSANConfig(),
    critic_config: CriticConfig = CriticConfig(),
) -> Networks:
    """Builds the PopSAN actor and twin critic for an action space of ``action_dim`` dims."""
    return Networks(
        actor=PopSAN(action_dim, action_limit, actor_config),
        critic=TwinQ(critic_config.critic_hidden_sizes, critic_config.critic_precision),
    )

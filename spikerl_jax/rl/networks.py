"""The networks TD3 trains: the actor (PopSAN, or an MLP baseline), the twin-Q critic, and
``make_networks``.

Every actor has one interface: ``actor.apply(params, obs_BD, key, return_spike_counts=False)``
maps normalized observations ``(B, D)`` to actions ``(B, A)`` in ``[-limit, limit]`` (the key
feeds PopSAN's Poisson encoder; the spike counts exist for spiking actors only).

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from spikerl_jax.config import CriticConfig, PopSANConfig
from spikerl_jax.initializers import torch_uniform_init
from spikerl_jax.precision import get_precision
from spikerl_jax.snn.popsan import PopSAN, output_drive_penalty


class MLP(nn.Module):
    """ReLU MLP with PyTorch-default init; ``out_size`` float32 outputs (``None``: a scalar
    per example)."""

    hidden_sizes: Sequence[int]
    precision: str = "fp32"
    out_size: int | None = None

    @nn.compact
    def __call__(self, x_BF: jax.Array) -> jax.Array:
        precision = get_precision(self.precision)

        def dense(size, x):
            init = torch_uniform_init(x.shape[-1])
            return nn.Dense(
                size,
                kernel_init=init,
                bias_init=init,
                dtype=precision.compute,
                param_dtype=precision.param,
            )(x)

        for size in self.hidden_sizes:
            x_BF = nn.relu(dense(size, x_BF))
        out = dense(self.out_size or 1, x_BF).astype(jnp.float32)
        return out if self.out_size else out[..., 0]


class MLPActor(nn.Module):
    """The ANN baseline actor: a deterministic ReLU MLP, ``tanh`` times the action limit.

    Attributes:
      action_dim: ``A``.
      action_limit: actions lie in ``[-action_limit, action_limit]``.
      hidden_sizes: ReLU units per hidden layer (the PopSAN config's, for a like-for-like
        comparison).
      precision: precision name.
    """

    action_dim: int
    action_limit: float = 1.0
    hidden_sizes: Sequence[int] = (256, 256)
    precision: str = "fp32"

    @nn.compact
    def __call__(
        self,
        obs_BD: jax.Array,
        key: jax.Array | None = None,
        return_spike_counts: bool = False,
        squash: bool = True,
    ):
        """Actions ``(B, A)``; ``squash`` False: the outputs before tanh and the limit (the
        mean of SAC's Gaussian)."""
        if return_spike_counts:
            raise ValueError("the MLP actor has no spikes; spike statistics are PopSAN's")
        pre_tanh = MLP(self.hidden_sizes, self.precision, self.action_dim, name="mlp")(obs_BD)
        return self.action_limit * jnp.tanh(pre_tanh) if squash else pre_tanh


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
    """The actor and critic modules (stateless; parameters live in the training state), and
    the two actor-specific pieces TD3 and the learner call.

    Attributes:
      actor: PopSAN or the MLP baseline.
      critic: the twin Q networks.
      init_actor: ``(key, obs_dim, encoder_std) -> params``; ``encoder_std`` (a traced
        float) is PopSAN's initial receptive-field width (the MLP has none).
      actor_with_penalty: ``(params, obs_BD, key, all_mean, squash=True) -> (action_BA,
        penalty)``: the actor's forward pass in the actor's loss and the actor's own
        regulariser (PopSAN's drive penalty; 0 otherwise); ``all_mean`` averages over
        data-parallel devices; ``squash`` False gives the action before tanh and the limit.
    """

    actor: PopSAN | MLPActor
    critic: TwinQ
    init_actor: Callable
    actor_with_penalty: Callable


def make_networks(
    action_dim: int,
    action_limit: float,
    actor_config: PopSANConfig = PopSANConfig(),
    critic_config: CriticConfig = CriticConfig(),
    actor_kind: str = "popsan",
) -> Networks:
    """Builds the actor (``actor_kind`` 'popsan' or 'mlp') and the twin critic for an action
    space of ``action_dim`` dims (``Networks``)."""
    if actor_kind == "popsan":
        actor = PopSAN(action_dim, action_limit, actor_config)
    elif actor_kind == "mlp":
        actor = MLPActor(
            action_dim, action_limit, actor_config.hidden_sizes, actor_config.actor_precision
        )
    else:
        raise ValueError(f"unknown actor {actor_kind!r}; use 'popsan' or 'mlp'")
    spiking = actor_kind == "popsan"
    weight = actor_config.drive_penalty

    def init_actor(key: jax.Array, obs_dim: int, encoder_std: jax.Array):
        settings = {"encoder_std": encoder_std} if spiking else {}
        return actor.init(key, jnp.zeros((1, obs_dim)), key, **settings)

    def actor_with_penalty(
        params, obs_BD: jax.Array, key: jax.Array, all_mean: Callable, squash: bool = True
    ):
        if not (spiking and weight):
            return actor.apply(params, obs_BD, key, squash=squash), 0.0
        # The spike trains give the output layer's input drive.
        action, trains = actor.apply(params, obs_BD, key, squash=squash, method=PopSAN.spike_trains)
        return action, weight * output_drive_penalty(actor, params, trains, all_mean)

    critic = TwinQ(critic_config.critic_hidden_sizes, critic_config.critic_precision)
    return Networks(actor, critic, init_actor, actor_with_penalty)

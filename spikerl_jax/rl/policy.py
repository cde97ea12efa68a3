"""The policy factory: every way the actor is called, written once and used by training,
evaluation and export.

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from spikerl_jax.rl.normalizer import Normalizer, normalize
from spikerl_jax.snn.popsan import PopSAN


class Policies(NamedTuple):
    """Pure functions of ``(actor_params, normalizer, obs_BD (raw), key, ...)``.

    Attributes:
      act: the deterministic action ``(B, A)``.
      act_with_spikes: ``(action, {layer: spikes per observation (B,)})``; the dict is empty
        for a non-spiking actor.
      explore: ``act`` plus Gaussian noise of std ``noise_std``, clipped to the action
        limit; its keys are ``key`` folded with the env ``step`` (so a resumed run draws the
        same noise).
    """

    act: Callable
    act_with_spikes: Callable
    explore: Callable


def make_policies(actor, obs_clip: float) -> Policies:
    """The policies of ``actor`` (PopSAN or the MLP baseline) on raw observations, normalized
    with the run's statistics and clipped to ``+-obs_clip``."""
    limit = actor.action_limit
    spiking = isinstance(actor, PopSAN)

    def act(actor_params, norm: Normalizer, obs_BD: jax.Array, key: jax.Array):
        return actor.apply(actor_params, normalize(norm, obs_BD, obs_clip), key)

    def act_with_spikes(actor_params, norm: Normalizer, obs_BD: jax.Array, key: jax.Array):
        if not spiking:
            return act(actor_params, norm, obs_BD, key), {}
        obs_BD = normalize(norm, obs_BD, obs_clip)
        action, counts = actor.apply(actor_params, obs_BD, key, return_spike_counts=True)
        return action, {layer: c.sum(-1) for layer, c in counts.items()}

    def explore(actor_params, norm: Normalizer, obs_BD: jax.Array, key: jax.Array, step, noise_std):
        key_noise, key_encoder = jax.random.split(jax.random.fold_in(key, step))
        action = act(actor_params, norm, obs_BD, key_encoder)
        noise = noise_std * jax.random.normal(key_noise, action.shape)
        return jnp.clip(action + noise, -limit, limit)

    return Policies(act=act, act_with_spikes=act_with_spikes, explore=explore)

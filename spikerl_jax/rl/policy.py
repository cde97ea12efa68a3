"""The policy factory: every way the actor is called, written once and used by training,
evaluation and export.

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

from spikerl_jax.rl.normalizer import Normalizer, normalize
from spikerl_jax.snn.popsan import PopSAN


class Policies(NamedTuple):
    """Pure functions of ``(actor_params, normalizer, obs_BD (raw), key, ...)``.

    Attributes:
      act: the deterministic action ``(B, A)``.
      act_with_spikes: ``(action, {layer: spikes per observation (B,)})``; the dict is empty
        for a non-spiking actor.
      explore: the algorithm's acting policy (``Algorithm.explore``) on raw observations,
        ``(explorer, normalizer, obs_BD, key, step, noise_std)``; its keys are ``key`` folded
        with the env ``step`` (so a resumed run draws the same noise). None where no
        algorithm was given (acting outside training).
    """

    act: Callable
    act_with_spikes: Callable
    explore: Callable | None


def make_policies(actor, obs_clip: float, explore: Callable | None = None) -> Policies:
    """The policies of ``actor`` (PopSAN or the MLP baseline) on raw observations, normalized
    with the run's statistics and clipped to ``+-obs_clip``; ``explore`` is the algorithm's
    acting policy on normalized ones (``Algorithm.explore``)."""
    spiking = isinstance(actor, PopSAN)

    def act(actor_params, norm: Normalizer, obs_BD: jax.Array, key: jax.Array):
        return actor.apply(actor_params, normalize(norm, obs_BD, obs_clip), key)

    def act_with_spikes(actor_params, norm: Normalizer, obs_BD: jax.Array, key: jax.Array):
        if not spiking:
            return act(actor_params, norm, obs_BD, key), {}
        obs_BD = normalize(norm, obs_BD, obs_clip)
        action, counts = actor.apply(actor_params, obs_BD, key, return_spike_counts=True)
        return action, {layer: c.sum(-1) for layer, c in counts.items()}

    def explore_raw(explorer, norm: Normalizer, obs_BD: jax.Array, key: jax.Array, step, noise_std):
        obs_BD = normalize(norm, obs_BD, obs_clip)
        return explore(explorer, obs_BD, jax.random.fold_in(key, step), noise_std)

    return Policies(act, act_with_spikes, explore_raw if explore else None)

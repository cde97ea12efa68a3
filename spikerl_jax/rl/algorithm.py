"""The seam between a learning algorithm and the rest: ``Algorithm``, the record of pure
functions one module of ``rl/`` builds (``td3.make_algorithm``), as ``networks.Networks`` is
the actor's. Training, checkpoints, sweeps, reporting and export see an algorithm only
through it (and ``rl.algorithms``, which picks one by ``--algo``).

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Algorithm(NamedTuple):
    """An algorithm's pure functions for one set of networks and one static configuration.

    Its state is a ``flax.struct.dataclass`` that holds the deterministic actor as
    ``actor_params`` (what evaluation, the best policy and exports use) and its traced
    settings (so one compiled program serves every value and member).

    Attributes:
      init: ``(key, actor_params, obs_dim, hparams) -> state`` around the actor's initial
        parameters (``Networks.init_actor``); ``hparams`` as ``rl.algorithms.hparams_of``.
      update: ``(state, sample, key) -> (state, metrics)``: one round's updates, fused, on
        batches ``sample(key)`` draws; ``metrics`` are scalars averaged over the round.
      explorer: ``state -> params`` the acting policy needs (copied to the acting device
        each round: the actor's parameters, not the critics').
      explore: ``(explorer, obs_BD, key, noise_std) -> action_BA``: the acting policy on
        normalized observations (``noise_std``: the member's ``--exploration-noise``).
      metrics: the names of ``update``'s metrics, in the records' column order.
      batch_size: transitions per gradient step.
    """

    init: Callable
    update: Callable
    explorer: Callable
    explore: Callable
    metrics: tuple[str, ...]
    batch_size: int


def gaussian_exploration(actor) -> Callable:
    """``explore`` of a deterministic-policy algorithm (TD3, DDPG): the actor's action plus
    Gaussian noise of std ``noise_std``, clipped to the action limit."""
    limit = actor.action_limit

    def explore(actor_params, obs_BD: jax.Array, key: jax.Array, noise_std):
        key_noise, key_encoder = jax.random.split(key)
        action = actor.apply(actor_params, obs_BD, key_encoder)
        noise = noise_std * jax.random.normal(key_noise, action.shape)
        return jnp.clip(action + noise, -limit, limit)

    return explore


def actor_params_of(state):
    """The ``explorer`` of an algorithm that acts with its actor alone."""
    return state.actor_params


def shared_rule(cfg) -> dict[str, np.float32]:
    """The learning rule every algorithm here shares (``cfg.td3``), as the float32 values of
    its ``HParams``: ``gamma``, ``target_step`` (1 - polyak, computed in float64 before
    rounding), ``actor_lr`` and ``critic_lr``."""
    rule = cfg.td3
    values = dict(
        gamma=rule.gamma,
        target_step=1.0 - rule.polyak,
        actor_lr=rule.actor_lr,
        critic_lr=rule.critic_lr,
    )
    return {k: np.float32(v) for k, v in values.items()}

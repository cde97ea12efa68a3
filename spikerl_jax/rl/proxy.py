"""The proxy target (Xu et al., "Proxy Target: Bridging the Gap Between Discrete Spiking
Neural Networks and Continuous Control", NeurIPS 2025, arXiv 2505.24161).

A spiking actor's Polyak-averaged target network averages weights of a discontinuous
function: the averaged network's spikes, and so its actions, can jump. The proxy target
replaces it by a continuous ANN (ReLU MLP, tanh output) that is fitted, at every critic step,
by ``proxy_steps`` Adam steps on fresh replay batches to regress the online spiking actor's
actions; the critic's target action is the proxy's (with TD3's smoothing noise), and Polyak
averaging updates the critic targets only. The proxy only serves training: the deployed
policy is the spiking actor.

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from spikerl_jax.config import TD3Config
from spikerl_jax.rl.networks import MLPActor
from spikerl_jax.rl.optim import ADAM, adam_step


@flax.struct.dataclass
class ProxyTarget:
    """The proxy network's parameters and Adam state."""

    params: dict
    opt_state: optax.OptState


class Proxy(NamedTuple):
    """The proxy target's pure functions."""

    init: Callable[[jax.Array, int], ProxyTarget]
    act: Callable[[ProxyTarget, jax.Array], jax.Array]  # (proxy, obs_BD) -> action (B, A)
    fit: Callable[..., tuple[ProxyTarget, dict]]


def make_proxy(actor, cfg: TD3Config, all_mean: Callable = lambda tree: tree) -> Proxy:
    """The proxy of ``actor`` (any module with ``action_dim``, ``action_limit`` and
    ``apply(params, obs_BD, key)``), sized and trained by ``cfg``'s proxy settings.

    Args:
      actor: the online actor the proxy imitates.
      cfg: ``proxy_hidden_sizes`` and ``proxy_steps``.
      all_mean: averages gradients and metrics across data-parallel devices.
    """
    network = MLPActor(actor.action_dim, actor.action_limit, cfg.proxy_hidden_sizes)

    def init(key: jax.Array, obs_dim: int) -> ProxyTarget:
        params = network.init(key, jnp.zeros((1, obs_dim)))
        return ProxyTarget(params=params, opt_state=ADAM.init(params))

    def act(proxy: ProxyTarget, obs_BD: jax.Array) -> jax.Array:
        return network.apply(proxy.params, obs_BD)

    def imitation_loss(params, obs_BD, target_BA):
        return ((network.apply(params, obs_BD) - target_BA) ** 2).sum(-1).mean()

    def fit(proxy: ProxyTarget, actor_params, sample, key: jax.Array, lr):
        """``proxy_steps`` Adam steps regressing the actor's actions on fresh batches.

        Returns:
          The fitted proxy and ``proxy_loss``, the imitation loss of its last step (before it).
        """

        def step(proxy: ProxyTarget, key):
            key_sample, key_encoder = jax.random.split(key)
            obs_BD = sample(key_sample).obs
            target_BA = jax.lax.stop_gradient(actor.apply(actor_params, obs_BD, key_encoder))
            loss, grads = jax.value_and_grad(imitation_loss)(proxy.params, obs_BD, target_BA)
            loss, grads = all_mean((loss, grads))
            params, opt_state = adam_step(grads, proxy.opt_state, proxy.params, lr)
            return ProxyTarget(params, opt_state), loss

        proxy, losses = jax.lax.scan(step, proxy, jax.random.split(key, cfg.proxy_steps))
        return proxy, {"proxy_loss": losses[-1]}

    return Proxy(init=init, act=act, fit=fit)

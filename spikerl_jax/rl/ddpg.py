"""DDPG for the spiking actor as PopSAN runs it (``popsan_ddpg/ddpg_cuda_norm.py``): one
critic, its target bootstrapping on the target actor's action without smoothing noise, and an
actor step (with the Polyak update of both targets) after every critic step, on the same
batch. The learning rates, batch, discount, Polyak and exploration noise are the shared
learning rule's (``TD3Config``; PopSAN's DDPG uses TD3's values).

Its steps are TD3's (``td3.make_steps``) on DDPG's losses; its state has no proxy.

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from spikerl_jax.config import TrainConfig
from spikerl_jax.rl.algorithm import (
    Algorithm,
    actor_params_of,
    gaussian_exploration,
    shared_rule,
)
from spikerl_jax.rl.networks import MLP, Networks
from spikerl_jax.rl.optim import ADAM
from spikerl_jax.rl.replay import Transition
from spikerl_jax.rl.td3 import METRICS, make_steps

Params = dict


@flax.struct.dataclass
class HParams:
    """DDPG's shape-preserving settings as float32 scalars (per member: ``(P,)`` under vmap)."""

    gamma: jax.Array
    target_step: jax.Array  # 1 - polyak, computed in float64 before rounding to float32
    actor_lr: jax.Array
    critic_lr: jax.Array


def hparams_of(cfg: TrainConfig) -> HParams:
    """A run's ``HParams`` (``Algorithm.init``'s ``hparams``)."""
    return HParams(**shared_rule(cfg))


@flax.struct.dataclass
class DDPGState:
    """The online and target actor and critic, their optimizers and DDPG's settings."""

    actor_params: Params
    critic_params: Params
    target_actor_params: Params
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    hparams: HParams


def make_q(networks: Networks) -> tuple[Callable, Callable]:
    """DDPG's one critic, of the twin critics' sizes and precision: ``q(params, obs_BD,
    action_BA) -> q_B`` and ``init(key, obs_dim) -> params``."""
    mlp = MLP(networks.critic.hidden_sizes, networks.critic.precision)

    def q(params, obs_BD: jax.Array, action_BA: jax.Array) -> jax.Array:
        return mlp.apply(params, jnp.concatenate([obs_BD, action_BA], -1))

    def init(key: jax.Array, obs_dim: int) -> Params:
        return mlp.init(key, jnp.zeros((1, obs_dim + networks.actor.action_dim)))

    return q, init


def make_losses(networks: Networks, q: Callable, all_mean: Callable):
    """DDPG's two losses: ``(critic_loss, actor_loss)``, with TD3's signatures.

    ``critic_loss(critic_params, state, batch, key) -> (loss, metrics)``: regression onto
    ``r + gamma (1 - terminated) Q_targ(s', mu_targ(s'))``.
    ``actor_loss(actor_params, critic_params, obs_BD, key) -> loss``: ``-Q(s, mu(s))`` plus
    the actor's own regulariser (``Networks.actor_with_penalty``).
    """
    actor = networks.actor

    def critic_loss(critic_params, state: DDPGState, batch: Transition, key: jax.Array):
        next_action = actor.apply(state.target_actor_params, batch.next_obs, key)
        next_q = q(state.target_critic_params, batch.next_obs, next_action)
        # Terminal states do not bootstrap; time-limit truncations are stored as non-terminal.
        target = batch.reward + state.hparams.gamma * (1.0 - batch.terminated) * next_q
        q_B = q(critic_params, batch.obs, batch.action)
        loss = ((q_B - jax.lax.stop_gradient(target)) ** 2).mean()
        return loss, {"critic_loss": loss, "q": q_B.mean()}

    def actor_loss(actor_params, critic_params, obs_BD: jax.Array, key: jax.Array):
        action, penalty = networks.actor_with_penalty(actor_params, obs_BD, key, all_mean)
        return -q(critic_params, obs_BD, action).mean() + penalty

    return critic_loss, actor_loss


def make_algorithm(networks: Networks, cfg: TrainConfig, axis_name: str | None = None) -> Algorithm:
    """DDPG behind the algorithm seam (``rl.algorithm.Algorithm``): a round is
    ``--updates-per-round`` critic steps, each followed by an actor step on its batch;
    gradients are averaged over ``axis_name`` (inside ``shard_map``) when given."""

    def all_mean(tree):
        return tree if axis_name is None else jax.lax.pmean(tree, axis_name)

    q, init_q = make_q(networks)
    losses = make_losses(networks, q, all_mean)
    critic_step, actor_step = make_steps(losses, None, all_mean)

    def init(key: jax.Array, actor_params: Params, obs_dim: int, hparams: HParams) -> DDPGState:
        critic_params = init_q(jax.random.split(key)[1], obs_dim)
        return DDPGState(
            actor_params=actor_params,
            critic_params=critic_params,
            # Copies, not aliases: the state is donated, and a buffer may be donated only once.
            target_actor_params=jax.tree.map(jnp.copy, actor_params),
            target_critic_params=jax.tree.map(jnp.copy, critic_params),
            actor_opt_state=ADAM.init(actor_params),
            critic_opt_state=ADAM.init(critic_params),
            hparams=hparams,
        )

    def update(state: DDPGState, sample: Callable[[jax.Array], Transition], key: jax.Array):
        def step(state, key):
            key_sample, key_critic, key_actor = jax.random.split(key, 3)
            batch = sample(key_sample)
            state, metrics = critic_step(state, batch, key_critic)
            state, actor_metrics = actor_step(state, batch.obs, key_actor)
            return state, {**metrics, **actor_metrics}

        state, metrics = jax.lax.scan(step, state, jax.random.split(key, cfg.updates_per_round))
        return state, jax.tree.map(jnp.mean, metrics)

    return Algorithm(
        init=init,
        update=update,
        explorer=actor_params_of,
        explore=gaussian_exploration(networks.actor),
        metrics=METRICS,
        batch_size=cfg.td3.batch_size,
    )

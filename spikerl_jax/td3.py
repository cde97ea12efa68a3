"""TD3 for the spiking actor, as pure functions over a ``flax.struct`` training state.

The policy delay is structure: an update *block* is ``policy_delay`` critic steps (a
``lax.scan``) followed by one actor step and the Polyak update of both targets; ``update`` scans
over blocks. There is no Python ``if`` and no ``lax.cond`` on a step counter.

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
from spikerl_jax.networks import Networks, first_q
from spikerl_jax.replay import Transition

Params = dict
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TD3State:
    """Everything TD3 learns: online and target networks and their optimizers."""

    actor_params: Params
    critic_params: Params
    target_actor_params: Params
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState


class TD3(NamedTuple):
    """TD3's pure functions for one set of networks and hyperparameters."""

    init: Callable[[jax.Array, int], TD3State]
    critic_loss: Callable[..., tuple[jax.Array, Metrics]]
    actor_loss: Callable[..., jax.Array]
    update: Callable[..., tuple[TD3State, Metrics]]


def make_td3(networks: Networks, cfg: TD3Config, axis_name: str | None = None) -> TD3:
    """Builds TD3's init, losses and fused update for ``networks`` under ``cfg``.

    With ``axis_name`` (inside ``shard_map`` over that mesh axis), gradients and metrics are
    averaged across the axis (an all-reduce: NCCL on GPUs) before each optimizer step, so
    every device applies the same update: the gradient of the mean loss over all devices'
    batches, as one large batch would give.
    """

    def all_mean(tree):
        return tree if axis_name is None else jax.lax.pmean(tree, axis_name)

    actor, critic = networks
    action_limit = actor.action_limit
    actor_opt = optax.adam(cfg.actor_lr)
    critic_opt = optax.adam(cfg.critic_lr)

    def init(key: jax.Array, obs_dim: int) -> TD3State:
        key_actor, key_critic = jax.random.split(key)
        obs = jnp.zeros((1, obs_dim))
        actor_params = actor.init(key_actor, obs, key_actor)
        critic_params = critic.init(key_critic, obs, jnp.zeros((1, actor.action_dim)))
        return TD3State(
            actor_params=actor_params,
            critic_params=critic_params,
            # Copies, not aliases: the state is donated, and a buffer may be donated only once.
            target_actor_params=jax.tree.map(jnp.copy, actor_params),
            target_critic_params=jax.tree.map(jnp.copy, critic_params),
            actor_opt_state=actor_opt.init(actor_params),
            critic_opt_state=critic_opt.init(critic_params),
        )

    def critic_loss(critic_params, state: TD3State, batch: Transition, key: jax.Array):
        """Clipped double-Q regression onto the smoothed target policy's value."""
        key_smooth, key_encoder = jax.random.split(key)
        noise = cfg.target_noise * jax.random.normal(key_smooth, batch.action.shape)
        noise = jnp.clip(noise, -cfg.target_noise_clip, cfg.target_noise_clip)
        next_action = actor.apply(state.target_actor_params, batch.next_obs, key_encoder)
        next_action = jnp.clip(next_action + noise, -action_limit, action_limit)
        next_q = critic.apply(state.target_critic_params, batch.next_obs, next_action).min(0)
        # Terminal states do not bootstrap; time-limit truncations are stored as non-terminal.
        target = batch.reward + cfg.gamma * (1.0 - batch.terminated) * next_q
        q_2B = critic.apply(critic_params, batch.obs, batch.action)
        loss = ((q_2B - jax.lax.stop_gradient(target)) ** 2).mean(1).sum()
        return loss, {"critic_loss": loss, "q": q_2B[0].mean()}

    def actor_loss(actor_params, critic_params, obs_BD: jax.Array, key: jax.Array):
        """Deterministic policy gradient through Q1 (the critic's weights get no gradient)."""
        return -first_q(
            critic, critic_params, obs_BD, actor.apply(actor_params, obs_BD, key)
        ).mean()

    def critic_step(state: TD3State, batch: Transition, key: jax.Array):
        grads, metrics = jax.grad(critic_loss, has_aux=True)(state.critic_params, state, batch, key)
        grads, metrics = all_mean((grads, metrics))
        metrics["critic_grad_norm"] = optax.tree.norm(grads).astype(jnp.float32)
        updates, opt_state = critic_opt.update(grads, state.critic_opt_state)
        params = optax.apply_updates(state.critic_params, updates)
        return state.replace(critic_params=params, critic_opt_state=opt_state), metrics

    def actor_step(state: TD3State, obs_BD: jax.Array, key: jax.Array):
        loss, grads = jax.value_and_grad(actor_loss)(
            state.actor_params, state.critic_params, obs_BD, key
        )
        loss, grads = all_mean((loss, grads))
        updates, opt_state = actor_opt.update(grads, state.actor_opt_state)
        params = optax.apply_updates(state.actor_params, updates)
        step = 1.0 - cfg.polyak
        state = state.replace(
            actor_params=params,
            actor_opt_state=opt_state,
            target_actor_params=optax.incremental_update(params, state.target_actor_params, step),
            target_critic_params=optax.incremental_update(
                state.critic_params, state.target_critic_params, step
            ),
        )
        grad_norm = optax.tree.norm(grads).astype(jnp.float32)
        return state, {"actor_loss": loss, "actor_grad_norm": grad_norm}

    def update(
        state: TD3State,
        sample: Callable[[jax.Array], Transition],
        key: jax.Array,
        num_blocks: int,
    ) -> tuple[TD3State, Metrics]:
        """Runs ``num_blocks * policy_delay`` critic steps and ``num_blocks`` actor steps.

        Args:
          state: the current TD3 state.
          sample: draws a normalized batch from a key.
          key: PRNG key for sampling, smoothing noise and encoder spikes.
          num_blocks: static number of (critic x policy_delay, actor) blocks.

        Returns:
          The new state and the metrics averaged over the blocks.
        """

        def critic_scan_step(state, key):
            key_sample, key_loss = jax.random.split(key)
            batch = sample(key_sample)
            state, metrics = critic_step(state, batch, key_loss)
            return state, (metrics, batch.obs)

        def block(state, key):
            key_critic, key_actor = jax.random.split(key)
            keys = jax.random.split(key_critic, cfg.policy_delay)
            state, (metrics, obs) = jax.lax.scan(critic_scan_step, state, keys)
            # The actor learns on the batch of the block's last critic step (as in TD3).
            state, actor_metrics = actor_step(state, obs[-1], key_actor)
            return state, {**jax.tree.map(jnp.mean, metrics), **actor_metrics}

        state, metrics = jax.lax.scan(block, state, jax.random.split(key, num_blocks))
        return state, jax.tree.map(jnp.mean, metrics)

    return TD3(init=init, critic_loss=critic_loss, actor_loss=actor_loss, update=update)

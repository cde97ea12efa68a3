"""TD3 for the spiking actor, as pure functions over a ``flax.struct`` training state.

The policy delay is structure: an update *block* is ``policy_delay`` critic steps (a
``lax.scan``) followed by one actor step and the Polyak update of the targets; ``update`` scans
over blocks. There is no Python ``if`` and no ``lax.cond`` on a step counter.

Settings that keep shapes (learning rates, noise, discount, Polyak) are traced values in the
state (``HParams``), not constants of the compiled program: one program serves every value,
and a population of learners (``jax.vmap``) can give each member its own.

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from spikerl_jax.config import TD3Config, TrainConfig
from spikerl_jax.rl.algorithm import Algorithm, actor_params_of, gaussian_exploration
from spikerl_jax.rl.networks import Networks, first_q
from spikerl_jax.rl.optim import ADAM, adam_step
from spikerl_jax.rl.proxy import Proxy, ProxyTarget, make_proxy
from spikerl_jax.rl.replay import Transition

Params = dict
Metrics = dict[str, jax.Array]
# update's metrics in the records' column order (and "proxy_loss" with the proxy target).
METRICS = ("critic_loss", "actor_loss", "q", "critic_grad_norm", "actor_grad_norm")


@flax.struct.dataclass
class HParams:
    """TD3's shape-preserving settings as float32 scalars (per member: ``(P,)`` under vmap)."""

    gamma: jax.Array
    target_step: jax.Array  # 1 - polyak, computed in float64 before rounding to float32
    actor_lr: jax.Array
    critic_lr: jax.Array
    target_noise: jax.Array
    target_noise_clip: jax.Array
    proxy_lr: jax.Array


def hparams_of(cfg: TrainConfig) -> HParams:
    """A run's ``HParams`` (``Algorithm.init``'s ``hparams``)."""
    return hparams_from_config(cfg.td3)


def hparams_from_config(cfg: TD3Config) -> HParams:
    """``cfg``'s settings as the float32 values the state carries (``target_step`` computed
    in float64 before rounding)."""
    values = dict(
        gamma=cfg.gamma,
        target_step=1.0 - cfg.polyak,
        actor_lr=cfg.actor_lr,
        critic_lr=cfg.critic_lr,
        target_noise=cfg.target_noise,
        target_noise_clip=cfg.target_noise_clip,
        proxy_lr=cfg.proxy_lr,
    )
    return HParams(**{k: np.float32(v) for k, v in values.items()})


@flax.struct.dataclass
class TD3State:
    """Everything TD3 learns (online and target networks, their optimizers, the proxy target
    when used) and the settings it learns with."""

    actor_params: Params
    critic_params: Params
    target_actor_params: Params  # unused (empty) with the proxy target
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    proxy: ProxyTarget | None
    hparams: HParams


def polyak(new: Params, old: Params, step) -> Params:
    """``step * new + (1 - step) * old`` in the targets' own dtype (a traced float32 step
    would otherwise promote bfloat16 targets)."""
    mixed = optax.incremental_update(new, old, step)
    return jax.tree.map(lambda m, o: m.astype(o.dtype), mixed, old)


class TD3(NamedTuple):
    """TD3's pure functions for one set of networks and hyperparameters."""

    init: Callable[[jax.Array, Params, int, HParams], TD3State]
    critic_loss: Callable[..., tuple[jax.Array, Metrics]]
    actor_loss: Callable[..., jax.Array]
    update: Callable[..., tuple[TD3State, Metrics]]


def make_losses(networks: Networks, proxy: Proxy | None, all_mean: Callable):
    """TD3's two losses for ``networks``: ``(critic_loss, actor_loss)``.

    ``critic_loss(critic_params, state, batch, key) -> (loss, metrics)``: clipped double-Q
    regression onto the smoothed target policy's value (the target actor's, or the proxy's).
    ``actor_loss(actor_params, critic_params, obs_BD, key) -> loss``: the deterministic policy
    gradient through Q1 (the critic's weights get no gradient), plus the actor's own
    regulariser (``Networks.actor_with_penalty``; 0 for most actors).
    """
    actor, critic = networks.actor, networks.critic

    def target_action(state: TD3State, next_obs_BD: jax.Array, key: jax.Array) -> jax.Array:
        if proxy is not None:
            return proxy.act(state.proxy, next_obs_BD)
        return actor.apply(state.target_actor_params, next_obs_BD, key)

    def critic_loss(critic_params, state: TD3State, batch: Transition, key: jax.Array):
        hp, limit = state.hparams, actor.action_limit
        key_smooth, key_encoder = jax.random.split(key)
        noise = hp.target_noise * jax.random.normal(key_smooth, batch.action.shape)
        noise = jnp.clip(noise, -hp.target_noise_clip, hp.target_noise_clip)
        next_action = target_action(state, batch.next_obs, key_encoder)
        next_action = jnp.clip(next_action + noise, -limit, limit)
        next_q = critic.apply(state.target_critic_params, batch.next_obs, next_action).min(0)
        # Terminal states do not bootstrap; time-limit truncations are stored as non-terminal.
        target = batch.reward + hp.gamma * (1.0 - batch.terminated) * next_q
        q_2B = critic.apply(critic_params, batch.obs, batch.action)
        loss = ((q_2B - jax.lax.stop_gradient(target)) ** 2).mean(1).sum()
        return loss, {"critic_loss": loss, "q": q_2B[0].mean()}

    def actor_loss(actor_params, critic_params, obs_BD: jax.Array, key: jax.Array):
        action, penalty = networks.actor_with_penalty(actor_params, obs_BD, key, all_mean)
        return -first_q(critic, critic_params, obs_BD, action).mean() + penalty

    return critic_loss, actor_loss


def make_critic_step(critic_loss: Callable, all_mean: Callable) -> Callable:
    """One Adam step of the critics on ``critic_loss``'s gradient averaged over ``all_mean``'s
    devices: ``(state, batch, key) -> (state, metrics)`` for any state with ``critic_params``,
    ``critic_opt_state`` and ``hparams.critic_lr``."""

    def critic_step(state, batch: Transition, key: jax.Array):
        grads, metrics = jax.grad(critic_loss, has_aux=True)(state.critic_params, state, batch, key)
        grads, metrics = all_mean((grads, metrics))
        metrics["critic_grad_norm"] = optax.tree.norm(grads).astype(jnp.float32)
        params, opt_state = adam_step(
            grads, state.critic_opt_state, state.critic_params, state.hparams.critic_lr
        )
        return state.replace(critic_params=params, critic_opt_state=opt_state), metrics

    return critic_step


def make_steps(losses, proxy: Proxy | None, all_mean: Callable):
    """One critic step (``make_critic_step``) and one actor step (with the Polyak update of
    the targets), each an Adam step on gradients averaged over ``all_mean``'s devices:
    ``(state, batch or obs_BD, key) -> (state, metrics)``."""
    critic_loss, actor_loss = losses
    critic_step = make_critic_step(critic_loss, all_mean)

    def actor_step(state: TD3State, obs_BD: jax.Array, key: jax.Array):
        hp = state.hparams
        loss, grads = jax.value_and_grad(actor_loss)(
            state.actor_params, state.critic_params, obs_BD, key
        )
        loss, grads = all_mean((loss, grads))
        params, opt_state = adam_step(grads, state.actor_opt_state, state.actor_params, hp.actor_lr)
        target_actor = state.target_actor_params
        if proxy is None:  # the proxy target keeps no target actor: critic targets only
            target_actor = polyak(params, target_actor, hp.target_step)
        state = state.replace(
            actor_params=params,
            actor_opt_state=opt_state,
            target_actor_params=target_actor,
            target_critic_params=polyak(
                state.critic_params, state.target_critic_params, hp.target_step
            ),
        )
        grad_norm = optax.tree.norm(grads).astype(jnp.float32)
        return state, {"actor_loss": loss, "actor_grad_norm": grad_norm}

    return critic_step, actor_step


def make_init(networks: Networks, proxy: Proxy | None) -> Callable:
    """TD3's ``init(key, actor_params, obs_dim, hparams) -> TD3State``."""

    def init(key: jax.Array, actor_params: Params, obs_dim: int, hparams: HParams) -> TD3State:
        """The state around the actor's initial parameters (the network factory makes them:
        ``Networks.init_actor``); ``key`` initialises the critics and the proxy."""
        obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, networks.actor.action_dim))
        critic_params = networks.critic.init(jax.random.split(key)[1], obs, action)
        return TD3State(
            actor_params=actor_params,
            critic_params=critic_params,
            # Copies, not aliases: the state is donated, and a buffer may be donated only once.
            target_actor_params={} if proxy else jax.tree.map(jnp.copy, actor_params),
            target_critic_params=jax.tree.map(jnp.copy, critic_params),
            actor_opt_state=ADAM.init(actor_params),
            critic_opt_state=ADAM.init(critic_params),
            proxy=proxy.init(jax.random.fold_in(key, 1), obs_dim) if proxy else None,
            hparams=hparams,
        )

    return init


def make_td3(networks: Networks, cfg: TD3Config, axis_name: str | None = None) -> TD3:
    """Builds TD3's init, losses and fused update for ``networks`` under ``cfg``.

    TD3 sees the actor only through ``networks``: its ``apply``, and the regularised
    forward pass the actor's loss adds (``Networks.actor_with_penalty``).

    With ``axis_name`` (inside ``shard_map`` over that mesh axis), gradients and metrics are
    averaged across the axis (an all-reduce: NCCL on GPUs) before each optimizer step, so
    every device applies the same update: the gradient of the mean loss over all devices'
    batches, as one large batch would give.

    With ``cfg.target_actor == "proxy"`` the critic's target action comes from an ANN proxy
    fitted to the actor (``spikerl_jax.rl.proxy``) instead of a target actor.
    """

    def all_mean(tree):
        return tree if axis_name is None else jax.lax.pmean(tree, axis_name)

    proxy = make_proxy(networks.actor, cfg, all_mean) if cfg.target_actor == "proxy" else None
    losses = make_losses(networks, proxy, all_mean)
    critic_step, actor_step = make_steps(losses, proxy, all_mean)

    init = make_init(networks, proxy)

    def critic_scan_step(state: TD3State, key: jax.Array, sample):
        key_sample, key_loss = jax.random.split(key)
        if proxy is not None:  # fit the proxy to the current actor, then use it
            key_loss, key_proxy = jax.random.split(key_loss)
            fitted, proxy_metrics = proxy.fit(
                state.proxy, state.actor_params, sample, key_proxy, state.hparams.proxy_lr
            )
            state = state.replace(proxy=fitted)
        batch = sample(key_sample)
        state, metrics = critic_step(state, batch, key_loss)
        if proxy is not None:
            metrics = {**metrics, **proxy_metrics}
        return state, (metrics, batch.obs)

    def update(
        state: TD3State, sample: Callable[[jax.Array], Transition], key: jax.Array, num_blocks: int
    ) -> tuple[TD3State, Metrics]:
        """Runs ``num_blocks`` (static) blocks of ``policy_delay`` critic steps and one actor
        step, on batches ``sample(key)`` draws (normalized); returns the new state and the
        metrics averaged over the blocks."""

        def block(state, key):
            key_critic, key_actor = jax.random.split(key)
            keys = jax.random.split(key_critic, cfg.policy_delay)
            step = functools.partial(critic_scan_step, sample=sample)
            state, (metrics, obs) = jax.lax.scan(step, state, keys)
            # The actor learns on the batch of the block's last critic step (as in TD3).
            state, actor_metrics = actor_step(state, obs[-1], key_actor)
            return state, {**jax.tree.map(jnp.mean, metrics), **actor_metrics}

        state, metrics = jax.lax.scan(block, state, jax.random.split(key, num_blocks))
        return state, jax.tree.map(jnp.mean, metrics)

    critic_loss, actor_loss = losses
    return TD3(init=init, critic_loss=critic_loss, actor_loss=actor_loss, update=update)


def make_algorithm(networks: Networks, cfg: TrainConfig, axis_name: str | None = None) -> Algorithm:
    """TD3 behind the algorithm seam (``rl.algorithm.Algorithm``): ``make_td3``'s init and
    update, a round being ``--updates-per-round`` critic steps in blocks of the policy
    delay, and Gaussian exploration."""
    td3 = make_td3(networks, cfg.td3, axis_name)
    proxy = ("proxy_loss",) if cfg.td3.target_actor == "proxy" else ()
    return Algorithm(
        init=td3.init,
        update=functools.partial(
            td3.update, num_blocks=cfg.updates_per_round // cfg.td3.policy_delay
        ),
        explorer=actor_params_of,
        explore=gaussian_exploration(networks.actor),
        metrics=METRICS + proxy,
        batch_size=cfg.td3.batch_size,
    )

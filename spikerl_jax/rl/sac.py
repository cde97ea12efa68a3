"""SAC for the spiking actor as PopSAN runs it (``popsan_sac/popsan.py``, ``sac_cuda_norm.py``):
the actor's decoder, before its tanh, gives the mean of a Gaussian; a separate ReLU network
(the actor's hidden sizes) maps the observation to its log-std, clamped to [-20, 2]; the
sample, squashed by tanh and scaled to the action limit, is the action, with the log-density
of that squashing. Twin critics bootstrap on ``min Q_targ(s', a') - alpha log pi(a'|s')`` with
``a'`` the *current* policy's sample (there is no target actor); the policy minimises
``alpha log pi(a|s) - min Q(s, a)``. The deterministic action (evaluation, the best policy,
exports) is ``limit tanh(mean)``: the actor's own forward pass, so the spiking network alone.

A round is blocks of ``--policy-delay`` critic steps (each followed by the Polyak update of
the critic targets) and then as many policy steps on the block's batches (PopSAN: blocks of
one; CleanRL: of two). The log-std network and the learned alpha (``--learn-alpha``) take
Adam steps at the critic's rate (PopSAN's and CleanRL's choice).

Shapes: ``B`` batch, ``D`` observation dims, ``A`` action dims.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from spikerl_jax.config import TrainConfig
from spikerl_jax.rl.algorithm import Algorithm, shared_rule
from spikerl_jax.rl.networks import MLP, Networks
from spikerl_jax.rl.optim import ADAM, adam_step
from spikerl_jax.rl.replay import Transition
from spikerl_jax.rl.td3 import METRICS as TD3_METRICS
from spikerl_jax.rl.td3 import make_critic_step, polyak

Params = dict
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # PopSAN's (and Spinning Up's) clamp
METRICS = (*TD3_METRICS, "alpha", "entropy")


@flax.struct.dataclass
class HParams:
    """SAC's shape-preserving settings as float32 scalars (per member: ``(P,)`` under vmap)."""

    gamma: jax.Array
    target_step: jax.Array  # 1 - polyak, computed in float64 before rounding to float32
    actor_lr: jax.Array
    critic_lr: jax.Array
    alpha: jax.Array  # the entropy coefficient (with --learn-alpha, its initial value)


def hparams_of(cfg: TrainConfig) -> HParams:
    """A run's ``HParams`` (``Algorithm.init``'s ``hparams``)."""
    return HParams(**shared_rule(cfg), alpha=np.float32(cfg.sac.alpha))


@flax.struct.dataclass
class SACState:
    """The actor (the Gaussian's mean), the log-std network, the twin critics and their
    targets, their optimizers, the entropy coefficient's log and SAC's settings."""

    actor_params: Params
    log_std_params: Params
    critic_params: Params
    target_critic_params: Params
    actor_opt_state: optax.OptState
    log_std_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    log_alpha: jax.Array  # ()
    alpha_opt_state: optax.OptState
    hparams: HParams


def tanh_gaussian_log_prob(
    mean_BA: jax.Array, log_std_BA: jax.Array, pre_tanh_BA: jax.Array, limit: float
) -> jax.Array:
    """The log-density ``(B,)`` of the action ``limit * tanh(u)`` for ``u ~ N(mean, std)``:
    the Gaussian's log-density at ``u`` less ``log |d action / d u|``, summed over actions.

    ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`` stays finite where ``tanh(u)``
    rounds to +-1; the limit's ``log`` is included (CleanRL's; PopSAN's omits it, a constant
    that no gradient sees but that a learned alpha's target entropy does).
    """
    z = (pre_tanh_BA - mean_BA) * jnp.exp(-log_std_BA)
    gaussian = -0.5 * z**2 - log_std_BA - 0.5 * math.log(2 * math.pi)
    log_jacobian = 2.0 * (math.log(2.0) - pre_tanh_BA - jax.nn.softplus(-2.0 * pre_tanh_BA))
    return (gaussian - log_jacobian - math.log(limit)).sum(-1)


def make_policy(networks: Networks, cfg: TrainConfig) -> tuple[Callable, Callable, Callable]:
    """SAC's stochastic policy around ``networks.actor``: ``(sample, init_log_std,
    log_std_of)``.

    ``sample(actor_params, log_std_params, obs_BD, key, all_mean=None) -> (action_BA, logp_B,
    penalty)``: a reparameterized tanh-Gaussian sample, its log-density, and (with
    ``all_mean``, in the policy's loss) the actor's own regulariser.
    """
    actor = networks.actor
    limit = actor.action_limit
    log_std_net = MLP(cfg.actor.hidden_sizes, cfg.actor.actor_precision, actor.action_dim)

    def init_log_std(key: jax.Array, obs_dim: int) -> Params:
        return log_std_net.init(key, jnp.zeros((1, obs_dim)))

    def log_std_of(log_std_params, obs_BD: jax.Array) -> jax.Array:
        return jnp.clip(log_std_net.apply(log_std_params, obs_BD), LOG_STD_MIN, LOG_STD_MAX)

    def sample(actor_params, log_std_params, obs_BD, key, all_mean: Callable | None = None):
        key_encoder, key_noise = jax.random.split(key)
        if all_mean is None:
            mean, penalty = actor.apply(actor_params, obs_BD, key_encoder, squash=False), 0.0
        else:
            mean, penalty = networks.actor_with_penalty(
                actor_params, obs_BD, key_encoder, all_mean, squash=False
            )
        log_std = log_std_of(log_std_params, obs_BD)
        pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key_noise, mean.shape)
        logp = tanh_gaussian_log_prob(mean, log_std, pre_tanh, limit)
        return limit * jnp.tanh(pre_tanh), logp, penalty

    return sample, init_log_std, log_std_of


def make_losses(networks: Networks, sample: Callable, all_mean: Callable, alpha_of: Callable):
    """SAC's two losses: ``(critic_loss, policy_loss)``, with the entropy coefficient
    ``alpha_of(state)``.

    ``critic_loss(critic_params, state, batch, key) -> (loss, metrics)``: both critics'
    regression onto ``r + gamma (1 - terminated) (min Q_targ(s', a') - alpha log pi(a'|s'))``,
    ``a' ~ pi(.|s')``.
    ``policy_loss((actor_params, log_std_params), state, obs_BD, key) -> (loss, logp_B)``:
    ``alpha log pi(a|s) - min Q(s, a)``, ``a ~ pi(.|s)``, plus the actor's regulariser.
    """
    critic = networks.critic

    def critic_loss(critic_params, state: SACState, batch: Transition, key: jax.Array):
        alpha = alpha_of(state)
        next_action, next_logp, _ = sample(
            state.actor_params, state.log_std_params, batch.next_obs, key
        )
        next_q = critic.apply(state.target_critic_params, batch.next_obs, next_action).min(0)
        # Terminal states do not bootstrap; time-limit truncations are stored as non-terminal.
        soft_q = next_q - alpha * next_logp
        target = batch.reward + state.hparams.gamma * (1.0 - batch.terminated) * soft_q
        q_2B = critic.apply(critic_params, batch.obs, batch.action)
        loss = ((q_2B - jax.lax.stop_gradient(target)) ** 2).mean(1).sum()
        return loss, {"critic_loss": loss, "q": q_2B[0].mean()}

    def policy_loss(params, state: SACState, obs_BD: jax.Array, key: jax.Array):
        actor_params, log_std_params = params
        action, logp, penalty = sample(actor_params, log_std_params, obs_BD, key, all_mean)
        q = critic.apply(state.critic_params, obs_BD, action).min(0)
        alpha = alpha_of(state)
        return (alpha * logp - q).mean() + penalty, logp

    return critic_loss, policy_loss


def make_algorithm(networks: Networks, cfg: TrainConfig, axis_name: str | None = None) -> Algorithm:
    """SAC behind the algorithm seam (``rl.algorithm.Algorithm``): a round is
    ``--updates-per-round`` critic steps in blocks of ``--policy-delay``, each block followed
    by as many policy steps; gradients are averaged over ``axis_name`` (inside ``shard_map``)
    when given."""

    def all_mean(tree):
        return tree if axis_name is None else jax.lax.pmean(tree, axis_name)

    delay, learn_alpha = cfg.td3.policy_delay, cfg.sac.learn_alpha

    def alpha_of(state: SACState) -> jax.Array:
        # A fixed alpha is the traced setting itself, so that a population's exploit step
        # (which sets the settings) changes it; a learned one lives in the state.
        return jnp.exp(state.log_alpha) if learn_alpha else state.hparams.alpha

    sample, init_log_std, _ = make_policy(networks, cfg)
    critic_loss, policy_loss = make_losses(networks, sample, all_mean, alpha_of)
    critic_step = make_critic_step(critic_loss, all_mean)
    target_entropy = cfg.sac.target_entropy
    if target_entropy is None:
        target_entropy = -float(networks.actor.action_dim)

    def init(key: jax.Array, actor_params: Params, obs_dim: int, hparams: HParams) -> SACState:
        key_critic, key_log_std = jax.random.split(jax.random.split(key)[1])
        obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, networks.actor.action_dim))
        critic_params = networks.critic.init(key_critic, obs, action)
        log_std_params = init_log_std(key_log_std, obs_dim)
        log_alpha = jnp.log(jnp.asarray(hparams.alpha, jnp.float32))
        return SACState(
            actor_params=actor_params,
            log_std_params=log_std_params,
            critic_params=critic_params,
            # A copy, not an alias: the state is donated, and a buffer may be donated once.
            target_critic_params=jax.tree.map(jnp.copy, critic_params),
            actor_opt_state=ADAM.init(actor_params),
            log_std_opt_state=ADAM.init(log_std_params),
            critic_opt_state=ADAM.init(critic_params),
            log_alpha=log_alpha,
            alpha_opt_state=ADAM.init(log_alpha),
            hparams=hparams,
        )

    def soft_critic_step(state: SACState, batch: Transition, key: jax.Array):
        state, metrics = critic_step(state, batch, key)
        targets = polyak(state.critic_params, state.target_critic_params, state.hparams.target_step)
        return state.replace(target_critic_params=targets), metrics

    def policy_step(state: SACState, obs_BD: jax.Array, key: jax.Array):
        hp = state.hparams
        params = (state.actor_params, state.log_std_params)
        (loss, logp), grads = jax.value_and_grad(policy_loss, has_aux=True)(
            params, state, obs_BD, key
        )
        loss, grads, mean_logp = all_mean((loss, grads, logp.mean()))
        actor_grads, log_std_grads = grads
        actor, actor_opt = adam_step(
            actor_grads, state.actor_opt_state, state.actor_params, hp.actor_lr
        )
        log_std, log_std_opt = adam_step(
            log_std_grads, state.log_std_opt_state, state.log_std_params, hp.critic_lr
        )
        log_alpha, alpha_opt = state.log_alpha, state.alpha_opt_state
        if learn_alpha:  # d/d log_alpha of -alpha (log pi + target entropy), log pi fixed
            alpha_grad = -jnp.exp(log_alpha) * (mean_logp + target_entropy)
            log_alpha, alpha_opt = adam_step(alpha_grad, alpha_opt, log_alpha, hp.critic_lr)
        state = state.replace(
            actor_params=actor,
            actor_opt_state=actor_opt,
            log_std_params=log_std,
            log_std_opt_state=log_std_opt,
            log_alpha=log_alpha,
            alpha_opt_state=alpha_opt,
        )
        return state, {
            "actor_loss": loss,
            "actor_grad_norm": optax.tree.norm(actor_grads).astype(jnp.float32),
            "alpha": alpha_of(state),
            "entropy": -mean_logp,
        }

    def update(state: SACState, sample_batch: Callable[[jax.Array], Transition], key: jax.Array):
        def critic_scan_step(state, key):
            key_sample, key_loss = jax.random.split(key)
            batch = sample_batch(key_sample)
            state, metrics = soft_critic_step(state, batch, key_loss)
            return state, (metrics, batch.obs)

        def block(state, key):
            key_critic, key_policy = jax.random.split(key)
            state, (metrics, obs) = jax.lax.scan(
                critic_scan_step, state, jax.random.split(key_critic, delay)
            )
            # One policy step per critic step of the block, on that step's batch.
            state, policy_metrics = jax.lax.scan(
                lambda state, xs: policy_step(state, *xs),
                state,
                (obs, jax.random.split(key_policy, delay)),
            )
            return state, jax.tree.map(jnp.mean, {**metrics, **policy_metrics})

        blocks = cfg.updates_per_round // delay
        state, metrics = jax.lax.scan(block, state, jax.random.split(key, blocks))
        return state, jax.tree.map(jnp.mean, metrics)

    def explorer(state: SACState):
        return state.actor_params, state.log_std_params

    def explore(params, obs_BD: jax.Array, key: jax.Array, noise_std):
        """The stochastic policy's sample (SAC's own noise: ``noise_std`` is not used)."""
        return sample(*params, obs_BD, key)[0]

    return Algorithm(
        init=init,
        update=update,
        explorer=explorer,
        explore=explore,
        metrics=METRICS,
        batch_size=cfg.td3.batch_size,
    )

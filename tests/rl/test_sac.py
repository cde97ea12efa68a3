"""SAC against independent NumPy references (the tanh-Gaussian's density, the critic target),
its update's structure, its learned alpha and its presets."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import mlp_numpy

from spikerl_jax.config import (
    ConfigError,
    CriticConfig,
    PopSANConfig,
    SACConfig,
    TD3Config,
    TrainConfig,
    preset_for,
)
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.replay import random_transitions
from spikerl_jax.rl.sac import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    hparams_of,
    make_algorithm,
    make_losses,
    make_policy,
    tanh_gaussian_log_prob,
)

OBS, ACT, LIMIT, BATCH = 4, 2, 2.0, 6
CFG = TrainConfig(
    algo="sac",
    actor_kind="mlp",
    updates_per_round=4,
    actor=PopSANConfig(hidden_sizes=(16, 16)),
    critic=CriticConfig(critic_hidden_sizes=(16, 16)),
    td3=TD3Config(batch_size=BATCH, gamma=0.9, policy_delay=2),
    sac=SACConfig(alpha=0.3),
)


def build(cfg=CFG, actor_kind="mlp"):
    nets = make_networks(ACT, LIMIT, cfg.actor, cfg.critic, actor_kind)
    sac = make_algorithm(nets, cfg)
    key = jax.random.key(0)
    actor = nets.init_actor(jax.random.split(key)[0], OBS, 1.0)
    return nets, sac, sac.init(key, actor, OBS, hparams_of(cfg))


@pytest.fixture(scope="module")
def setup():
    nets, sac, state = build()
    # Targets unlike the online critics, so that using the wrong ones shows.
    state = state.replace(target_critic_params=jax.tree.map(lambda x: x + 0.1, state.critic_params))
    batch = random_transitions(jax.random.key(1), BATCH, OBS, ACT).replace(
        terminated=jnp.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    )
    return nets, sac, state, batch


def test_tanh_gaussian_log_prob_is_the_density_of_the_squashed_action():
    """The density of ``a = limit tanh(u)``, ``u ~ N(mean, std)``, by the change of variables
    written the other way round: ``log N(atanh(a / limit)) - log(limit (1 - (a / limit)^2))``
    in float64; and finite where ``tanh(u)`` rounds to 1 in float32."""
    rng = np.random.default_rng(0)
    mean, log_std = rng.normal(size=(5, 3)), rng.uniform(-2, 1, size=(5, 3))
    u = mean + np.exp(log_std) * rng.normal(size=(5, 3))
    a = LIMIT * np.tanh(u)
    x = np.arctanh(a / LIMIT)
    std = np.exp(log_std)
    gaussian = -0.5 * ((x - mean) / std) ** 2 - np.log(std * np.sqrt(2 * np.pi))
    reference = (gaussian - np.log(LIMIT * (1 - (a / LIMIT) ** 2))).sum(-1)
    f32 = [jnp.asarray(v, jnp.float32) for v in (mean, log_std, u)]
    got = tanh_gaussian_log_prob(*f32, LIMIT)
    np.testing.assert_allclose(np.asarray(got), reference, rtol=1e-5, atol=1e-4)
    # |u| = 12: tanh(u) is 1 in float32; log(1 - tanh^2) = log 4 - 2 logaddexp(u, -u).
    big = np.array([[12.0, -12.0, 0.0]])
    zero = np.zeros_like(big)
    got = tanh_gaussian_log_prob(*(jnp.asarray(v, jnp.float32) for v in (big, zero, big)), 1.0)
    expected = (-0.5 * np.log(2 * np.pi) - (np.log(4) - 2 * np.logaddexp(big, -big))).sum()
    np.testing.assert_allclose(float(got[0]), expected, rtol=1e-5)


def test_critic_target_against_numpy(setup):
    """SAC's target with the current actor's sample at ``s'`` (no target actor), the minimum
    of the target critics and the entropy bonus; no bootstrap from terminal states."""
    nets, _, state, batch = setup
    f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
    obs, action, next_obs = f64(batch.obs), f64(batch.action), f64(batch.next_obs)
    reward, done = f64(batch.reward), f64(batch.terminated)
    key = jax.random.key(2)
    # The sample's noise: ``sample`` splits its key into the encoder's and the noise's.
    noise = f64(jax.random.normal(jax.random.split(key)[1], (BATCH, ACT)))
    mean = mlp_numpy(state.actor_params["params"]["mlp"], next_obs)
    log_std = np.clip(mlp_numpy(state.log_std_params["params"], next_obs), -20, 2)
    u = mean + np.exp(log_std) * noise
    next_action = LIMIT * np.tanh(u)
    logp = (
        -0.5 * noise**2 - log_std - 0.5 * np.log(2 * np.pi) - np.log(LIMIT * (1 - np.tanh(u) ** 2))
    ).sum(-1)

    def twin(params, o, a):
        q = params["params"]["q"]
        heads = [jax.tree.map(lambda p, i=i: p[i], q) for i in range(2)]
        return np.stack([mlp_numpy(h, np.concatenate([o, a], -1))[:, 0] for h in heads])

    next_q = twin(state.target_critic_params, next_obs, next_action).min(0)
    target = reward + 0.9 * (1 - done) * (next_q - 0.3 * logp)
    q = twin(state.critic_params, obs, action)
    sample, _, _ = make_policy(nets, CFG)
    critic_loss, _ = make_losses(nets, sample, lambda tree: tree, lambda s: s.hparams.alpha)
    loss, metrics = critic_loss(state.critic_params, state, batch, key)
    np.testing.assert_allclose(float(loss), ((q - target) ** 2).mean(1).sum(), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["q"]), q[0].mean(), rtol=1e-5, atol=1e-6)


def test_a_round_is_blocks_of_critic_steps_then_as_many_policy_steps(setup):
    """4 updates in blocks of 2: 4 critic, 4 actor and 4 log-std Adam steps, the critic
    targets Polyak-averaged 4 times, a fixed alpha unchanged, the metrics the algorithm
    names."""
    _, sac, state, batch = setup
    update = jax.jit(lambda state, key: sac.update(state, lambda _: batch, key))
    new, metrics = update(state, jax.random.key(3))
    counts = (new.critic_opt_state, new.actor_opt_state, new.log_std_opt_state)
    assert [int(c.count) for c in counts] == [4, 4, 4]
    assert int(new.alpha_opt_state.count) == 0
    assert float(new.log_alpha) == float(state.log_alpha)
    np.testing.assert_allclose(float(metrics["alpha"]), 0.3, rtol=1e-6)
    assert sorted(metrics) == sorted(sac.metrics)
    t, o, p = (
        jax.tree.leaves(x)[0]
        for x in (new.target_critic_params, state.target_critic_params, state.critic_params)
    )
    np.testing.assert_allclose(t - o, (1 - 0.995**4) * (p - o), rtol=0.05, atol=1e-4)


@pytest.mark.parametrize(("target_entropy", "direction"), [(-50.0, -1), (50.0, 1)])
def test_a_learned_alpha_moves_towards_the_target_entropy(target_entropy, direction):
    """Above the target entropy alpha falls (less bonus), below it alpha rises."""
    sac_cfg = SACConfig(alpha=0.3, learn_alpha=True, target_entropy=target_entropy)
    _, sac, state = build(dataclasses.replace(CFG, sac=sac_cfg))
    batch = random_transitions(jax.random.key(1), BATCH, OBS, ACT)
    new, metrics = jax.jit(lambda s, k: sac.update(s, lambda _: batch, k))(state, jax.random.key(3))
    assert int(new.alpha_opt_state.count) == 4
    change = float(new.log_alpha) - float(state.log_alpha)
    assert np.sign(change) == direction and abs(change) > 1e-3, change
    assert np.isfinite(float(metrics["entropy"]))


@pytest.mark.parametrize("actor_kind", ["popsan", "mlp"])
def test_the_deterministic_action_is_the_squashed_mean(actor_kind):
    """Evaluation and exports use the actor as it is (``limit tanh(mean)``), so the spiking
    network alone; exploration samples around the same mean, within the limits."""
    cfg = dataclasses.replace(CFG, actor=PopSANConfig(hidden_sizes=(16,), timesteps=3))
    nets, sac, state = build(cfg, actor_kind)
    obs = jax.random.normal(jax.random.key(4), (5, OBS))
    key = jax.random.key(5)
    mean = nets.actor.apply(state.actor_params, obs, key, squash=False)
    action = nets.actor.apply(state.actor_params, obs, key)
    np.testing.assert_allclose(action, LIMIT * np.tanh(mean), rtol=1e-6, atol=1e-6)
    explored = sac.explore(sac.explorer(state), obs, key, 0.1)
    assert explored.shape == (5, ACT) and np.all(np.abs(explored) <= LIMIT)
    _, _, log_std_of = make_policy(nets, cfg)
    log_std = log_std_of(state.log_std_params, 1e3 * obs)
    assert float(log_std.min()) >= LOG_STD_MIN and float(log_std.max()) <= LOG_STD_MAX


def test_presets_popsan_and_cleanrl():
    popsan = preset_for("Hopper-v4", "popsan", algo="sac")
    assert (popsan.td3.policy_delay, popsan.sac) == (1, SACConfig(alpha=0.2))
    assert (popsan.td3.actor_lr, popsan.td3.batch_size, popsan.start_steps) == (1e-4, 100, 10_000)
    cleanrl = preset_for("Hopper-v4", "mlp", algo="sac")
    rule = cleanrl.td3
    assert (rule.batch_size, rule.actor_lr, rule.critic_lr) == (256, 3e-4, 1e-3)
    assert cleanrl.td3.policy_delay == 2 and cleanrl.sac.learn_alpha
    assert (cleanrl.start_steps, cleanrl.update_after) == (5_000, 5_000)
    # --paper: PopSAN's SAC for the MLP too (like for like); the task's schedule elsewhere.
    assert preset_for("Hopper-v4", "mlp", paper=True, algo="sac").sac == SACConfig(alpha=0.2)
    pendulum = preset_for("InvertedPendulum-v4", "mlp", algo="sac")
    assert (pendulum.start_steps, pendulum.td3.batch_size) == (1_000, 256)


def test_bad_sac_settings_are_refused():
    for sac_cfg, message in (
        (SACConfig(alpha=0.0), "--alpha must be positive"),
        (SACConfig(target_entropy=float("nan")), "--target-entropy must be a finite"),
    ):
        with pytest.raises(ConfigError, match=message):
            dataclasses.replace(CFG, sac=sac_cfg).validate()
    proxy = dataclasses.replace(CFG, td3=dataclasses.replace(CFG.td3, target_actor="proxy"))
    with pytest.raises(ConfigError, match="--algo sac bootstraps on its current policy"):
        proxy.validate()

"""A trained run's policy outside training: ``load_policy`` and ``spikerl-jax eval``.

    from spikerl_jax import load_policy
    policy = load_policy("runs/hopper")          # best checkpoint by evaluation return
    action = policy(obs)                         # numpy (obs_dim,) or (B, obs_dim) -> action

Only the actor's parameters and the observation normalizer are used; no replay buffer, critic
or optimizer code runs when acting. The actor is called through the same policy functions as
in training (``spikerl_jax.rl.policy``).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from spikerl_jax.arguments import expect, expect_path
from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.envs.registry import EnvSpec, env_spec
from spikerl_jax.export.video import record_video
from spikerl_jax.precision import in_full_precision
from spikerl_jax.reporting.activity import spike_report
from spikerl_jax.reporting.pbt import resolve_run
from spikerl_jax.reporting.population import population_of
from spikerl_jax.reporting.records import eval_results
from spikerl_jax.reporting.runs import load_run_config
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.normalizer import Normalizer, normalize
from spikerl_jax.rl.policy import make_policies
from spikerl_jax.training.checkpoint import CheckpointError, read_checkpoint
from spikerl_jax.training.members import member

CHECKPOINTS = ("best", "latest")


@dataclasses.dataclass
class Policy:
    """A trained actor with its normalizer, as a function from observations to actions.

    Usable as a Gymnasium agent: ``env.step(policy(obs))``.

    Attributes:
      config: the run's configuration.
      spec: the task's shapes.
      actor_params: the actor's parameters.
      normalizer: the observation statistics it was trained with.
      step: the training step of the checkpoint.
    """

    config: TrainConfig
    spec: EnvSpec
    actor_params: dict
    normalizer: Normalizer
    step: int

    def __post_init__(self):
        cfg = self.config
        self.actor = make_networks(
            self.spec.action_dim, self.spec.action_limit, cfg.actor, actor_kind=cfg.actor_kind
        ).actor
        policies = make_policies(self.actor, cfg.input_clip)
        self._act = in_full_precision(jax.jit(policies.act))
        self._act_with_spikes = in_full_precision(jax.jit(policies.act_with_spikes))
        self._key = jax.random.key(0)  # only the Poisson encoder draws from it

    def _check(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        if obs.shape[-1:] != (self.spec.obs_dim,) or obs.ndim not in (1, 2):
            raise ValueError(
                f"{self.config.env} observations have shape ({self.spec.obs_dim},) or "
                f"(batch, {self.spec.obs_dim}); got {obs.shape}"
            )
        if not np.all(np.isfinite(obs)):
            raise ValueError(
                "the observation holds NaN or infinite values; the policy "
                "cannot act on it (check the environment's state)"
            )
        return obs

    def _batched(self, fn, obs: np.ndarray):
        """``fn`` on ``(B, D)`` observations; one ``(D,)`` gives outputs without the batch
        axis, an empty batch empty outputs."""
        obs = self._check(obs)
        single, empty = obs.ndim == 1, obs.ndim == 2 and len(obs) == 0
        batch = (
            np.zeros((1, self.spec.obs_dim), np.float32)
            if empty
            else obs.reshape(-1, obs.shape[-1])
        )
        out = jax.tree.map(np.asarray, fn(batch))
        if single or empty:
            out = jax.tree.map(lambda x: x[0] if single else x[:0], out)
        return out

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions for ``(obs_dim,)`` or ``(B, obs_dim)`` observations."""
        return self._batched(
            lambda o: self._act(self.actor_params, self.normalizer, o, self._key), obs
        )

    def spike_trains(self, obs_BD: np.ndarray) -> tuple[np.ndarray, dict]:
        """Actions ``(B, A)`` and every layer's spikes over the ``T`` timesteps
        ``{layer: (T, B, N)}`` (PopSAN only): what a spike raster shows. One observation
        ``(D,)`` gives ``(A,)`` and ``{layer: (T, N)}``."""
        if self.config.actor_kind != "popsan":
            raise ValueError("spike trains exist for the PopSAN actor only (this run: mlp)")
        obs = self._check(obs_BD)
        if not hasattr(self, "_trains"):
            clip, actor = self.config.input_clip, self.actor

            def trains(params, norm, obs, key):
                return actor.apply(
                    params, normalize(norm, obs, clip), key, method=actor.spike_trains
                )

            self._trains = in_full_precision(jax.jit(trains))
        batch = obs[None] if obs.ndim == 1 else obs
        action, spikes = jax.tree.map(
            np.asarray, self._trains(self.actor_params, self.normalizer, batch, self._key)
        )
        if obs.ndim == 1:
            return action[0], {k: v[:, 0] for k, v in spikes.items()}
        return action, spikes

    def with_spikes(self, obs_BD: np.ndarray) -> tuple[np.ndarray, dict]:
        """Actions ``(B, A)`` and each layer's spike count per observation ``{layer: (B,)}``
        (an empty dict for the MLP actor); one observation ``(D,)`` gives ``(A,)`` and
        ``{layer: count}``."""
        return self._batched(
            lambda o: self._act_with_spikes(self.actor_params, self.normalizer, o, self._key),
            obs_BD,
        )


def load_policy(run_dir: str, checkpoint: str = "best") -> Policy:
    """Loads the actor and normalizer of ``run_dir``'s ``best`` or ``latest`` checkpoint
    (for a PBT run's root: its best member's).

    Raises:
      ConfigError: no run there, an unknown ``checkpoint``, or a checkpoint that cannot be
        read.
    """
    expect_path("load_policy(run_dir)", run_dir)
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint must be 'best' or 'latest', got {checkpoint!r}")
    run_dir = resolve_run(run_dir)
    cfg = load_run_config(run_dir)
    item = "best" if checkpoint == "best" else "learner"  # the latest policy: the learner's
    items, _, step = read_checkpoint(run_dir, [item])
    saved = member(items[item], population_of(run_dir)[1])
    params = saved["actor_params"] if checkpoint == "best" else saved["agent"]["actor_params"]
    normalizer = Normalizer(**saved["normalizer"])
    spec = env_spec(cfg.env)
    networks = make_networks(
        spec.action_dim, spec.action_limit, cfg.actor, actor_kind=cfg.actor_kind
    )
    shapes = jax.eval_shape(lambda k: networks.init_actor(k, spec.obs_dim, 1.0), jax.random.key(0))
    if jax.tree.map(np.shape, shapes) != jax.tree.map(
        np.shape, params
    ) or normalizer.mean.shape != (spec.obs_dim,):
        raise CheckpointError(
            f"{run_dir}: its checkpoint holds an actor of other sizes than its config.json "
            f"describes ({cfg.env}, {cfg.actor_kind}); the checkpoints were copied from "
            "another run: restore that run's config.json"
        )
    return Policy(cfg, spec, params, normalizer, step)


def evaluate_run(
    run_dir: str,
    episodes: int = 10,
    checkpoint: str = "best",
    seed: int = 0,
    render: str | None = None,
    raster: str | None = None,
) -> dict:
    """Deterministic episodes of a run's policy with the actor's spike statistics (see
    ``spikerl_jax.reporting.activity``); optionally records the first episode as a video
    (``render``, an .mp4) and the spikes of its first steps as a raster (``raster``, a PNG)."""
    expect_path("evaluate(run_dir)", run_dir)
    expect("evaluate(episodes)", episodes, int, "a number of episodes (int)")
    from spikerl_jax.envs.gymnasium_backend import evaluate_episodes, make_eval_envs

    if not isinstance(episodes, int) or episodes <= 0:
        raise ConfigError(f"--episodes must be a positive integer, got {episodes!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed!r}")

    run_dir = resolve_run(run_dir)  # a PBT root: its best member, named in the result
    policy = load_policy(run_dir, checkpoint)
    cfg, spec = policy.config, policy.spec
    if raster and cfg.actor_kind != "popsan":
        raise ConfigError(f"--raster shows spikes: {run_dir} trained an MLP actor")
    envs = make_eval_envs(cfg.env, [seed + i for i in range(episodes)])

    def act(obs_MED):
        action, spikes = policy.with_spikes(obs_MED[0])
        return action[None], {k: np.asarray(v)[None] for k, v in spikes.items()}

    res = eval_results(*evaluate_episodes(act, [envs]))[0]
    spikes = None
    if res.spikes:
        spikes = spike_report(
            res.spikes,
            res.inferences,
            spec.obs_dim,
            spec.action_dim,
            cfg.actor,
            cfg.pj_per_synop,
            cfg.pj_per_mac,
        )
    result = {
        "run_dir": run_dir,
        "checkpoint": checkpoint,
        "step": policy.step,
        "episodes": episodes,
        "return_mean": res.mean,
        "return_std": res.std,
        "length_mean": res.length,
        "spikes": spikes,
    }
    if render:
        result["video"] = record_video(policy, cfg.env, render, seed)
    if raster:
        from spikerl_jax.reporting.plots import plot_spike_raster

        trains = episode_spike_trains(policy, steps=4, seed=seed)
        result["raster"] = plot_spike_raster(trains, cfg.actor.timesteps, raster)
    return result


def episode_spike_trains(policy: Policy, steps: int = 4, seed: int = 0) -> dict:
    """Every layer's spikes over ``steps`` consecutive env steps of a deterministic episode
    (from its reset), ``{layer: (steps * T, N)}``: the input of a spike raster."""
    from spikerl_jax.envs.gymnasium_backend import quiet_make

    env = quiet_make(policy.config.env)
    obs, _ = env.reset(seed=seed)
    trains: dict[str, list] = {}
    for _ in range(steps):
        action, spikes = policy.spike_trains(obs[None])
        for layer, train in spikes.items():
            trains.setdefault(layer, []).append(train[:, 0])
        obs, _, terminated, truncated, _ = env.step(action[0])
        if terminated or truncated:
            break
    env.close()
    return {layer: np.concatenate(parts) for layer, parts in trains.items()}

"""A trained run's policy outside training: ``load_policy`` and ``spikerl-jax eval``.

    from spikerl_jax.export import load_policy
    policy = load_policy("runs/hopper")          # best checkpoint by evaluation return
    action = policy(obs)                         # numpy (obs_dim,) or (B, obs_dim) -> action

Only the actor's parameters and the observation normalizer are used; no replay buffer, critic
or optimizer code runs when acting.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

from spikerl_jax.activity import spike_report
from spikerl_jax.checkpoint import CheckpointError
from spikerl_jax.checkpoint import restore as restore_checkpoint
from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.envs.gymnasium_backend import EnvSpec, env_spec, make_eval_envs, quiet_make
from spikerl_jax.networks import make_networks
from spikerl_jax.replay import Normalizer, normalize


@dataclasses.dataclass
class Policy:
    """A PopSAN actor with its normalizer, as a function from observations to actions."""

    config: TrainConfig
    spec: EnvSpec
    actor_params: dict
    normalizer: Normalizer
    step: int

    def __post_init__(self):
        actor = make_networks(self.spec.action_dim, self.spec.action_limit, self.config.actor).actor
        clip = self.config.obs_clip

        def act(params, norm, obs_BD, key):
            return actor.apply(params, normalize(norm, obs_BD, clip), key)

        def act_spikes(params, norm, obs_BD, key):
            obs_BD = normalize(norm, obs_BD, clip)
            action, counts = actor.apply(params, obs_BD, key, return_spike_counts=True)
            return action, {layer: c.sum(-1) for layer, c in counts.items()}

        self._act = jax.jit(act)
        self._act_spikes = jax.jit(act_spikes)
        self._key = jax.random.key(0)  # only the Poisson encoder draws from it

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions for ``(obs_dim,)`` or ``(B, obs_dim)`` observations."""
        obs = np.asarray(obs, np.float32)
        batch = obs[None] if obs.ndim == 1 else obs
        action = np.asarray(self._act(self.actor_params, self.normalizer, batch, self._key))
        return action[0] if obs.ndim == 1 else action

    def with_spikes(self, obs_BD: np.ndarray) -> tuple[np.ndarray, dict]:
        """Actions ``(B, A)`` and each layer's spike count per observation ``{layer: (B,)}``."""
        obs_BD = np.asarray(obs_BD, np.float32)
        action, spikes = self._act_spikes(self.actor_params, self.normalizer, obs_BD, self._key)
        return np.asarray(action), spikes


def load_run_config(run_dir: str) -> TrainConfig:
    """The ``TrainConfig`` a run was started with (its ``config.json``)."""
    import json

    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"{run_dir} is not a run directory (no config.json)")
    try:
        with open(path) as f:
            return TrainConfig.from_dict(json.load(f))
    except (json.JSONDecodeError, TypeError) as e:
        raise ConfigError(f"{path} is not a valid run config ({e})") from None


def load_policy(run_dir: str, checkpoint: str = "best") -> Policy:
    """Loads the actor and normalizer of ``run_dir``'s ``best`` or ``latest`` checkpoint."""
    from spikerl_jax.train import make_learner  # the state's shapes and dtypes only

    cfg = load_run_config(run_dir)
    spec = env_spec(cfg.env)
    abstract = jax.eval_shape(make_learner(cfg, spec).init, jax.random.key(0))
    learner, _, _, step = restore_checkpoint(run_dir, abstract, checkpoint, with_buffer=False)
    return Policy(cfg, spec, learner["td3"].actor_params, learner["normalizer"], step)


def evaluate_run(
    run_dir: str, episodes: int, checkpoint: str, seed: int, render: str | None = None
) -> dict:
    """Deterministic episodes of a run's policy with the actor's spike statistics (see
    ``spikerl_jax.activity``); optionally records the first episode as a video."""
    from spikerl_jax.train import evaluate

    policy = load_policy(run_dir, checkpoint)
    cfg, spec = policy.config, policy.spec
    envs = make_eval_envs(cfg.env, episodes, seed)
    res = evaluate(policy.with_spikes, envs)
    spikes = spike_report(res.spikes, res.inferences, spec.obs_dim, spec.action_dim, cfg.actor,
                          cfg.pj_per_synop, cfg.pj_per_mac)  # fmt: skip
    result = {"run_dir": run_dir, "checkpoint": checkpoint, "step": policy.step,
              "episodes": episodes, "return_mean": res.mean, "return_std": res.std,
              "length_mean": res.length, "spikes": spikes}  # fmt: skip
    if render:
        result["video"] = record_video(policy, render, seed)
    return result


def record_video(policy: Policy, path: str, seed: int) -> str:
    """Renders one deterministic episode offscreen into ``path`` (an .mp4)."""
    try:
        env = quiet_make(policy.config.env, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except Exception as e:  # GL backends fail in many ways: report which and the fix
        raise CheckpointError(
            f"cannot render offscreen ({type(e).__name__}: {str(e)[:160]}); MuJoCo needs an "
            "OpenGL backend: install EGL or OSMesa (e.g. apt-get install libegl1 or "
            "libosmesa6) and set MUJOCO_GL and PYOPENGL_PLATFORM to egl or osmesa"
        ) from None
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        frames.append(env.render())
        done = terminated or truncated
    env.close()
    try:
        import imageio.v2 as imageio

        imageio.mimsave(path, frames, fps=round(1 / env.unwrapped.dt))
    except Exception as e:
        raise CheckpointError(
            f"cannot write {path} ({type(e).__name__}: {str(e)[:160]}); mp4 needs "
            "imageio-ffmpeg: pip install 'spikerl_jax[render]'"
        ) from None
    return path

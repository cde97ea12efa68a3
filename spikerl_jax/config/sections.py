"""The sections of a run's config: the spiking actor, the critics, the learning rule they
share (TD3's section) and SAC's entropy settings."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from spikerl_jax.config.base import ConfigError, _finite, flag


@dataclasses.dataclass(frozen=True)
class PopSANConfig:
    """The population-coded spiking actor."""

    pop_in: int = 10
    """Encoder neurons per observation dimension."""
    pop_out: int = 10
    """Output (decoder) neurons per action dimension."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor: LIF neurons (PopSAN) or ReLU units (--actor mlp)."""
    timesteps: int = 5
    """Spike timesteps T per inference."""
    encoder_input: Literal["observation", "tanh"] = "observation"
    """What the encoder's receptive fields see: the (normalized) observation, or its tanh
    (the proxy-target paper's actor, with --no-obs-normalization and --encoder-mean-range
    -1 1)."""
    encoder: Literal["regular", "poisson"] = "regular"
    """Encoder spikes: deterministic integrate-and-fire ('regular') or Bernoulli ('poisson')."""
    encoder_mean_range: tuple[float, float] = (-3.0, 3.0)
    """Initial receptive-field means are evenly spaced over this range."""
    encoder_std: float = math.sqrt(0.15)
    """Initial receptive-field standard deviation."""
    current_decay: float = 0.5
    """LIF synaptic current decay per timestep: the fraction of the current kept, in [0, 1]."""
    voltage_decay: float = 0.75
    """LIF membrane voltage decay per timestep: the fraction of the voltage kept, in [0, 1]."""
    threshold: float = 0.5
    """LIF firing threshold."""
    surrogate: Literal["rectangular", "fast_sigmoid", "arctan"] = "rectangular"
    """Surrogate gradient shape of the LIF spike."""
    actor_precision: Literal["fp32", "bf16", "bf16-pure"] = "fp32"
    """Actor precision: fp32; bf16 (bf16 matmuls, f32 params and LIF state); bf16-pure
    (bf16 params too). See spikerl_jax/precision.py."""
    layer_by_layer: bool | None = None
    """Run the LIF layers layer by layer (one matmul over all T per layer: fastest for acting
    batches); False: timestep by timestep as PopSAN does (on CPUs, faster from batch 128);
    None: the faster one for each batch. Identical spikes; only the speed differs."""
    surrogate_param: float | None = None
    """Half-width (rectangular), slope (fast_sigmoid) or alpha (arctan); None: PopSAN's 0.5 /
    10 / 2."""
    drive_penalty: float = 0.0
    """PopSAN only: weight of a penalty, added to the actor's loss, on output neurons whose
    mean input drive over the batch lies outside the range where they can change their spike
    count (they fire at every timestep or never, for every state). Its gradient reaches
    their weights directly, not through the surrogate, so stuck neurons come back. 0: off
    (TD3 as in PopSAN). Locomotion presets: 1 (--paper: 0). See docs/learning.md."""

    def validate(self) -> None:
        for name in ("pop_in", "pop_out", "timesteps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{flag(name)} must be positive")
        if not self.hidden_sizes or min(self.hidden_sizes) <= 0:
            raise ConfigError("--hidden-sizes must be one or more positive layer widths")
        _finite("encoder_std", self.encoder_std, 0.0, low_open=True)
        low, high = self.encoder_mean_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError(
                f"--encoder-mean-range must be two finite numbers LOW HIGH with "
                f"LOW < HIGH, got {low} {high}"
            )
        for name in ("current_decay", "voltage_decay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # NaN fails too
                raise ConfigError(
                    f"{flag(name)} must lie in [0, 1] (the fraction of the LIF state kept "
                    f"per timestep; above 1 it grows without bound), got {value}"
                )
        _finite("threshold", self.threshold, 0.0, low_open=True)
        if self.surrogate_param is not None:
            _finite("surrogate_param", self.surrogate_param, 0.0, low_open=True)
        _finite("drive_penalty", self.drive_penalty, 0.0)


@dataclasses.dataclass(frozen=True)
class CriticConfig:
    """The twin non-spiking Q networks."""

    critic_hidden_sizes: tuple[int, ...] = (256, 256)
    """ReLU units per hidden layer of each critic."""
    critic_precision: Literal["fp32", "bf16", "bf16-pure"] = "fp32"
    """Critic precision (as --actor-precision); losses and targets stay float32."""

    def validate(self) -> None:
        if not self.critic_hidden_sizes or min(self.critic_hidden_sizes) <= 0:
            raise ConfigError("--critic-hidden-sizes must be one or more positive layer widths")


@dataclasses.dataclass(frozen=True)
class TD3Config:
    """TD3's learning rule."""

    gamma: float = 0.99
    """Discount factor."""
    polyak: float = 0.995
    """Target networks keep this fraction of themselves at every actor step."""
    actor_lr: float = 1e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics."""
    batch_size: int = 100
    """Transitions per gradient step."""
    policy_delay: int = 2
    """Critic steps per actor (and target) step."""
    target_noise: float = 0.2
    """Std of the target-policy smoothing noise in action units, as in PopSAN (CleanRL's
    policy_noise is relative to the action scale: the same where it is 1)."""
    target_noise_clip: float = 0.5
    """The smoothing noise is clipped to +-this (action units)."""
    target_actor: Literal["snn", "proxy"] = "snn"
    """Where the critic's target action comes from: 'snn', the actor's own Polyak-averaged
    target network (TD3; PopSAN's setting); 'proxy', an ANN proxy fitted to the actor's
    actions at every critic step (Xu et al., NeurIPS 2025, arXiv 2505.24161), with Polyak
    averaging of the critic targets only."""
    proxy_hidden_sizes: tuple[int, ...] = (512, 512)
    """--target-actor proxy: ReLU units per hidden layer of the proxy network."""
    proxy_lr: float = 1e-3
    """--target-actor proxy: Adam learning rate of the proxy."""
    proxy_steps: int = 3
    """--target-actor proxy: proxy regression steps (fresh replay batches) per critic step."""

    def validate(self) -> None:
        if self.batch_size <= 0:
            raise ConfigError(f"--batch-size must be positive, got {self.batch_size}")
        if self.policy_delay <= 0:
            raise ConfigError(f"--policy-delay must be positive, got {self.policy_delay}")
        for name in ("polyak", "gamma"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # NaN fails too
                raise ConfigError(f"{flag(name)} must lie in [0, 1], got {value}")
        for name in ("actor_lr", "critic_lr", "proxy_lr"):
            _finite(name, getattr(self, name), 0.0, low_open=True)
        for name in ("target_noise", "target_noise_clip"):
            _finite(name, getattr(self, name), 0.0)
        if self.proxy_steps <= 0:
            raise ConfigError(f"--proxy-steps must be positive, got {self.proxy_steps}")
        if not self.proxy_hidden_sizes or min(self.proxy_hidden_sizes) <= 0:
            raise ConfigError("--proxy-hidden-sizes must be one or more positive layer widths")


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC's entropy regularisation (--algo sac; its other settings are the shared learning
    rule's: learning rates, batch, discount, Polyak, --policy-delay)."""

    alpha: float = 0.2
    """The entropy coefficient (PopSAN's 0.2), or its initial value with --learn-alpha."""
    learn_alpha: bool = False
    """Learn the entropy coefficient towards --target-entropy (as CleanRL's autotune and SB3's
    ent_coef='auto'), at --critic-lr; off: a fixed --alpha, as PopSAN."""
    target_entropy: float | None = None
    """--learn-alpha: the policy entropy the coefficient aims at (None: -action dims, as
    CleanRL and SB3)."""

    def validate(self) -> None:
        _finite("alpha", self.alpha, 0.0, low_open=True)
        if self.target_entropy is not None:
            _finite("target_entropy", self.target_entropy)

"""Population coding: Gaussian receptive-field encoder and grouped population decoder.

Shapes: ``T`` spike timesteps, ``B`` batch, ``D`` observation dims, ``A`` action dims,
``P`` neurons per population.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from spikerl_jax.initializers import torch_uniform_init
from spikerl_jax.snn.surrogate import StraightThrough, spike

# PopSAN's regular-spike threshold: just below 1, so that an activation of exactly 1 (an
# observation at a neuron's mean) fires on every timestep.
ENCODER_THRESHOLD = 0.999


def gaussian_activation(obs_BD: jax.Array, mean_DP: jax.Array, std_DP: jax.Array) -> jax.Array:
    """Receptive-field activation ``exp(-(o - mu)^2 / (2 sigma^2))``, flattened to ``(B, D*P)``."""
    a_BDP = jnp.exp(-0.5 * (obs_BD[:, :, None] - mean_DP) ** 2 / std_DP**2)
    return a_BDP.reshape(obs_BD.shape[0], -1)


def regular_spikes(activation_BN: jax.Array, timesteps: int) -> jax.Array:
    """Deterministic spikes: integrate the activation, spike above 0.999, subtract 0.999.

    The integrate-and-subtract loop has a closed form, used here because it is one
    elementwise pass over ``(T, B, N)`` instead of a ``T``-step recurrence (which XLA fuses
    into a per-timestep recomputation): with ``A <= 1 < 2 * 0.999`` at most one spike fires
    per step, so after ``t`` steps ``n_t = #{n >= 1 : 0.999 n < t A}`` spikes have fired, and
    step ``t`` fires iff its membrane ``t A - 0.999 n_{t-1}`` exceeds 0.999.

    The spike's gradient passes straight through (``d s_t / d A = 1``, as PopSAN's), so the
    encoder's means and stds learn from the network's loss.

    Returns:
      Spikes ``(T, B, N)``.
    """
    t = jnp.arange(1, timesteps + 1, dtype=activation_BN.dtype)[:, None, None]
    fired_before = jnp.clip(jnp.ceil((t - 1) * activation_BN / ENCODER_THRESHOLD) - 1, 0, t - 1)
    membrane = t * activation_BN - ENCODER_THRESHOLD * fired_before
    spikes_TBN = (membrane > ENCODER_THRESHOLD).astype(activation_BN.dtype)
    # Exact straight-through: the value is the spikes (A - stop_gradient(A) == 0 exactly).
    return spikes_TBN + (activation_BN - jax.lax.stop_gradient(activation_BN))


def poisson_spikes(activation_BN: jax.Array, timesteps: int, key: jax.Array) -> jax.Array:
    """Stochastic spikes: ``Bernoulli(activation)`` per timestep, straight-through gradient.

    Returns:
      Spikes ``(T, B, N)``, a function of ``key`` alone for a given activation.
    """
    u_TBN = jax.random.uniform(key, (timesteps, *activation_BN.shape), activation_BN.dtype)
    return spike(StraightThrough(), activation_BN - u_TBN)  # fires iff u < activation


class PopulationEncoder(nn.Module):
    """Encodes each observation dim with ``pop_size`` Gaussian receptive fields.

    Attributes:
      pop_size: neurons per observation dim.
      timesteps: spike timesteps ``T``.
      mean_range: the initial means are evenly spaced over this range (learnable).
      std: the initial std of every field (learnable).
      mode: ``"regular"`` (deterministic) or ``"poisson"`` (needs a key).
    """

    pop_size: int = 10
    timesteps: int = 5
    mean_range: tuple[float, float] = (-3.0, 3.0)
    std: float = math.sqrt(0.15)
    mode: str = "regular"
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, obs_BD: jax.Array, key: jax.Array | None = None, init_std: jax.Array | None = None
    ) -> jax.Array:
        """Maps normalized observations ``(B, D)`` to spikes ``(T, B, D*P)``.

        ``init_std`` replaces ``std`` as the initial width when the parameters are created
        (a traced value: population members may start from different widths).
        """
        obs_dim = obs_BD.shape[-1]
        lo, hi = self.mean_range
        mean_DP = self.param(
            "mean",
            lambda _, shape, dtype: jnp.broadcast_to(
                jnp.linspace(lo, hi, self.pop_size, dtype=dtype), shape
            ),
            (obs_dim, self.pop_size),
            self.param_dtype,
        )
        std = self.std if init_std is None else init_std
        std_DP = self.param(
            "std",
            lambda _, shape, dtype: jnp.full(shape, std, dtype),
            (obs_dim, self.pop_size),
            self.param_dtype,
        )
        # Receptive fields and spikes in float32 whatever the parameters' storage dtype.
        f32 = jnp.float32
        activation_BN = gaussian_activation(obs_BD, mean_DP.astype(f32), std_DP.astype(f32))
        if self.mode == "regular":
            return regular_spikes(activation_BN, self.timesteps)
        if self.mode == "poisson":
            if key is None:
                raise ValueError("the Poisson encoder needs a PRNG key: pass key=...")
            return poisson_spikes(activation_BN, self.timesteps, key)
        raise ValueError(f"unknown encoder mode {self.mode!r}; use 'regular' or 'poisson'")


class PopulationDecoder(nn.Module):
    """Firing rate over ``T``, then per action a weighted sum of its own population, tanh.

    Grouped, not dense (PopSAN's ``Conv1d(A, A, P, groups=A)``): action ``a`` reads only
    neurons ``a*P .. a*P + P - 1``.

    Attributes:
      action_dim: ``A``.
      pop_size: ``P`` neurons per action.
      action_limit: the tanh output is scaled by it (symmetric bounds).
    """

    action_dim: int
    pop_size: int = 10
    action_limit: float = 1.0
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, spikes_TBN: jax.Array, squash: bool = True) -> jax.Array:
        """Maps output spikes ``(T, B, A*P)`` to actions ``(B, A)`` in ``[-limit, limit]``
        (``squash`` False: the weighted sums before tanh and the limit, a Gaussian's mean
        for SAC)."""
        init = torch_uniform_init(self.pop_size)
        weight_AP = self.param("weight", init, (self.action_dim, self.pop_size), self.param_dtype)
        bias_A = self.param("bias", init, (self.action_dim,), self.param_dtype)
        rate_BAP = spikes_TBN.mean(axis=0).reshape(-1, self.action_dim, self.pop_size)
        pre_tanh = (rate_BAP * weight_AP.astype(jnp.float32)).sum(-1) + bias_A.astype(jnp.float32)
        return self.action_limit * jnp.tanh(pre_tanh) if squash else pre_tanh

"""The running observation normalizer: mean and variance of every observation dim.

Shapes: ``N`` observations added at once, ``D`` obs dims.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Normalizer:
    """Running mean and variance of every observation dim (Chan et al.'s batched merge)."""

    # float32 count: only ratios of counts enter the merge, so the relative precision of
    # float32 (1e-7) stays adequate past 2**31 observations, where int32 would overflow.
    count: jax.Array  # () float32
    mean: jax.Array  # (D,)
    var: jax.Array  # (D,) population variance


def normalizer_init(obs_dim: int) -> Normalizer:
    """Identity statistics (mean 0, var 1) until the first update."""
    return Normalizer(jnp.float32(0.0), jnp.zeros(obs_dim), jnp.ones(obs_dim))


def normalizer_update(norm: Normalizer, obs_ND: jax.Array) -> Normalizer:
    """Merges the statistics of a batch of ``N`` observations into the running ones."""
    n = jnp.float32(obs_ND.shape[0])
    batch_mean, batch_var = obs_ND.mean(0), obs_ND.var(0)
    total = norm.count + n
    delta = batch_mean - norm.mean
    mean = norm.mean + delta * (n / total)
    m2 = norm.var * norm.count + batch_var * n + delta**2 * (norm.count * n / total)
    return Normalizer(total, mean, m2 / total)


def normalize(norm: Normalizer, obs: jax.Array, clip: float = 3.0) -> jax.Array:
    """``clip((obs - mean) / std, -clip, clip)``, any leading shape."""
    return jnp.clip((obs - norm.mean) * jax.lax.rsqrt(norm.var + 1e-8), -clip, clip)

"""Parameter initializers shared by the spiking actor and the non-spiking networks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def torch_uniform_init(fan_in: int):
    """PyTorch's default ``nn.Linear`` init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    The reference (PopSAN, SpikeRL) uses PyTorch defaults for every weight and bias; matching
    them keeps initial firing rates, and so learning, comparable.
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init

"""The spike nonlinearity: an exact Heaviside forward with a surrogate gradient.

A surrogate is a small frozen dataclass whose ``derivative`` is the backward shape; it is a
static (hashable) argument of ``spike``, so it selects code, not a traced value.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Protocol

import jax
import jax.numpy as jnp


class Surrogate(Protocol):
    """The backward shape of a spike: ``d spike / d x`` evaluated at ``x = v - threshold``."""

    def derivative(self, x: jax.Array) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class Rectangular:
    """PopSAN's window: ``1`` where ``|x| < half_width``, else ``0`` (unnormalized, as PopSAN)."""

    half_width: float = 0.5

    def derivative(self, x: jax.Array) -> jax.Array:
        return (jnp.abs(x) < self.half_width).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class FastSigmoid:
    """SuperSpike's fast sigmoid: ``1 / (1 + slope * |x|)**2``."""

    slope: float = 10.0

    def derivative(self, x: jax.Array) -> jax.Array:
        return 1.0 / (1.0 + self.slope * jnp.abs(x)) ** 2


@dataclasses.dataclass(frozen=True)
class ArcTan:
    """Arctan surrogate (SpikingJelly's): ``(alpha / 2) / (1 + (pi / 2 * alpha * x)**2)``."""

    alpha: float = 2.0

    def derivative(self, x: jax.Array) -> jax.Array:
        return (self.alpha / 2.0) / (1.0 + (math.pi / 2.0 * self.alpha * x) ** 2)


@dataclasses.dataclass(frozen=True)
class StraightThrough:
    """Identity gradient; PopSAN's regular encoder spikes use it."""

    def derivative(self, x: jax.Array) -> jax.Array:
        return jnp.ones_like(x)


SURROGATES = {"rectangular": Rectangular, "fast_sigmoid": FastSigmoid, "arctan": ArcTan}


def make_surrogate(name: str, param: float | None = None) -> Surrogate:
    """Builds a surrogate by name; ``param`` is its width/slope/alpha (``None``: its default)."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; choose one of {sorted(SURROGATES)}")
    return SURROGATES[name]() if param is None else SURROGATES[name](param)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def spike(surrogate: Surrogate, x: jax.Array) -> jax.Array:
    """Heaviside step ``H(x)`` (``x > 0``, so ``H(0) = 0``) with ``surrogate``'s gradient.

    Args:
      surrogate: a hashable surrogate (static: it selects the backward, not a traced value).
      x: membrane minus threshold, any shape.

    Returns:
      Spikes in ``{0, 1}`` with ``x``'s shape and dtype.
    """
    return (x > 0).astype(x.dtype)


def _spike_fwd(surrogate, x):
    return spike(surrogate, x), x


def _spike_bwd(surrogate, x, g):
    return (g * surrogate.derivative(x),)


spike.defvjp(_spike_fwd, _spike_bwd)

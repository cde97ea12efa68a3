"""Precision policies, in one place; every module asks this one.

- ``fp32``: everything float32.
- ``bf16``: matmul inputs (weights, spikes, activations) in bfloat16 with float32 accumulation;
  float32 master parameters, optimizer state, LIF membranes/currents and thresholds, losses,
  targets and the replay buffer.
- ``bf16-pure``: as ``bf16`` but the parameters themselves (so Adam's moments) are bfloat16.

bfloat16 needs no loss scaling: it keeps float32's 8-bit exponent (range ~1e-38..3e38), so
gradients do not underflow the way float16's (5-bit exponent, smallest normal 6e-5) do; loss
scaling exists for float16, which no policy here uses.

On GPUs JAX's default matmul precision for float32 is TF32 on Ampere and newer (10-bit
mantissa), which has broken RL training elsewhere; ``full_precision_matmuls`` pins it to full
float32 so that ``fp32`` means float32 on every device (a training session traces its
programs inside it, and leaves the process's setting as it found it).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

POLICIES = ("fp32", "bf16", "bf16-pure")


@dataclasses.dataclass(frozen=True)
class Precision:
    """A policy's dtypes: ``compute`` for matmul inputs, ``param`` for stored parameters."""

    name: str
    compute: jnp.dtype
    param: jnp.dtype

    def matmul(self, x: jax.Array, w: jax.Array) -> jax.Array:
        """``x @ w`` with inputs in the compute dtype and a float32 result (f32 accumulation)."""
        return jnp.matmul(
            x.astype(self.compute), w.astype(self.compute), preferred_element_type=jnp.float32
        )


def get_policy(name: str) -> Precision:
    """The named policy; raises ``ValueError`` naming the choices for an unknown one."""
    if name == "fp32":
        return Precision(name, jnp.float32, jnp.float32)
    if name == "bf16":
        return Precision(name, jnp.bfloat16, jnp.float32)
    if name == "bf16-pure":
        return Precision(name, jnp.bfloat16, jnp.bfloat16)
    raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(POLICIES)}")


def in_full_precision(fn: Callable) -> Callable:
    """``fn`` (a jitted function) called, and so traced, in ``full_precision_matmuls``:
    a loaded policy acts as it trained, whatever the caller's setting."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with full_precision_matmuls():
            return fn(*args, **kwargs)

    return call


def full_precision_matmuls():
    """A context in which float32 matmuls mean float32 (not TF32) on GPUs; a no-op in effect
    on CPUs. Programs traced inside it keep it; outside it the process's own setting holds."""
    return jax.default_matmul_precision("highest")

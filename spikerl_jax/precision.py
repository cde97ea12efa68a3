"""The precisions (which dtypes compute and store what), in one place; every module asks
this one. ("Policy" in this library means the acting policy only.)

- ``fp32``: everything float32.
- ``bf16``: matmul inputs (weights, spikes, activations) in bfloat16 with float32 accumulation,
  in the backward pass too (``Precision.matmul``); float32 master parameters, optimizer state,
  LIF membranes/currents and thresholds, losses, targets and the replay buffer.
- ``bf16-pure``: as ``bf16`` but the parameters themselves (so Adam's moments) are bfloat16.

bfloat16 needs no loss scaling: it keeps float32's 8-bit exponent (range ~1e-38..3e38), so
gradients do not underflow the way float16's (5-bit exponent, smallest normal 6e-5) do; loss
scaling exists for float16, which no precision here uses.

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

PRECISIONS = ("fp32", "bf16", "bf16-pure")


@dataclasses.dataclass(frozen=True)
class Precision:
    """A precision's dtypes: ``compute`` for matmul inputs, ``param`` for stored parameters."""

    name: str
    compute: jnp.dtype
    param: jnp.dtype

    def matmul(self, x: jax.Array, w: jax.Array) -> jax.Array:
        """``x @ w`` with inputs in the compute dtype and a float32 result (f32 accumulation).

        ``x`` is ``(..., I)``, ``w`` ``(I, J)``. Under a narrow compute dtype the backward
        matmuls run in it too (``narrow_matmul``).
        """
        if self.compute == jnp.float32:
            return jnp.matmul(
                x.astype(jnp.float32), w.astype(jnp.float32), preferred_element_type=jnp.float32
            )
        return narrow_matmul(x.astype(self.compute), w.astype(self.compute))


@jax.custom_vjp
def narrow_matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x @ w`` for bfloat16 ``x`` ``(..., I)`` and ``w`` ``(I, J)``: a float32 ``(..., J)``.

    Its gradients are bfloat16 matmuls with float32 accumulation as well, as mixed-precision
    training does everywhere: the float32 cotangent is rounded to bfloat16 first. JAX's own
    transpose would pair the float32 cotangent with the bfloat16 operand, and XLA runs such a
    mixed matmul in float32 (both operands converted), so the backward pass would not run in
    bfloat16 at all (the speed-up this buys: BENCHMARKS.md, "bf16 spiking layers").
    """
    return jnp.matmul(x, w, preferred_element_type=jnp.float32)


def _narrow_matmul_fwd(x, w):
    return narrow_matmul(x, w), (x, w)


def _narrow_matmul_bwd(residuals, cotangent):
    x, w = residuals
    cotangent = cotangent.astype(x.dtype)
    dx = jnp.matmul(cotangent, w.T, preferred_element_type=jnp.float32)
    # x's transpose materialized as its own bfloat16 array: folded into the weight gradient's
    # dot, it makes a transposed-operand matmul, which XLA's CPU backend runs in float32.
    x_IN = jax.lax.optimization_barrier(x.reshape(-1, x.shape[-1]).T)
    dw = jnp.matmul(
        x_IN, cotangent.reshape(-1, cotangent.shape[-1]), preferred_element_type=jnp.float32
    )
    return dx.astype(x.dtype), dw.astype(w.dtype)


narrow_matmul.defvjp(_narrow_matmul_fwd, _narrow_matmul_bwd)


def get_precision(name: str) -> Precision:
    """The named precision; raises ``ValueError`` naming the choices for an unknown one."""
    if name == "fp32":
        return Precision(name, jnp.float32, jnp.float32)
    if name == "bf16":
        return Precision(name, jnp.bfloat16, jnp.float32)
    if name == "bf16-pure":
        return Precision(name, jnp.bfloat16, jnp.bfloat16)
    raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")


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

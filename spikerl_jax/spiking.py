"""Spike functions with surrogate gradients and current-based LIF dynamics.

Everything here is a pure function over arrays; time is the leading axis (``T``) and is
walked with ``lax.scan``. The Flax module at the bottom only owns the weights.

Shapes: ``T`` spike timesteps, ``B`` batch, ``N`` neurons.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from spikerl_jax.precision import Precision, get_policy

FP32 = get_policy("fp32")

# ----------------------------------------------------------------------------- surrogates


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


# ----------------------------------------------------------------------------- LIF dynamics


@dataclasses.dataclass(frozen=True)
class LIFNeuron:
    """Current-based LIF constants (PopSAN's defaults).

    Per timestep: ``c = cd*c + drive``; ``v = vd*v*(1 - s) + c``; ``s = H(v - threshold)``.
    """

    current_decay: float = 0.5
    voltage_decay: float = 0.75
    threshold: float = 0.5
    surrogate: Surrogate = Rectangular(0.5)


def lif_scan(
    neuron: LIFNeuron, drive_TBN: jax.Array, unroll: bool = True
) -> tuple[jax.Array, jax.Array]:
    """Runs a layer of LIF neurons over ``T`` timesteps from rest.

    Args:
      neuron: the LIF constants.
      drive_TBN: synaptic input ``W @ s_in + b`` for every timestep, ``(T, B, N)``.
      unroll: unroll the scan (T is small; unrolling lets XLA fuse the elementwise steps).

    Returns:
      ``(spikes_TBN, voltages_TBN)``; voltages are the membranes after integration, before reset.
    """

    def step(carry, drive_BN):
        current, voltage, spikes = carry
        current = neuron.current_decay * current + drive_BN
        voltage = neuron.voltage_decay * voltage * (1.0 - spikes) + current
        spikes = spike(neuron.surrogate, voltage - neuron.threshold)
        return (current, voltage, spikes), (spikes, voltage)

    zeros = jnp.zeros_like(drive_TBN[0])
    _, (spikes_TBN, voltages_TBN) = jax.lax.scan(
        step, (zeros, zeros, zeros), drive_TBN, unroll=unroll
    )
    return spikes_TBN, voltages_TBN


# ----------------------------------------------------------------------------- spiking MLP


def spiking_mlp_layerwise(
    neuron: LIFNeuron,
    layers: Sequence[tuple[jax.Array, jax.Array]],
    spikes_TBN: jax.Array,
    precision: Precision = FP32,
) -> list[jax.Array]:
    """Spiking MLP computed layer by layer (the fast formulation).

    No layer feeds back into an earlier one, so each layer's drive for all ``T`` timesteps is a
    single ``(T*B, n_in) @ (n_in, n_out)`` matmul, followed by an elementwise LIF scan.

    Args:
      neuron: the LIF constants, shared by every layer.
      layers: ``(kernel (n_in, n_out), bias (n_out,))`` per layer.
      spikes_TBN: input spikes ``(T, B, n_in)``.
      precision: dtype policy of the matmuls (the LIF state stays float32).

    Returns:
      The spikes of every layer, each ``(T, B, n_out)``.
    """
    out = []
    for kernel, bias in layers:
        drive_TBN = precision.matmul(spikes_TBN, kernel) + bias.astype(jnp.float32)
        spikes_TBN, _ = lif_scan(neuron, drive_TBN)
        out.append(spikes_TBN)
    return out


def spiking_mlp_stepwise(
    neuron: LIFNeuron,
    layers: Sequence[tuple[jax.Array, jax.Array]],
    spikes_TBN: jax.Array,
    precision: Precision = FP32,
) -> list[jax.Array]:
    """The same network timestep by timestep (``T`` small matmuls per layer), as PopSAN runs it.

    Kept as the reference formulation that ``spiking_mlp_layerwise`` must reproduce exactly, and
    for the benchmark that compares the two.
    """

    def step(carry, spikes_in_BN):
        new_carry, out = [], []
        for (kernel, bias), (current, voltage, spikes) in zip(layers, carry, strict=True):
            drive_BN = precision.matmul(spikes_in_BN, kernel) + bias.astype(jnp.float32)
            current = neuron.current_decay * current + drive_BN
            voltage = neuron.voltage_decay * voltage * (1.0 - spikes) + current
            spikes = spike(neuron.surrogate, voltage - neuron.threshold)
            new_carry.append((current, voltage, spikes))
            out.append(spikes)
            spikes_in_BN = spikes
        return new_carry, out

    batch = spikes_TBN.shape[1]
    carry = [(jnp.zeros((batch, k.shape[1]), jnp.float32),) * 3 for k, _ in layers]
    _, out = jax.lax.scan(step, carry, spikes_TBN, unroll=True)
    return out


def torch_uniform_init(fan_in: int):
    """PyTorch's default ``nn.Linear`` init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    The reference (PopSAN, SpikeRL) uses PyTorch defaults for every weight and bias; matching
    them keeps initial firing rates, and so learning, comparable.
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class SpikingMLP(nn.Module):
    """Dense layers of current-based LIF neurons; owns the weights, runs the pure functions.

    Attributes:
      layer_sizes: neurons per layer, the last one included.
      neuron: LIF constants.
      layerwise: the fast layer-by-layer formulation (``False``: timestep by timestep).
      precision: dtype policy name (``spikerl_jax.precision``).
    """

    layer_sizes: Sequence[int]
    neuron: LIFNeuron = LIFNeuron()
    layerwise: bool = True
    precision: str = "fp32"

    @nn.compact
    def __call__(self, spikes_TBN: jax.Array) -> list[jax.Array]:
        """Maps input spikes ``(T, B, n_in)`` to every layer's spikes ``[(T, B, n_k)]``."""
        policy = get_policy(self.precision)
        layers = []
        fan_in = spikes_TBN.shape[-1]
        for i, size in enumerate(self.layer_sizes):
            init = torch_uniform_init(fan_in)
            kernel = self.param(f"kernel_{i}", init, (fan_in, size), policy.param)
            bias = self.param(f"bias_{i}", init, (size,), policy.param)
            layers.append((kernel, bias))
            fan_in = size
        run = spiking_mlp_layerwise if self.layerwise else spiking_mlp_stepwise
        return run(self.neuron, layers, spikes_TBN, policy)

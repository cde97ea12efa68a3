"""Current-based LIF neurons: the neuron step (written once), its scan over time, and the
spiking MLP in two formulations that both call the step.

Everything here is a pure function over arrays; time is the leading axis (``T``) and is walked
with ``lax.scan``. The Flax module at the bottom only owns the weights.

Shapes: ``T`` spike timesteps, ``B`` batch, ``N`` neurons.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from spikerl_jax.initializers import torch_uniform_init
from spikerl_jax.precision import Precision, get_precision
from spikerl_jax.snn.surrogate import Rectangular, Surrogate, spike

FP32 = get_precision("fp32")


@dataclasses.dataclass(frozen=True)
class LIFNeuron:
    """Current-based LIF constants (PopSAN's defaults); the equations are ``lif_step``'s."""

    current_decay: float = 0.5
    voltage_decay: float = 0.75
    threshold: float = 0.5
    surrogate: Surrogate = Rectangular(0.5)


class LIFState(NamedTuple):
    """A layer's state between timesteps, each ``(B, N)``."""

    current: jax.Array
    voltage: jax.Array  # after integration, before reset
    spikes: jax.Array  # of the last timestep (they reset the voltage at the next one)

    @classmethod
    def rest(cls, shape, dtype=jnp.float32) -> LIFState:
        zeros = jnp.zeros(shape, dtype)
        return cls(zeros, zeros, zeros)


def lif_step(neuron: LIFNeuron, state: LIFState, drive_BN: jax.Array) -> tuple[LIFState, jax.Array]:
    """One timestep of a layer: ``c = cd*c + drive``; ``v = vd*v*(1 - s) + c``;
    ``s = H(v - threshold)`` (the surrogate gives H's gradient).

    Returns:
      The new state and its spikes ``(B, N)``.
    """
    current = neuron.current_decay * state.current + drive_BN
    voltage = neuron.voltage_decay * state.voltage * (1.0 - state.spikes) + current
    spikes = spike(neuron.surrogate, voltage - neuron.threshold)
    return LIFState(current, voltage, spikes), spikes


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

    def step(state, drive_BN):
        state, spikes = lif_step(neuron, state, drive_BN)
        return state, (spikes, state.voltage)

    _, (spikes_TBN, voltages_TBN) = jax.lax.scan(
        step, LIFState.rest(drive_TBN.shape[1:], drive_TBN.dtype), drive_TBN, unroll=unroll
    )
    return spikes_TBN, voltages_TBN


def _drive(precision: Precision, spikes: jax.Array, kernel: jax.Array, bias: jax.Array):
    return precision.matmul(spikes, kernel) + bias.astype(jnp.float32)


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
      precision: precision of the matmuls (the LIF state stays float32).

    Returns:
      The spikes of every layer, each ``(T, B, n_out)``.
    """
    out = []
    for kernel, bias in layers:
        spikes_TBN, _ = lif_scan(neuron, _drive(precision, spikes_TBN, kernel, bias))
        out.append(spikes_TBN)
    return out


def spiking_mlp_stepwise(
    neuron: LIFNeuron,
    layers: Sequence[tuple[jax.Array, jax.Array]],
    spikes_TBN: jax.Array,
    precision: Precision = FP32,
) -> list[jax.Array]:
    """The same network timestep by timestep (``T`` small matmuls per layer), as PopSAN runs it.

    The reference formulation that ``spiking_mlp_layerwise`` must reproduce exactly; faster at
    training batches (its per-timestep working set stays in cache: BENCHMARKS.md).
    """

    def step(states, spikes_in_BN):
        new_states, out = [], []
        for (kernel, bias), state in zip(layers, states, strict=True):
            state, _ = lif_step(neuron, state, _drive(precision, spikes_in_BN, kernel, bias))
            # Materialize each timestep's state once: otherwise XLA fuses the recurrence up to
            # timestep t into the consumer of t's spikes, recomputing it T(T+1)/2 times.
            state = jax.lax.optimization_barrier(state)
            spikes_in_BN = state.spikes
            new_states.append(state)
            out.append(spikes_in_BN)
        return new_states, out

    batch = spikes_TBN.shape[1]
    states = [LIFState.rest((batch, kernel.shape[1])) for kernel, _ in layers]
    _, out = jax.lax.scan(step, states, spikes_TBN, unroll=True)
    return out


STEPWISE_FROM_BATCH = 128


def layerwise_is_faster(batch: int) -> bool:
    """The formulation ``SpikingMLP(layerwise=None)`` picks for ``batch`` observations.

    On CPUs, layer by layer below ``STEPWISE_FROM_BATCH``: acting batches (fewer, larger ops)
    and the paper's training batch of 100, where both tie; timestep by timestep from it, where
    each timestep's working set stays in cache and the update is faster. Elsewhere (GPUs,
    unmeasured) layer by layer, as before. Figures: BENCHMARKS.md, "LIF formulations".
    """
    return batch < STEPWISE_FROM_BATCH or jax.default_backend() != "cpu"


class SpikingMLP(nn.Module):
    """Dense layers of current-based LIF neurons; owns the weights, runs the pure functions.

    Attributes:
      layer_sizes: neurons per layer, the last one included.
      neuron: LIF constants.
      layerwise: the layer-by-layer formulation (``False``: timestep by timestep; ``None``: the
        faster one for the batch, ``layerwise_is_faster``). Both give identical spikes.
      precision: precision name (``spikerl_jax.precision``).
    """

    layer_sizes: Sequence[int]
    neuron: LIFNeuron = LIFNeuron()
    layerwise: bool | None = None
    precision: str = "fp32"

    @nn.compact
    def __call__(self, spikes_TBN: jax.Array) -> list[jax.Array]:
        """Maps input spikes ``(T, B, n_in)`` to every layer's spikes ``[(T, B, n_k)]``."""
        precision = get_precision(self.precision)
        layers = []
        fan_in = spikes_TBN.shape[-1]
        for i, size in enumerate(self.layer_sizes):
            init = torch_uniform_init(fan_in)
            kernel = self.param(f"kernel_{i}", init, (fan_in, size), precision.param)
            bias = self.param(f"bias_{i}", init, (size,), precision.param)
            layers.append((kernel, bias))
            fan_in = size
        layerwise = self.layerwise
        if layerwise is None:
            layerwise = layerwise_is_faster(spikes_TBN.shape[1])
        run = spiking_mlp_layerwise if layerwise else spiking_mlp_stepwise
        return run(self.neuron, layers, spikes_TBN, precision)

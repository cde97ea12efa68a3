"""PopSAN's spiking layers in Loihi's fixed-point arithmetic: a chip model in JAX.

    from spikerl_jax.export.loihi import quantize, chip_apply
    chip = quantize(actor_params, cfg.actor)                # float parameters -> integers
    action, trains = chip_apply(actor, actor_params, chip, obs_BD)   # host enc/dec, chip LIF

The model computes what Lava's bit-accurate Loihi neuron (``PyLifModelBitAcc``, Lava 0.10)
and its fixed-point ``Dense`` synapses (``PyDenseModelBitAcc``) compute, step for step, and
runs under ``jit`` and ``vmap`` like the float actor. ``benchmarks/loihi_check.py`` runs Lava
itself on the same input spikes; ``tests/export/test_loihi.py`` requires identical spikes,
currents and voltages at every timestep (docs/neuromorphic.md has the outputs).

Shapes: ``T`` timesteps, ``B`` batch (observations), ``I`` a layer's inputs, ``N`` its neurons.

**Loihi's neuron, as Lava computes it** (all integers; ``>>`` is an arithmetic shift)::

    a_t = sum_groups shift(sum_i w_i s_i, weight_exp)      one sum per synapse group (Dense)
    u_t = wrap(trunc(u_{t-1} * (4096 - du - 1) / 4096) + (a_t << 6))
    v_t = clip(trunc(v'_{t-1} * (4096 - dv) / 4096) + u_t + (bias_mant << bias_exp))
    s_t = v_t > (vth << 6)
    v'_t = 0 where s_t else v_t                            (the reset ends the timestep)

- ``shift(x, e)`` is ``x << e`` for ``e >= 0`` and ``x >> -e`` (floor) for ``e < 0``, applied
  by each synapse group to its own sum before the neuron adds the groups.
- ``trunc`` rounds toward zero: Lava multiplies in 64 bits and shifts the magnitude right by
  12, keeping the sign. The current's decay uses ``du + 1`` (Lava's ``ds_offset = 1``, a
  Loihi 1 register), the voltage's ``dv`` (``dm_offset = 0``).
- ``wrap``: the 24-bit current wraps once, ``u > 2^23 -> u - 2^24`` and
  ``u <= -2^23 -> u + 2^24`` (so ``u = 2^23`` itself stays); the voltage saturates at
  ``+-(2^23 - 1)``. Intermediate sums are int32 and wrap as int32 (as numpy's do in Lava).
- The threshold and the synaptic input are shifted left by 6 to align them with the 24-bit
  state; the compartment bias is not.
- ``v_t`` is compared with the threshold after integration; Lava stores ``v'_t`` (after the
  reset). ``chip_forward`` returns ``v_t``, as ``snn.lif.LIFState`` does.

**PopSAN's neuron** (``snn.lif.lif_step``): ``c_t = cd c_{t-1} + W s_t + b``;
``v_t = vd v_{t-1} (1 - s_{t-1}) + c_t``; ``s_t = H(v_t - theta)``. Its reset at the next
step's decay (``(1 - s_{t-1})``) is Loihi's reset to 0 at the end of the spiking step: both
give ``vd * 0 + c_t`` after a spike. The mapping (``quantize``), per layer:

- ``vth = min(floor(255 theta 2^e / M), 2^17 - 1)`` with ``M`` the largest ``|W|`` or ``|b|``
  and ``e`` the weight exponent (default 0, PopSAN's Loihi realization's), so that the
  float threshold is exact: one float unit of current or voltage is ``L = 64 vth / theta``
  integer units, and the weight mantissas ``w = round(W vth / (theta 2^e))`` lie in
  ``[-255, 255]``. Each layer has two synapse groups, excitatory (``w > 0``) and inhibitory
  (``w < 0``), each 8-bit unsigned, as PopSAN's realization connected them: a mixed-sign
  Loihi synapse has only 7 bits of magnitude (Lava keeps even values of [-256, 254]).
- ``du = 4095 - round(4096 cd)`` (``cd = 0.5 -> du = 2047``: Lava's ``ds_offset`` makes
  ``du = 2048`` decay by 2047/4096, not 0.5) and ``dv = 4096 - round(4096 vd)``
  (``vd = 0.75 -> dv = 1024``): PopSAN's decays are exact.
- PopSAN's bias enters the current, and decays with it; Loihi's compartment bias enters the
  voltage at every step, so no ``bias_mant`` reproduces it. The bias is a synapse from a
  bias neuron that fires at every timestep of the layer (PopSAN's realization had one per
  layer, driven by the host), quantized with the weights (``bias_weight``). ``bias_mant`` and
  ``bias_exp`` are 0 from ``quantize``; the model computes them for other uses.

Where chip and float differ: the weights and biases rounded to 8-bit mantissas (the one
difference of any size: a relative error up to ``1/(2*255)`` of the layer's largest weight);
the decays truncated toward zero at every step (under one unit of ``1/L``); the current's
wrap and the voltage's saturation at 24 bits (``chip_headroom`` bounds the current); and
time: on Lava (and Loihi) each synapse delays its spikes by one timestep, so layer ``k``
works on the encoder's timestep ``t`` at chip step ``t + k + 1``; the model indexes each
layer by its own timesteps, which is the same arithmetic shifted in time.

**Encoder and decoder stay on the host** (as in PopSAN's realization, whose encoder and
decoder ran in the x86 cores' SNIPs): the population encoder (``snn.popcode``) turns each
normalized observation into ``T`` timesteps of binary spikes, ``(T, B, D*P_in)``; each spike
is one input event into the chip at its timestep (an input axon per encoder neuron). The
decoder reads the output layer's spike counts. The chip starts every observation at rest.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.config import PopSANConfig
from spikerl_jax.precision import full_precision_matmuls
from spikerl_jax.rl.normalizer import Normalizer, normalize
from spikerl_jax.snn.popcode import PopulationDecoder, PopulationEncoder
from spikerl_jax.snn.popsan import PopSAN, layer_names

# Loihi's widths and alignments, as Lava 0.10's fixed-point models declare them.
DECAY_BITS = 12  # du, dv: unsigned 12-bit; decays multiply by (4096 - d) / 4096
DECAY_UNITY = 1 << DECAY_BITS
ALIGN_SHIFT = 6  # synaptic input and threshold, left-shifted into the 24-bit state
STATE_LIMIT = 1 << 23  # u, v: 24-bit signed
VTH_MAX = (1 << 17) - 1  # vth: unsigned 17-bit
WEIGHT_MAX = 255  # one 8-bit unsigned mantissa per synapse group (sign from the group)
WEIGHT_EXP_RANGE = (-8, 7)  # Loihi's weight exponent
# Exact float32 accumulation of 0/1 spikes times mantissas needs sums below 2**24.
FAN_IN_MAX = (1 << 24) // WEIGHT_MAX


@flax.struct.dataclass
class ChipLayer:
    """One layer of Loihi compartments and their synapses, as integers.

    Attributes:
      weight: synapse mantissas ``(I, N)`` int32 in ``[-255, 255]``; positive ones form the
        excitatory group, negative ones the inhibitory group.
      bias_weight: the synapses ``(N,)`` int32 from the layer's bias neuron (fires at every
        timestep), split into groups by sign like ``weight``.
      bias_mant: compartment bias mantissas ``(N,)`` int32 (Loihi's bias, into the voltage).
      bias_exp: compartment bias exponents ``(N,)`` int32.
      vth: threshold mantissa, an int32 scalar (compared with ``v`` as ``vth << 6``).
      du: current decay, ``0..4095`` (static).
      dv: voltage decay, ``0..4095`` (static).
      weight_exp: the synapse groups' exponent (static: it picks the shift's direction).
    """

    weight: jax.Array
    bias_weight: jax.Array
    bias_mant: jax.Array
    bias_exp: jax.Array
    vth: jax.Array
    du: int = flax.struct.field(pytree_node=False)
    dv: int = flax.struct.field(pytree_node=False)
    weight_exp: int = flax.struct.field(pytree_node=False)


class ChipTrace(NamedTuple):
    """A layer's timesteps on the chip, each ``(T, B, N)`` int32.

    Attributes:
      spikes: 0 or 1.
      current: ``u`` after the step.
      voltage: ``v`` after integration, before the reset (Lava stores
        ``where(spikes, 0, voltage)``).
    """

    spikes: jax.Array
    current: jax.Array
    voltage: jax.Array


def units_per_float(layer: ChipLayer, threshold: float) -> jax.Array:
    """``L``: integer units of ``u`` and ``v`` per float unit of PopSAN's ``c`` and ``v``
    (the float threshold maps to ``vth << 6``)."""
    return (layer.vth.astype(jnp.float32) * (1 << ALIGN_SHIFT)) / threshold


def _shift(x: jax.Array, exp) -> jax.Array:
    """``x << exp`` where ``exp >= 0``, ``x >> -exp`` (floor) elsewhere; int32 wraps."""
    exp = jnp.asarray(exp, jnp.int32)
    return jnp.where(
        exp >= 0, jnp.left_shift(x, jnp.maximum(exp, 0)), jnp.right_shift(x, jnp.maximum(-exp, 0))
    )


def _decay(x: jax.Array, factor: int) -> jax.Array:
    """``sign(x) * ((|x| * factor) >> 12)`` in int32: Lava's 64-bit product and shift, split
    at bit 12 so that no partial product leaves 32 bits (``|x| < 2^31``, ``factor <= 4096``)."""
    magnitude = jnp.abs(x)
    high, low = jnp.right_shift(magnitude, DECAY_BITS), magnitude & (DECAY_UNITY - 1)
    decayed = high * factor + jnp.right_shift(low * factor, DECAY_BITS)
    return jnp.sign(x) * decayed


def _wrap_current(u: jax.Array) -> jax.Array:
    """Lava's single 24-bit wrap of the current (``2^23`` itself stays)."""
    wrapped = jnp.where(u > STATE_LIMIT, u - 2 * STATE_LIMIT, u)
    return jnp.where(wrapped <= -STATE_LIMIT, u + 2 * STATE_LIMIT, wrapped)


def _group_sum(spikes_TBI: jax.Array, mantissa_IN: jax.Array) -> jax.Array:
    """``spikes @ mantissas`` in int32, exact: 0/1 times integers up to 255 summed below 2^24
    in float32 (``FAN_IN_MAX``), where XLA's integer matmuls are slow; full float32 even on
    GPUs, whose default would round the operands to TF32."""
    with full_precision_matmuls():
        total = jnp.matmul(
            spikes_TBI.astype(jnp.float32),
            mantissa_IN.astype(jnp.float32),
            preferred_element_type=jnp.float32,
        )
    return total.astype(jnp.int32)


def synaptic_input(layer: ChipLayer, spikes_TBI: jax.Array) -> jax.Array:
    """The dendritic sums ``a_t`` ``(T, B, N)`` int32 that reach the layer's compartments,
    before their ``<< 6``: each synapse group (excitatory, inhibitory, and the bias neuron's
    two) shifted by the weight exponent on its own, then added, as Lava's ``Dense`` and
    ``LIF`` do."""
    exp = layer.weight_exp
    bias_N = layer.bias_weight
    if exp >= 0:  # left shifts distribute over the sum (int32 wraps alike): one matmul
        return _shift(_group_sum(spikes_TBI, layer.weight) + bias_N, exp)
    w = layer.weight
    excitatory = _shift(_group_sum(spikes_TBI, jnp.maximum(w, 0)), exp)
    inhibitory = _shift(_group_sum(spikes_TBI, jnp.minimum(w, 0)), exp)
    bias = _shift(jnp.maximum(bias_N, 0), exp) + _shift(jnp.minimum(bias_N, 0), exp)
    return excitatory + inhibitory + bias


class ChipState(NamedTuple):
    """A layer's stored state between timesteps, each ``(B, N)`` int32: ``u`` and ``v``
    (after the reset), Loihi's registers."""

    current: jax.Array
    voltage: jax.Array


def chip_step(
    layer: ChipLayer, state: ChipState, synaptic_BN: jax.Array
) -> tuple[ChipState, ChipTrace]:
    """One timestep of Loihi's neuron (module docstring), given the dendritic sum ``a_t``.

    Returns:
      The stored state and the step's ``ChipTrace`` entries, each ``(B, N)``.
    """
    current = _decay(state.current, DECAY_UNITY - layer.du - 1)
    current = _wrap_current(current + jnp.left_shift(synaptic_BN, ALIGN_SHIFT))
    voltage = _decay(state.voltage, DECAY_UNITY - layer.dv)
    voltage = voltage + current + _shift(layer.bias_mant, layer.bias_exp)
    voltage = jnp.clip(voltage, -STATE_LIMIT + 1, STATE_LIMIT - 1)
    spikes = (voltage > jnp.left_shift(layer.vth, ALIGN_SHIFT)).astype(jnp.int32)
    stored = ChipState(current, jnp.where(spikes > 0, 0, voltage))
    return stored, ChipTrace(spikes, current, voltage)


def chip_layer(layer: ChipLayer, spikes_TBI: jax.Array) -> ChipTrace:
    """A layer over ``T`` timesteps from rest: input spikes ``(T, B, I)`` (0/1, any dtype)
    to its ``ChipTrace``. All ``T`` dendritic sums are one matmul, then a scan (as
    ``snn.lif.lif_scan``)."""
    synaptic_TBN = synaptic_input(layer, spikes_TBI)
    zeros = jnp.zeros(synaptic_TBN.shape[1:], jnp.int32)
    _, trace = jax.lax.scan(
        lambda state, a: chip_step(layer, state, a), ChipState(zeros, zeros), synaptic_TBN
    )
    return trace


def chip_forward(chip: Sequence[ChipLayer], spikes_TBI: jax.Array) -> list[ChipTrace]:
    """The chip's layers over ``T`` timesteps from rest, each fed the previous one's spikes.

    Args:
      chip: the layers, first to last (``quantize``).
      spikes_TBI: the encoder's spikes ``(T, B, I)``, 0/1.

    Returns:
      Every layer's ``ChipTrace``.
    """
    traces = []
    for layer in chip:
        trace = chip_layer(layer, spikes_TBI)
        traces.append(trace)
        spikes_TBI = trace.spikes
    return traces


def _host_encoder(cfg: PopSANConfig) -> PopulationEncoder:
    # PopSAN's own encoder, built as PopSAN builds it (its parameters: params["encoder"]).
    return PopulationEncoder(
        pop_size=cfg.pop_in,
        timesteps=cfg.timesteps,
        mean_range=cfg.encoder_mean_range,
        std=cfg.encoder_std,
        mode=cfg.encoder,
    )


def encode(
    actor: PopSAN, actor_params, obs_BD: jax.Array, key: jax.Array | None = None
) -> jax.Array:
    """The float encoder's spikes ``(T, B, D*P_in)`` for normalized observations ``(B, D)``:
    the chip's input events (PopSAN's own encoder; ``key`` for the Poisson one)."""
    cfg = actor.config
    if cfg.encoder_input == "tanh":
        obs_BD = jnp.tanh(obs_BD)
    encoder_params = {"params": actor_params["params"]["encoder"]}
    return _host_encoder(cfg).apply(encoder_params, obs_BD, key)


def decode(actor: PopSAN, actor_params, spikes_TBN: jax.Array) -> jax.Array:
    """PopSAN's float decoder on the output layer's spikes ``(T, B, A*P_out)``: ``(B, A)``."""
    decoder = PopulationDecoder(actor.action_dim, actor.config.pop_out, actor.action_limit)
    return decoder.apply({"params": actor_params["params"]["decoder"]}, spikes_TBN)


def chip_apply(
    actor: PopSAN,
    actor_params,
    chip: Sequence[ChipLayer],
    obs_BD: jax.Array,
    key: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The policy with its spiking layers on the chip: host encoder, chip, host decoder.

    Args:
      actor: the PopSAN module.
      actor_params: its float parameters (the encoder's and decoder's are used here).
      chip: ``quantize(actor_params, actor.config)``.
      obs_BD: normalized observations.
      key: PRNG key for the Poisson encoder (unused by the regular one).

    Returns:
      Actions ``(B, A)`` and every layer's spikes ``{layer: (T, B, N)}`` float32, named as
      ``PopSAN.spike_trains`` names them.
    """
    spikes_in = encode(actor, actor_params, obs_BD, key)
    traces = chip_forward(chip, spikes_in)
    trains = [spikes_in, *(trace.spikes.astype(jnp.float32) for trace in traces)]
    action = decode(actor, actor_params, trains[-1])
    return action, dict(zip(layer_names(actor.config), trains, strict=True))


def chip_act(
    actor: PopSAN,
    obs_clip: float,
    actor_params,
    chip: Sequence[ChipLayer],
    norm: Normalizer,
    obs_BD: jax.Array,
    key: jax.Array | None = None,
) -> jax.Array:
    """``rl.policy``'s deterministic action with the chip in place of the float LIF layers:
    raw observations ``(B, D)``, normalized with the run's statistics, to actions ``(B, A)``.
    Close ``actor`` and ``obs_clip`` over (``functools.partial``) before ``jit``."""
    return chip_apply(actor, actor_params, chip, normalize(norm, obs_BD, obs_clip), key)[0]


def chip_headroom(layer: ChipLayer) -> int:
    """The largest ``|u|`` the layer's synapses can drive, every input spiking at every
    step into the largest group: ``a_max << 6`` summed over a geometric decay. Above
    ``2^23`` the current can wrap (a sign flip); the quantizer does not refuse it, since real
    spike trains stay far below it (Lava and this model wrap alike)."""
    w = np.asarray(layer.weight, np.int64)
    b = np.asarray(layer.bias_weight, np.int64)
    groups = [
        np.maximum(w, 0).sum(0) + np.maximum(b, 0),
        (-np.minimum(w, 0)).sum(0) - np.minimum(b, 0),
    ]
    exp = layer.weight_exp
    a_max = max(int(g.max(initial=0)) for g in groups)
    a_max = a_max << exp if exp >= 0 else a_max >> -exp
    per_step = a_max << ALIGN_SHIFT
    keep = (DECAY_UNITY - layer.du - 1) / DECAY_UNITY
    return int(per_step / (1.0 - keep))


def _decays(name: str, cfg: PopSANConfig) -> tuple[int, int]:
    """``(du, dv)`` of PopSAN's decays (module docstring); raises outside Loihi's 12 bits."""
    kept_u = round(cfg.current_decay * DECAY_UNITY)
    kept_v = round(cfg.voltage_decay * DECAY_UNITY)
    if not 0 <= kept_u <= DECAY_UNITY - 1:
        raise ValueError(
            f"layer {name}: current decay {cfg.current_decay} is outside Loihi's range "
            "0..4095/4096 (12-bit du, plus Lava's offset of 1)"
        )
    if not 1 <= kept_v <= DECAY_UNITY:
        raise ValueError(
            f"layer {name}: voltage decay {cfg.voltage_decay} is outside Loihi's range "
            "1/4096..1 (12-bit dv)"
        )
    return DECAY_UNITY - 1 - kept_u, DECAY_UNITY - kept_v


def quantize_layer(
    name: str,
    kernel_IN: np.ndarray,
    bias_N: np.ndarray,
    cfg: PopSANConfig,
    weight_exp: int = 0,
) -> ChipLayer:
    """One float layer (``kernel (I, N)``, ``bias (N,)``) as Loihi integers (module
    docstring: the threshold exact, weights and bias rounded to 8-bit mantissas).

    Raises:
      ValueError: one line naming ``name`` and the limit: non-finite values, a weight
        exponent outside -8..7, a fan-in the model cannot sum exactly, weights too large
        for any threshold mantissa at this exponent, or decays outside 12 bits.
    """
    low, high = WEIGHT_EXP_RANGE
    if not (isinstance(weight_exp, numbers.Integral) and low <= weight_exp <= high):
        raise ValueError(
            f"layer {name}: weight exponent {weight_exp!r} is outside Loihi's {low}..{high}"
        )
    kernel_IN = np.asarray(kernel_IN, np.float64)
    bias_N = np.asarray(bias_N, np.float64)
    if not (np.all(np.isfinite(kernel_IN)) and np.all(np.isfinite(bias_N))):
        raise ValueError(f"layer {name}: its weights or biases hold NaN or infinite values")
    if kernel_IN.shape[0] > FAN_IN_MAX:
        raise ValueError(
            f"layer {name}: {kernel_IN.shape[0]} inputs exceed the {FAN_IN_MAX} this model "
            "sums exactly"
        )
    if not cfg.threshold > 0:
        raise ValueError(f"layer {name}: threshold {cfg.threshold} must be positive on Loihi")
    du, dv = _decays(name, cfg)
    largest = max(float(np.abs(kernel_IN).max(initial=0.0)), float(np.abs(bias_N).max()))
    # The largest threshold mantissa that keeps every weight within 255 steps.
    vth_exact = math.inf if largest == 0 else WEIGHT_MAX * cfg.threshold * 2.0**weight_exp / largest
    vth = min(math.floor(vth_exact), VTH_MAX)
    if vth < 1:
        raise ValueError(
            f"layer {name}: its largest weight {largest:.4g} needs a threshold mantissa of "
            f"{vth_exact:.3g} at weight exponent {weight_exp}, under Loihi's minimum of 1: "
            "raise the weight exponent"
        )
    step = cfg.threshold * 2.0**weight_exp / vth  # float weight per mantissa unit

    def mantissas(x):
        return np.clip(np.rint(x / step), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int32)

    zeros = np.zeros(kernel_IN.shape[1], np.int32)
    return ChipLayer(
        weight=jnp.asarray(mantissas(kernel_IN)),
        bias_weight=jnp.asarray(mantissas(bias_N)),
        bias_mant=jnp.asarray(zeros),
        bias_exp=jnp.asarray(zeros),
        vth=jnp.asarray(vth, jnp.int32),
        du=du,
        dv=dv,
        weight_exp=int(weight_exp),
    )


def quantize(
    actor_params, cfg: PopSANConfig, weight_exp: int | Sequence[int] = 0
) -> tuple[ChipLayer, ...]:
    """PopSAN's spiking layers as Loihi integers (module docstring).

    Args:
      actor_params: the PopSAN actor's Flax parameters
        (``{"params": {"encoder", "snn": {kernel_i, bias_i}, "decoder"}}``).
      cfg: its ``PopSANConfig`` (layer sizes, decays, threshold).
      weight_exp: the weight exponent of every layer, or one per layer.

    Returns:
      The chip's layers, first hidden to output (``hidden_0, ..., output``).

    Raises:
      ValueError: parameters of another actor, or a layer Loihi cannot represent (one line
        naming the layer and the limit: ``quantize_layer``).
    """
    # Mappings: Flax gives dicts or FrozenDicts.
    params = actor_params.get("params", {}) if hasattr(actor_params, "get") else {}
    snn = params.get("snn") if hasattr(params, "get") else None
    names = layer_names(cfg)[1:]
    if snn is None or f"kernel_{len(names) - 1}" not in snn:
        raise ValueError(
            "quantize needs a PopSAN actor's parameters ({'params': {'snn': {'kernel_0', ...}}} "
            f"with {len(names)} layers); got {type(actor_params).__name__} without them"
        )
    exps = (
        [weight_exp] * len(names) if isinstance(weight_exp, numbers.Integral) else list(weight_exp)
    )
    if len(exps) != len(names):
        raise ValueError(f"weight_exp has {len(exps)} entries for {len(names)} layers")
    return tuple(
        quantize_layer(
            name,
            np.asarray(snn[f"kernel_{i}"], np.float32),
            np.asarray(snn[f"bias_{i}"], np.float32),
            cfg,
            exps[i],
        )
        for i, name in enumerate(names)
    )


def dequantize(actor_params, chip: Sequence[ChipLayer], threshold: float):
    """The float actor's parameters with each layer's weights and bias replaced by the
    chip's mantissas in float units (``w * theta * 2^e / vth``): the float network that
    differs from the chip only in the decays' truncation and the 24-bit limits."""
    snn = dict(actor_params["params"]["snn"])
    for i, layer in enumerate(chip):
        step = threshold * 2.0**layer.weight_exp / layer.vth.astype(jnp.float32)
        snn[f"kernel_{i}"] = layer.weight.astype(jnp.float32) * step
        snn[f"bias_{i}"] = layer.bias_weight.astype(jnp.float32) * step
    return {**actor_params, "params": {**actor_params["params"], "snn": snn}}


# The arrays Lava's side reads (benchmarks/loihi_check.py) and writes back.
LAVA_FORMAT = "spikerl_jax-loihi-check-1"


def lava_inputs(chip: Sequence[ChipLayer], spikes_TBI) -> dict[str, np.ndarray]:
    """The chip's integers and input spikes as ``benchmarks/loihi_check.py`` reads them.

    Keys: ``format``, ``n_layers``, ``spikes_in (B, T, I)`` int8 and, per layer ``k``,
    ``weight_k (I, N)``, ``bias_weight_k``, ``bias_mant_k``, ``bias_exp_k`` ``(N,)``,
    ``vth_k``, ``du_k``, ``dv_k``, ``weight_exp_k``.
    """
    out = {
        "format": np.asarray(LAVA_FORMAT),
        "n_layers": np.asarray(len(chip)),
        "spikes_in": np.asarray(spikes_TBI).transpose(1, 0, 2).astype(np.int8),
    }
    for k, layer in enumerate(chip):
        for field in ("weight", "bias_weight", "bias_mant", "bias_exp", "vth"):
            out[f"{field}_{k}"] = np.asarray(getattr(layer, field), np.int32)
        for field in ("du", "dv", "weight_exp"):
            out[f"{field}_{k}"] = np.asarray(getattr(layer, field), np.int32)
    return out


def compare_with_lava(traces: Sequence[ChipTrace], lava: dict) -> dict:
    """This model's traces against Lava's (``spikes_k``, ``voltage_k``, ``current_k``, each
    ``(B, T, N)``; Lava's voltage after the reset).

    Returns:
      Per layer and overall: the fraction of identical spike bins, the largest voltage and
      current differences, and ``identical`` (every spike, voltage and current equal).
    """
    report, identical = {"layers": []}, True
    for k, trace in enumerate(traces):
        ours = {
            "spikes": np.asarray(trace.spikes),
            "voltage": np.where(np.asarray(trace.spikes) > 0, 0, np.asarray(trace.voltage)),
            "current": np.asarray(trace.current),
        }
        theirs = {f: np.asarray(lava[f"{f}_{k}"]).transpose(1, 0, 2) for f in ours}
        layer = {
            "spike_agreement": float(np.mean(ours["spikes"] == theirs["spikes"])),
            "spikes": int(ours["spikes"].sum()),
            "max_voltage_diff": int(np.abs(ours["voltage"] - theirs["voltage"]).max()),
            "max_current_diff": int(np.abs(ours["current"] - theirs["current"]).max()),
        }
        identical &= (
            layer["spike_agreement"] == 1.0
            and layer["max_voltage_diff"] == 0
            and layer["max_current_diff"] == 0
        )
        report["layers"].append(layer)
    report["identical"] = bool(identical)
    return report

"""The Loihi chip model: against an integer loop of Loihi's equations written here, against
PopSAN's float actor, its quantization limits, and against Lava itself where a Python with
``lava-nc`` is found (``/work/lava310/bin/python`` or ``$SPIKERL_JAX_LAVA_PYTHON``)."""

import dataclasses
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TINY

from spikerl_jax.cli import main
from spikerl_jax.config import PopSANConfig
from spikerl_jax.export.loihi import (
    VTH_MAX,
    chip_apply,
    chip_forward,
    chip_headroom,
    decode,
    dequantize,
    encode,
    quantize,
    units_per_float,
)
from spikerl_jax.snn.popsan import PopSAN

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "loihi_check.py"
OBS_DIM, ACT_DIM = 4, 2


def load_script():
    spec = importlib.util.spec_from_file_location("loihi_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK = load_script()  # benchmarks/loihi_check.py: random layers, the Lava runs


def loihi_reference(chip, spikes_TBI):
    """Loihi's neuron and synapses as Lava's fixed-point models state them, in int64 numpy,
    one timestep at a time: each synapse group's sum shifted by the weight exponent, the
    decays as a 64-bit product whose magnitude is shifted right by 12, the current's single
    24-bit wrap, the voltage's saturation, threshold ``vth << 6``, reset to 0.

    Returns:
      Per layer ``(spikes, current, voltage before the reset)``, each ``(T, B, N)``.
    """
    limit = 2**23

    def shift(x, e):
        return x << e if e >= 0 else x >> -e

    def decay(x, keep):
        product = x * keep
        return np.sign(product) * (np.abs(product) >> 12)

    out, s_in = [], np.asarray(spikes_TBI, np.int64)
    for layer in chip:
        w = np.asarray(layer.weight, np.int64)
        b = np.asarray(layer.bias_weight, np.int64)
        e = layer.weight_exp
        bias_v = np.asarray(layer.bias_mant, np.int64)
        bias_e = np.asarray(layer.bias_exp, np.int64)
        bias_v = np.where(bias_e >= 0, bias_v << np.maximum(bias_e, 0), bias_v >> -bias_e)
        u = np.zeros((s_in.shape[1], w.shape[1]), np.int64)
        v_stored = np.zeros_like(u)
        spikes, currents, voltages = [], [], []
        for s in s_in:
            groups = [
                s @ np.maximum(w, 0),
                s @ np.minimum(w, 0),
                np.maximum(b, 0),
                np.minimum(b, 0),
            ]
            a = sum(shift(g, e) for g in groups)
            u = decay(u, 4096 - layer.du - 1) + (a << 6)
            u = np.where(u > limit, u - 2 * limit, np.where(u <= -limit, u + 2 * limit, u))
            v = decay(v_stored, 4096 - layer.dv) + u + bias_v
            v = np.clip(v, -limit + 1, limit - 1)
            fired = (v > (int(layer.vth) << 6)).astype(np.int64)
            v_stored = np.where(fired > 0, 0, v)
            spikes.append(fired), currents.append(u), voltages.append(v)
        out.append((np.stack(spikes), np.stack(currents), np.stack(voltages)))
        s_in = out[-1][0]
    return out


@pytest.mark.parametrize("regime", ["active", "v-bias", "overflow"])
def test_the_chip_model_is_loihis_integer_arithmetic(regime):
    """Every spike, current and voltage of the JAX model equals the integer reference, on
    layers using both shift directions, compartment biases, and the 24-bit limits."""
    sizes = (30, 24, 16, 8)
    chip, spikes = CHECK.random_chip(1, sizes, 6, 5, regime)
    traces = jax.jit(chip_forward)(chip, spikes)
    for trace, (s, u, v) in zip(traces, loihi_reference(chip, spikes), strict=True):
        np.testing.assert_array_equal(np.asarray(trace.spikes), s)
        np.testing.assert_array_equal(np.asarray(trace.current), u)
        np.testing.assert_array_equal(np.asarray(trace.voltage), v)
        assert 0 < s.mean() < 1  # the layer fires, and not at every step
    if regime == "overflow":  # the limits were reached, so they were checked
        v = np.concatenate([np.asarray(t.voltage).ravel() for t in traces])
        assert (np.abs(v) == 2**23 - 1).any()
        assert max(chip_headroom(layer) for layer in chip) > 2**23


def test_the_chip_runs_under_jit_and_vmap():
    chip, spikes = CHECK.random_chip(3, (20, 12, 6), 5, 6, "active")
    batched = chip_forward(chip, spikes)
    # One observation at a time, mapped over the batch: the same integers.
    one = jax.jit(jax.vmap(lambda s: chip_forward(chip, s[:, None]), in_axes=1, out_axes=2))
    for a, b in zip(batched, one(spikes), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y)[:, 0])


@pytest.fixture(scope="module")
def actor():
    actor = PopSAN(ACT_DIM, 2.0, PopSANConfig(hidden_sizes=(32, 32)))
    params = actor.init(jax.random.key(0), jnp.zeros((1, OBS_DIM)))
    return actor, params


def test_quantize_keeps_the_threshold_exact_and_rounds_weights_to_8_bits(actor):
    module, params = actor
    cfg = module.config
    chip = quantize(params, cfg)
    assert len(chip) == 3
    for i, layer in enumerate(chip):
        # PopSAN's decays are Loihi's exactly: (4096 - du - 1)/4096 = 0.5, (4096 - dv)/4096 = 0.75.
        assert (layer.du, layer.dv) == (2047, 1024)
        units = float(units_per_float(layer, cfg.threshold))
        assert units * cfg.threshold == int(layer.vth) * 64
        kernel = np.asarray(params["params"]["snn"][f"kernel_{i}"])
        bias = np.asarray(params["params"]["snn"][f"bias_{i}"])
        w, b = np.asarray(layer.weight), np.asarray(layer.bias_weight)
        assert max(np.abs(w).max(), np.abs(b).max()) == 255  # the largest uses all 8 bits
        step = 64 / units  # float weight per mantissa unit (exponent 0)
        assert np.abs(w * step - kernel).max() <= step / 2 + 1e-7
        assert np.abs(b * step - bias).max() <= step / 2 + 1e-7
        assert not np.asarray(layer.bias_mant).any()  # the bias is a synapse (bias neuron)
    # One more exponent step doubles the threshold mantissa (floor(2x) for floor(x)).
    for wider, layer in zip(quantize(params, cfg, weight_exp=1), chip, strict=True):
        assert 2 * int(layer.vth) <= int(wider.vth) <= 2 * int(layer.vth) + 1


def test_host_encoder_and_decoder_are_popsans(actor):
    module, params = actor
    obs = jax.random.normal(jax.random.key(1), (8, OBS_DIM))
    action, trains = module.apply(params, obs, method=PopSAN.spike_trains)
    np.testing.assert_array_equal(encode(module, params, obs), trains["encoder"])
    np.testing.assert_array_equal(decode(module, params, trains["output"]), action)


def test_the_chip_actor_follows_the_float_actor(actor):
    """Quantization changes few spikes: the chip is the float network with 8-bit weights."""
    module, params = actor
    obs = jax.random.normal(jax.random.key(2), (64, OBS_DIM))
    chip = quantize(params, module.config)
    action_f, trains_f = module.apply(params, obs, method=PopSAN.spike_trains)
    action_c, trains_c = jax.jit(lambda p, c, o: chip_apply(module, p, c, o))(params, chip, obs)
    assert action_c.shape == action_f.shape
    for name in ("hidden_0", "hidden_1", "output"):
        assert np.mean(np.asarray(trains_c[name]) == np.asarray(trains_f[name])) > 0.97, name
        assert 0.05 < float(np.mean(trains_c[name])) < 0.95  # active, so the check means it
    assert float(jnp.abs(action_c - action_f).mean()) < 0.1
    # With the chip's 8-bit weights the float actor is the chip but for the decays' rounding.
    rounded = dequantize(params, chip, module.config.threshold)
    action_q, trains_q = module.apply(rounded, obs, method=PopSAN.spike_trains)
    for name in ("hidden_0", "hidden_1", "output"):
        assert np.mean(np.asarray(trains_c[name]) == np.asarray(trains_q[name])) > 0.999, name
    assert float(jnp.abs(action_c - action_q).max()) < 0.05


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_unrepresentable_layers_are_refused_in_one_line(actor):
    module, params = actor
    cfg = module.config

    def with_layer(name, value):
        snn = dict(params["params"]["snn"]) | {name: value}
        return {"params": dict(params["params"]) | {"snn": snn}}

    kernel_1 = params["params"]["snn"]["kernel_1"]
    with pytest.raises(ValueError, match=r"^layer hidden_1: .*threshold mantissa") as e:
        quantize(with_layer("kernel_1", kernel_1 * 1e6), cfg)
    assert "raise the weight exponent" in one_line(e)
    bias_2 = params["params"]["snn"]["bias_2"]
    with pytest.raises(ValueError, match=r"^layer output: .*NaN") as e:
        quantize(with_layer("bias_2", bias_2.at[0].set(jnp.nan)), cfg)
    one_line(e)
    with pytest.raises(ValueError, match=r"^layer hidden_0: weight exponent 8 .*-8\.\.7") as e:
        quantize(params, cfg, weight_exp=8)
    one_line(e)
    with pytest.raises(ValueError, match=r"^layer hidden_0: current decay 1.0 .*4095/4096") as e:
        quantize(params, dataclasses.replace(cfg, current_decay=1.0))
    one_line(e)
    with pytest.raises(ValueError, match="PopSAN actor's parameters") as e:
        quantize({"params": {"dense_0": {}}}, cfg)
    one_line(e)
    # Tiny weights: the threshold mantissa stops at Loihi's 17 bits, the weights use fewer.
    tiny = quantize(with_layer("kernel_0", params["params"]["snn"]["kernel_0"] * 0), cfg)
    assert int(tiny[0].vth) <= VTH_MAX


# ---------------------------------------------------------------- against Lava itself


# Lava 0.10 runs on Python 3.10 only: its tests run where such a Python has it.
LAVA_PYTHON = CHECK.lava_python()
needs_lava = pytest.mark.skipif(
    LAVA_PYTHON is None,
    reason="no Python with lava-nc (Lava 0.10 needs Python 3.10): make /work/lava310 "
    "(benchmarks/loihi_check.py) or set SPIKERL_JAX_LAVA_PYTHON",
)


@needs_lava
@pytest.mark.parametrize("regime", ["active", "v-bias", "overflow"])
def test_lava_equals_the_chip_model_on_random_layers(regime, tmp_path):
    chip, spikes = CHECK.random_chip(5, (40, 32, 24, 10), 5, 4, regime)
    report = CHECK.lava_check(chip, spikes, LAVA_PYTHON, str(tmp_path))
    assert report["identical"], report
    assert {"LIF:PyLifModelBitAcc", "Dense:PyDenseModelBitAcc"} <= set(report["lava_models"])
    assert all(layer["spikes"] > 0 for layer in report["layers"])


@needs_lava
def test_lava_equals_the_chip_model_on_a_trained_actor(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--no-energy", "--out", str(run)]) == 0
    _, chip, spikes, _ = CHECK.trained_spikes(str(run), observations=6)
    report = CHECK.lava_check(chip, spikes, LAVA_PYTHON, str(tmp_path))
    assert report["identical"], report
    assert all(layer["spikes"] > 0 for layer in report["layers"])

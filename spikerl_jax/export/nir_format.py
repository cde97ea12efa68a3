"""What an exported graph records besides its nodes: its metadata (the time step, the neuron
model and update order in words) and the companion file's arrays (the encoder's and
decoder's parameters); ``spikerl_jax.export.nir`` documents both."""

from __future__ import annotations

import numpy as np

from spikerl_jax.snn.popcode import ENCODER_THRESHOLD

NORM_EPS = 1e-8  # spikerl_jax.rl.normalizer.normalize's variance epsilon
FORMAT = "spikerl_jax.popsan.nir/1"
COMPANION_SUFFIX = ".popsan.npz"

NEURON_MODEL = (
    "CubaLIF read with forward Euler at the metadata's dt: I += dt/tau_syn*(-I + w_in*x); "
    "v += dt/tau_mem*(v_leak - v + r*I); z = v > v_threshold; v = v_reset where z. "
    "tau_syn = dt/(1-current_decay), w_in = tau_syn/dt, tau_mem = dt/(1-voltage_decay), "
    "r = tau_mem/dt, v_leak = 0, v_reset = 0: I = current_decay*I + x; v = voltage_decay*v + I"
)
UPDATE_ORDER = (
    "per timestep and layer: affine of this timestep's input spikes, current, voltage from "
    "the new current, spike, reset at the end of the step; T steps from rest per observation"
)
ENCODER_DOC = (
    "companion file: o = clip((obs - norm_mean)/sqrt(norm_var + norm_eps), +-obs_clip); "
    "A = exp(-0.5*(o[:,None] - encoder_mean)**2/encoder_std**2).reshape(-1); per step "
    "m += A, spike where m > encoder_threshold, m -= encoder_threshold where spiked"
)
DECODER_DOC = (
    "companion file: rate = mean over T of output spikes, reshaped (A, P_out); action = "
    "action_limit*tanh(sum(rate*decoder_weight, -1) + decoder_bias)"
)


def metadata(actor, spec, n_in: int, n_out: int, n_layers: int, dt: float) -> dict:
    layer_names = ["encoder", *(f"hidden_{i}" for i in range(n_layers - 1)), "output"]
    return {
        "format": FORMAT,
        "timesteps": int(actor.timesteps),
        "dt": float(dt),
        "neuron_model": NEURON_MODEL,
        "update_order": UPDATE_ORDER,
        "initial_state": "rest (I = v = 0, no spikes) at the start of every observation",
        "current_decay": float(actor.current_decay),
        "voltage_decay": float(actor.voltage_decay),
        "threshold": float(actor.threshold),
        "input": f"encoder spikes ({n_in},): neuron d*{actor.pop_in}+p encodes obs dim d",
        "output": f"output spikes ({n_out},): neuron a*{actor.pop_out}+p decodes action a",
        "encoder": ENCODER_DOC,
        "decoder": DECODER_DOC,
        "spiking_layers": ",".join(layer_names),
        "actor_precision": actor.actor_precision,
        "obs_dim": int(spec.obs_dim),
        "action_dim": int(spec.action_dim),
        "pop_in": int(actor.pop_in),
        "pop_out": int(actor.pop_out),
    }


def companion_arrays(config, spec, params, normalizer, dt: float) -> dict:
    f32, actor = np.float32, config.actor
    return {
        "format": np.array(FORMAT),
        "norm_mean": np.asarray(normalizer.mean, f32),
        "norm_var": np.asarray(normalizer.var, f32),
        "norm_eps": np.float64(NORM_EPS),
        "obs_clip": np.float64(config.obs_clip),
        "encoder_mean": np.asarray(params["encoder"]["mean"], f32),
        "encoder_std": np.asarray(params["encoder"]["std"], f32),
        "encoder_threshold": np.float64(ENCODER_THRESHOLD),
        "timesteps": np.int64(actor.timesteps),
        "dt": np.float64(dt),
        "decoder_weight": np.asarray(params["decoder"]["weight"], f32),
        "decoder_bias": np.asarray(params["decoder"]["bias"], f32),
        "action_limit": np.float64(spec.action_limit),
        "pop_in": np.int64(actor.pop_in),
        "pop_out": np.int64(actor.pop_out),
        "obs_dim": np.int64(spec.obs_dim),
        "action_dim": np.int64(spec.action_dim),
    }

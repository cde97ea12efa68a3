"""A run's policy deployed on a simulated Loihi chip, closed loop: ``spikerl-jax deploy``.

    from spikerl_jax.export.deploy import deploy
    report = deploy("runs/hopper", episodes=10)      # writes runs/hopper/deploy.json

The run's best policy is quantized (``export.loihi.quantize``) and run in its task twice,
over the same episode seeds, each batch of episodes one actor call per step
(``evaluate_episodes``, as ``spikerl-jax eval``): once with the float actor and once with the
chip in place of its spiking layers. On every observation of the chip's episodes the float
actor runs too, and the chip's spiking layers are fed the float encoder's spikes (the same
input events), so that spikes and actions are compared on the same observations.

**The cost of a decision** (one observation, ``T`` timesteps), counted as keras-spiking's
``ModelEnergy`` counts it (``connections`` times input events, ``neurons`` times
timesteps), from the chip's own spikes in its episodes:

- synaptic operations: each spike entering a chip layer reaches every neuron of that layer
  (the encoder's spikes the first hidden layer, each hidden layer's the next; the output
  layer's spikes leave the chip for the host's decoder and are not counted), plus each
  layer's bias neuron, which fires at every timestep into all of the layer's neurons;
- neuron updates: every compartment of the chip (hidden and output layers) at every
  timestep, spiking or not, as Loihi updates them;
- the MLP actor of the same hidden sizes (``rl.networks.MLPActor``): its multiply-accumulates
  (one per weight) and neuron updates (one per unit), each one operation at a CPU's or a
  GPU's energy per operation.

The energies per operation are ``ENERGY_PER_OP`` (below, with their sources). Like
keras-spiking's, the estimate leaves out moving data on and off the chip, the host's encoder
and decoder, and Loihi's pipeline (on Lava a layer works one timestep after the one before).
"""

from __future__ import annotations

import itertools
import json
import numbers
import os

import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.arguments import expect, expect_path
from spikerl_jax.config import ConfigError
from spikerl_jax.export.loihi import (
    chip_forward,
    chip_headroom,
    decode,
    quantize,
    units_per_float,
)
from spikerl_jax.export.policy import CHECKPOINTS, load_policy
from spikerl_jax.precision import in_full_precision
from spikerl_jax.reporting.activity import layer_shapes
from spikerl_jax.reporting.pbt import resolve_run
from spikerl_jax.reporting.records import eval_results
from spikerl_jax.reporting.runs import load_run_config
from spikerl_jax.snn.popsan import layer_names

CHIPS = ("loihi",)
DEPLOY_FILE = "deploy.json"

# Energy per operation in picojoules, as keras-spiking's ModelEnergy.devices tabulates them
# (nengo/keras-spiking, keras_spiking/model_energy.py):
# - "loihi": M. Davies et al., "Loihi: A neuromorphic manycore processor with on-chip
#   learning", IEEE Micro 38(1), 2018: a synaptic operation 23.6 pJ + 3.5 pJ (keras-spiking
#   sums the two) = 27.1 pJ; a neuron update 81 pJ.
# - "cpu" (Intel i7-4960X) 8.6 nJ and "gpu" (Nvidia GTX Titan Black) 0.3 nJ per operation,
#   a MAC or a neuron update alike: B. Degnan, B. Marr, J. Hasler, "Assessing trends in
#   performance per watt for signal processing applications", IEEE Trans. VLSI Systems
#   24(1), 2015. keras-spiking notes that the GPU figure assumes large batches.
ENERGY_PER_OP = {
    "loihi": {"synop": 23.6 + 3.5, "neuron_update": 81.0},
    "cpu": {"mac": 8600.0, "neuron_update": 8600.0},
    "gpu": {"mac": 300.0, "neuron_update": 300.0},
}
ENERGY_SOURCES = {
    "loihi": "Davies et al., IEEE Micro 38(1), 2018, as keras-spiking's model_energy.py "
    "tabulates it",
    "cpu": "Degnan, Marr, Hasler, IEEE TVLSI 24(1), 2015 (Intel i7-4960X), as keras-spiking's "
    "model_energy.py tabulates it",
    "gpu": "Degnan, Marr, Hasler, IEEE TVLSI 24(1), 2015 (Nvidia GTX Titan Black), as "
    "keras-spiking's model_energy.py tabulates it",
}


def _check_arguments(run_dir, chip, episodes, checkpoint, seed, weight_exp) -> None:
    expect_path("deploy(run_dir)", run_dir)
    expect("deploy(episodes)", episodes, int, "a number of episodes (int)")
    expect("deploy(seed)", seed, int, "a seed (int)")
    if chip not in CHIPS:
        raise ConfigError(f"--chip must be one of {', '.join(CHIPS)}, got {chip!r}")
    if isinstance(episodes, bool) or episodes <= 0:
        raise ConfigError(
            f"--episodes must be a positive integer (episodes on the float actor and on the "
            f"chip, with the same seeds), got {episodes!r}: e.g. --episodes 10"
        )
    if isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed!r}")
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"--checkpoint must be 'best' or 'latest', got {checkpoint!r}")
    exps = [weight_exp] if isinstance(weight_exp, numbers.Integral) else list(weight_exp)
    if not exps or not all(isinstance(e, numbers.Integral) for e in exps):
        raise ConfigError(
            f"--weight-exp takes one integer for every layer or one per layer, got {weight_exp!r}"
        )


def chip_of(policy, weight_exp: int | tuple[int, ...] = 0):
    """The policy's spiking layers as Loihi integers; a layer Loihi cannot represent is one
    ``ConfigError`` line naming the layer, the limit and the fix."""
    exps = weight_exp if isinstance(weight_exp, numbers.Integral) else tuple(weight_exp)
    if isinstance(exps, tuple) and len(exps) == 1:  # --weight-exp E: every layer's
        exps = exps[0]
    try:
        return quantize(policy.actor_params, policy.config.actor, exps)
    except ValueError as e:
        raise ConfigError(f"cannot put this policy on Loihi: {e} (--weight-exp)") from None


def _summary(res, returns) -> dict:
    return {
        "return_mean": res.mean,
        "return_std": res.std,
        "returns": [float(r) for r in returns],
        "length_mean": res.length,
    }


def _chip_episodes(policy, chip, envs):
    """The chip's episodes (``evaluate_episodes``) with the float actor beside it on every
    observation. Returns the episodes' ``EvalResult``, returns, and per actor call ``k`` the
    comparisons ``(E, ...)`` of every episode (valid where ``k < length``)."""
    from spikerl_jax.envs.gymnasium_backend import evaluate_episodes

    actor, params = policy.actor, policy.actor_params
    names = layer_names(policy.config.actor)

    def on_chip(chip, spikes_in_TBI):
        traces = chip_forward(chip, spikes_in_TBI)
        trains = [spikes_in_TBI, *(trace.spikes.astype(jnp.float32) for trace in traces)]
        return decode(actor, params, trains[-1]), dict(zip(names, trains, strict=True))

    on_chip = in_full_precision(jax.jit(on_chip))
    calls: list[dict] = []

    def act(obs_MED):
        float_action, float_trains = policy.spike_trains(obs_MED[0])
        action, trains = jax.tree.map(np.asarray, on_chip(chip, float_trains["encoder"]))
        calls.append(
            {
                "error": np.abs(action - float_action),  # (E, A)
                **{
                    f"same_{k}": (trains[k] == float_trains[k]).mean((0, 2))  # (E,)
                    for k in names[1:]
                },
            }
        )
        counts = {k: v.sum((0, 2))[None] for k, v in trains.items()}
        return action[None], counts

    returns, lengths, spikes = evaluate_episodes(act, [envs])
    return eval_results(returns, lengths, spikes)[0], returns[0], lengths[0], calls, names


def _agreement(calls: list[dict], lengths, names: list[str]) -> dict:
    """Spike bins and actions of chip and float on the chip episodes' observations."""
    valid_KE = np.arange(len(calls))[:, None] < np.asarray(lengths)[None]
    error = np.stack([c["error"] for c in calls])[valid_KE]  # (steps, A)
    same = {k: np.stack([c[f"same_{k}"] for c in calls])[valid_KE] for k in names[1:]}
    return {
        "observations": int(valid_KE.sum()),
        "compared_on": "the chip episodes' observations; the chip fed the float encoder's spikes",
        "spike_agreement": {k: float(v.mean()) for k, v in same.items()},
        "output_spike_agreement": float(same[names[-1]].mean()),
        "steps_with_identical_output_spikes": float((same[names[-1]] == 1.0).mean()),
        "action_error_mean": float(error.mean()),
        "action_error_rms": float(np.sqrt((error**2).mean())),
        "action_error_max": float(error.max()),
    }


def decision_cost(spike_totals: dict, decisions: int, obs_dim: int, action_dim: int, cfg) -> dict:
    """A decision's operations and energy on Loihi from the chip's spikes, beside the MLP
    actor's on a CPU and a GPU (module docstring).

    Args:
      spike_totals: ``{layer: spikes}`` over ``decisions`` observations (``encoder`` first).
      decisions: the observations the totals cover.
      obs_dim, action_dim, cfg: the actor's shape (``PopSANConfig``).
    """
    shapes = layer_shapes(obs_dim, action_dim, cfg)
    names, t = list(shapes), cfg.timesteps
    layers, synops, updates = {}, 0.0, 0
    for source, target in itertools.pairwise(names):
        neurons = shapes[target][0]
        spikes_in = spike_totals[source] / decisions
        layer_synops = (spikes_in + t) * neurons  # input spikes and the bias neuron's
        synops, updates = synops + layer_synops, updates + neurons * t
        layers[target] = {
            "neurons": neurons,
            "input_spikes": spikes_in,
            "bias_spikes": t,
            "synops": layer_synops,
            "neuron_updates": neurons * t,
            "spikes": spike_totals[target] / decisions,
        }
    loihi = ENERGY_PER_OP["loihi"]
    loihi_pj = synops * loihi["synop"] + updates * loihi["neuron_update"]
    widths = [obs_dim, *cfg.hidden_sizes, action_dim]
    macs = sum(a * b for a, b in itertools.pairwise(widths))
    mlp_updates = sum(widths[1:])
    mlp = {"hidden_sizes": list(cfg.hidden_sizes), "macs": macs, "neuron_updates": mlp_updates}
    for device in ("cpu", "gpu"):
        e = ENERGY_PER_OP[device]
        mlp[f"{device}_nj"] = (macs * e["mac"] + mlp_updates * e["neuron_update"]) / 1e3
    return {
        "per": "decision (one observation, all T timesteps)",
        "timesteps": t,
        "loihi": {
            "layers": layers,
            "synops": synops,
            "neuron_updates": updates,
            "pj_per_synop": loihi["synop"],
            "pj_per_neuron_update": loihi["neuron_update"],
            "synop_nj": synops * loihi["synop"] / 1e3,
            "neuron_update_nj": updates * loihi["neuron_update"] / 1e3,
            "nj": loihi_pj / 1e3,
        },
        "mlp": {
            **mlp,
            "cpu_pj_per_op": ENERGY_PER_OP["cpu"]["mac"],
            "gpu_pj_per_op": ENERGY_PER_OP["gpu"]["mac"],
        },
        "mlp_cpu_over_loihi": mlp["cpu_nj"] * 1e3 / loihi_pj,
        "mlp_gpu_over_loihi": mlp["gpu_nj"] * 1e3 / loihi_pj,
        "sources": ENERGY_SOURCES,
    }


def deploy(
    run_dir: str,
    chip: str = "loihi",
    episodes: int = 10,
    checkpoint: str = "best",
    seed: int = 0,
    weight_exp: int | tuple[int, ...] = 0,
    out: str | None = None,
) -> dict:
    """Quantizes a run's policy for ``chip``, runs it closed loop beside the float actor
    (``episodes`` each, seeds ``seed, seed+1, ...``) and writes the report as JSON to ``out``
    (default ``RUN_DIR/deploy.json``); returns it (also with ``path``).

    Raises:
      ConfigError: one line naming the fix, before anything is written: no run or no
        checkpoint there, an MLP actor, a layer the chip cannot represent, a bad argument.
    """
    _check_arguments(run_dir, chip, episodes, checkpoint, seed, weight_exp)
    run_dir = resolve_run(os.fspath(run_dir))  # a PBT root: its best member
    cfg = load_run_config(run_dir)
    if cfg.actor_kind != "popsan":
        raise ConfigError(
            f"{run_dir} trained an MLP actor, which has no spiking layers to put on a chip: "
            "deploy a PopSAN run (spikerl-jax train --actor popsan)"
        )
    try:
        policy = load_policy(run_dir, checkpoint)
    except ConfigError as e:
        if "no complete checkpoint" not in str(e):
            raise
        raise ConfigError(
            f"{e}: deploy needs a trained policy; train the run (or resume it: spikerl-jax "
            f"train --resume {run_dir}) until it saves a checkpoint"
        ) from None
    layers = chip_of(policy, weight_exp)
    from spikerl_jax.envs.gymnasium_backend import evaluate_episodes, make_eval_envs

    seeds = [seed + i for i in range(episodes)]

    def float_act(obs_MED):
        action, spikes = policy.with_spikes(obs_MED[0])
        return action[None], {k: np.asarray(v)[None] for k, v in spikes.items()}

    float_returns, float_lengths, float_spikes = evaluate_episodes(
        float_act, [make_eval_envs(cfg.env, seeds)]
    )
    float_res = eval_results(float_returns, float_lengths, float_spikes)[0]
    chip_res, chip_returns, chip_lengths, calls, names = _chip_episodes(
        policy, layers, make_eval_envs(cfg.env, seeds)
    )
    spec, threshold = policy.spec, cfg.actor.threshold
    report = {
        "run_dir": run_dir,
        "checkpoint": checkpoint,
        "step": policy.step,
        "env": cfg.env,
        "chip": chip,
        "episodes": episodes,
        "seeds": seeds,
        "chip_layers": {
            name: {
                "weight_exp": layer.weight_exp,
                "vth": int(layer.vth),
                "du": layer.du,
                "dv": layer.dv,
                "units_per_float": float(units_per_float(layer, threshold)),
                "current_headroom": chip_headroom(layer),
            }
            for name, layer in zip(names[1:], layers, strict=True)
        },
        "float": _summary(float_res, float_returns[0]),
        "on_chip": _summary(chip_res, chip_returns),
        "chip_over_float_return": (chip_res.mean / float_res.mean if float_res.mean else None),
        "agreement": _agreement(calls, chip_lengths, names),
        "energy": decision_cost(
            chip_res.spikes, chip_res.inferences, spec.obs_dim, spec.action_dim, cfg.actor
        ),
    }
    path = out if out is not None else os.path.join(run_dir, DEPLOY_FILE)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    return {**report, "path": path}

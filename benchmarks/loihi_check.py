"""The chip model (``spikerl_jax.export.loihi``) against Lava's bit-accurate Loihi, spike for
spike and voltage for voltage.

Two halves, in two Pythons: Lava 0.10 (``lava-nc``) runs only on Python 3.10, the project on
3.11. The ``lava`` command is the Lava half: it imports numpy and Lava only (never jax), reads
the quantized layers and input spikes from an .npz, runs them in Lava's ``LIF`` and ``Dense``
processes under ``Loihi2SimCfg(select_tag="fixed_pt")`` (``PyLifModelBitAcc``,
``PyDenseModelBitAcc``) and writes every layer's spikes, voltages and currents back. The
``random`` and ``run`` commands are the project half: they quantize (random weights, or a
trained run's actor on the encoder spikes of its own episode), call the Lava half in the 3.10
interpreter and print the comparison as one JSON line.

    python benchmarks/loihi_check.py random                   # project venv (3.11)
    python benchmarks/loihi_check.py run /tmp/loihi_ip --observations 40
    /work/lava310/bin/python benchmarks/loihi_check.py lava in.npz out.npz   # Lava venv

The Lava interpreter is ``--lava-python``, else ``$SPIKERL_JAX_LAVA_PYTHON``, else
``/work/lava310/bin/python``. Make it with
``python3.10 -m venv /work/lava310 && /work/lava310/bin/pip install lava-nc==0.10.0``.

**The network in Lava.** Per layer ``k``: one ``LIF`` process (``du``, ``dv``, ``vth``,
``bias_mant``, ``bias_exp`` from the .npz) fed by up to four ``Dense`` processes with the
layer's ``weight_exp`` and 8-bit weights: the excitatory and inhibitory weights (sign modes
given, so Lava neither clips nor truncates them) and the bias neuron's excitatory and
inhibitory synapses. The encoder's spikes come from a ``RingBuffer`` source; each layer's bias
neuron is a ``RingBuffer`` that fires in that layer's timesteps (PopSAN's realization drove its
bias neurons from the host too).

**Time and resets.** Lava's ``Dense`` sends at step ``t`` what it summed at ``t - 1``, so layer
``k`` integrates the encoder's timestep ``tau`` (1..T) at Lava step ``tau + k + 1``. Each
observation gets a block of ``S = T + L`` Lava steps (``L`` layers): the encoder's spikes in
steps 1..T, layer ``k``'s bias neuron in steps ``k+1 .. k+T``, and layer ``k`` read in steps
``k+2 .. k+T+1``. Observations follow each other in one run: Lava's ``Reset`` process sets
layer ``k``'s ``u`` and ``v`` to 0 at the end of block step ``k + 1``, just before its first
timestep, so that each observation starts from rest as PopSAN's does (whatever the previous
observation left, and whatever the compartment bias integrated while the layer waited for its
input). Spikes and voltages are probed with ``Monitor`` processes; Lava's ``v`` is stored after
the reset.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_LAVA_PYTHON = "/work/lava310/bin/python"
FORMAT = "spikerl_jax-loihi-check-1"  # spikerl_jax.export.loihi.LAVA_FORMAT


def lava_python(explicit: str | None = None) -> str | None:
    """The first of ``explicit``, ``$SPIKERL_JAX_LAVA_PYTHON`` and the default path that
    exists and imports Lava; None if none does."""
    for candidate in (explicit, os.environ.get("SPIKERL_JAX_LAVA_PYTHON"), DEFAULT_LAVA_PYTHON):
        if candidate and Path(candidate).exists():
            probe = [candidate, "-c", "import lava.proc.lif.process"]
            if subprocess.run(probe, capture_output=True, timeout=120).returncode == 0:
                return candidate
    return None


# ---------------------------------------------------------------- the Lava half (Python 3.10)


def run_lava(arrays: dict) -> dict[str, np.ndarray]:
    """Runs the .npz's network in Lava (module docstring).

    Args:
      arrays: ``spikerl_jax.export.loihi.lava_inputs``'s keys.

    Returns:
      ``spikes_k``, ``voltage_k`` (after the reset), ``current_k``, each ``(B, T, N_k)``
      int32, plus ``lava_version``, ``models`` and ``lava_wall_s``.
    """
    from importlib.metadata import version

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.reset import Reset
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    if str(arrays["format"]) != FORMAT:
        raise ValueError(f"not a {FORMAT} file (format {arrays['format']})")
    spikes_in = np.asarray(arrays["spikes_in"], np.int32)  # (B, T, I)
    n_obs, steps, _ = spikes_in.shape
    n_layers = int(arrays["n_layers"])
    block = steps + n_layers
    total = n_obs * block

    def train(columns_BTI: np.ndarray, first: int) -> np.ndarray:
        """``(I, total)`` source data: observation ``b``'s ``T`` columns from block step
        ``first`` (1-based) on."""
        data = np.zeros((columns_BTI.shape[2], total), np.int32)
        for b in range(n_obs):
            start = b * block + first - 1  # the RingBuffer sends column step - 1
            data[:, start : start + steps] = columns_BTI[b].T
        return data

    source = RingBuffer(data=train(spikes_in, 1))
    previous = source.s_out
    processes, monitors = [source], []
    for k in range(n_layers):
        weight = np.asarray(arrays[f"weight_{k}"], np.int32).T  # Lava's (N, I)
        bias = np.asarray(arrays[f"bias_weight_{k}"], np.int32)[:, None]  # (N, 1)
        exp = int(arrays[f"weight_exp_{k}"])
        lif = LIF(
            shape=(weight.shape[0],),
            du=int(arrays[f"du_{k}"]),
            dv=int(arrays[f"dv_{k}"]),
            vth=int(arrays[f"vth_{k}"]),
            bias_mant=np.asarray(arrays[f"bias_mant_{k}"], np.int32),
            bias_exp=np.asarray(arrays[f"bias_exp_{k}"], np.int32),
            name=f"lif{k}",
        )
        bias_neuron = RingBuffer(data=train(np.ones((n_obs, steps, 1), np.int32), k + 1))
        for pre, w in ((previous, weight), (bias_neuron.s_out, bias)):
            for mode, part in (
                (SignMode.EXCITATORY, np.maximum(w, 0)),
                (SignMode.INHIBITORY, np.minimum(w, 0)),
            ):
                if not part.any():
                    continue
                dense = Dense(weights=part, weight_exp=exp, num_weight_bits=8, sign_mode=mode)
                pre.connect(dense.s_in)
                dense.a_out.connect(lif.a_in)
                processes.append(dense)
        for var in (lif.u, lif.v):
            reset = Reset(reset_value=0, interval=block, offset=k)
            reset.connect_var(var)
        for target in (lif.s_out, lif.v, lif.u):
            monitor = Monitor()
            monitor.probe(target, total)
            monitors.append((k, monitor))
        processes += [bias_neuron, lif]
        previous = lif.s_out

    start = time.perf_counter()
    source.run(condition=RunSteps(num_steps=total), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    data = {}
    for k, monitor in monitors:
        for name, values in monitor.get_data()[f"lif{k}"].items():
            data[(k, name)] = np.asarray(values)  # (total, N)
    models = sorted({type(p).__name__ + ":" + p.model_class.__name__ for p in processes})
    source.stop()
    wall = time.perf_counter() - start

    out = {
        "lava_version": np.asarray(version("lava-nc")),
        "models": np.asarray(models),
        "lava_wall_s": np.asarray(wall),
    }
    for k in range(n_layers):
        # Layer k's timesteps: block steps k+2 .. k+T+1, rows step - 1 of the probes.
        rows = np.concatenate([b * block + k + 1 + np.arange(steps) for b in range(n_obs)])
        for ours, theirs in (("spikes", "s_out"), ("voltage", "v"), ("current", "u")):
            values = data[(k, theirs)][rows].reshape(n_obs, steps, -1)
            out[f"{ours}_{k}"] = np.rint(values).astype(np.int32)
    return out


# ---------------------------------------------------------------- the project half (3.11)


def lava_check(chip, spikes_TBI, python: str, workdir: str, script: str = __file__) -> dict:
    """Runs ``chip`` on ``spikes_TBI`` here and in Lava (``python``) and compares.

    Returns:
      ``compare_with_lava``'s report plus Lava's version, models and wall time.
    """
    from spikerl_jax.export.loihi import chip_forward, compare_with_lava, lava_inputs

    inputs, outputs = Path(workdir) / "chip.npz", Path(workdir) / "lava.npz"
    np.savez(inputs, **lava_inputs(chip, spikes_TBI))
    done = subprocess.run(
        [python, script, "lava", str(inputs), str(outputs)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the Lava half failed:\n{done.stderr[-4000:]}")
    lava = dict(np.load(outputs))
    report = compare_with_lava(chip_forward(chip, spikes_TBI), lava)
    report["lava_version"] = str(lava["lava_version"])
    report["lava_models"] = [str(m) for m in lava["models"]]
    report["lava_wall_s"] = round(float(lava["lava_wall_s"]), 2)
    return report


def random_chip(seed: int, sizes: tuple[int, ...], steps: int, batch: int, regime: str):
    """Random integer layers and Bernoulli(0.3) input spikes ``(T, B, I)``.

    ``regime``: ``"active"`` (thresholds near the mean drive, so that every layer fires in
    some timesteps; weight exponents 0, 1, -2 in turn: both shift directions), ``"v-bias"``
    (the same with compartment biases) or ``"overflow"`` (weight exponent 7, thresholds out
    of reach: the 24-bit current wraps and the voltage saturates).
    """
    import jax.numpy as jnp

    from spikerl_jax.export.loihi import VTH_MAX, ChipLayer

    rng = np.random.default_rng(seed)
    chip = []
    for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        zeros = np.zeros(n_out, np.int32)
        v_bias = regime == "v-bias"
        if regime == "overflow":
            exp, weight = 7, rng.integers(-64, 256, (n_in, n_out))
            vth = VTH_MAX
        else:
            exp, weight = [0, 1, -2][k % 3], rng.integers(-160, 256, (n_in, n_out))
            # The mean drive per step in threshold units (the shift's rounding aside).
            drive = max(1.0, 0.3 * n_in * float(weight.mean()) * 2.0**exp)
            vth = int(drive * rng.uniform(0.5, 2.0))
        chip.append(
            ChipLayer(
                weight=jnp.asarray(weight, jnp.int32),
                bias_weight=jnp.asarray(rng.integers(-255, 256, n_out), jnp.int32),
                bias_mant=jnp.asarray(rng.integers(-4096, 4096, n_out) if v_bias else zeros),
                bias_exp=jnp.asarray(rng.integers(0, 8, n_out) if v_bias else zeros),
                vth=jnp.asarray(vth, jnp.int32),
                du=int(rng.choice([2047, 1000, 4095])),
                dv=int(rng.choice([1024, 300, 0])),
                weight_exp=exp,
            )
        )
    spikes = (rng.random((steps, batch, sizes[0])) < 0.3).astype(np.float32)
    return tuple(chip), spikes


def trained_spikes(run_dir: str, observations: int, seed: int = 0):
    """A run's best actor quantized, and the encoder's spikes ``(T, B, I)`` on the first
    ``observations`` observations of one of its deterministic episodes (episodes restart
    until there are enough)."""
    import gymnasium as gym
    import jax

    from spikerl_jax.export.loihi import encode, quantize
    from spikerl_jax.export.policy import load_policy
    from spikerl_jax.rl.normalizer import normalize

    policy = load_policy(run_dir)
    env = gym.make(policy.config.env)
    obs, _ = env.reset(seed=seed)
    seen = []
    while len(seen) < observations:
        seen.append(obs)
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + len(seen))
    obs_BD = normalize(policy.normalizer, np.asarray(seen, np.float32), policy.config.input_clip)
    spikes = encode(policy.actor, policy.actor_params, obs_BD, jax.random.key(0))
    chip = quantize(policy.actor_params, policy.config.actor)
    return policy, chip, np.asarray(spikes), obs_BD


def float_agreement(policy, chip, obs_BD) -> dict:
    """The float actor against the chip on the same observations: per layer the fraction
    of identical spike bins, for the float actor (``float``) and for the float actor with the
    chip's 8-bit weights (``float_8bit``, ``dequantize``: what is left is the decays'
    truncation and the 24-bit limits), and the actions' largest and mean differences."""
    from spikerl_jax.export.loihi import chip_apply, dequantize
    from spikerl_jax.snn.popsan import PopSAN

    actor, params = policy.actor, policy.actor_params
    action_c, trains_c = chip_apply(actor, params, chip, obs_BD)
    report = {}
    for label, p in (
        ("float", params),
        ("float_8bit", dequantize(params, chip, actor.config.threshold)),
    ):
        action, trains = actor.apply(p, obs_BD, method=PopSAN.spike_trains)
        diff = np.abs(np.asarray(action) - np.asarray(action_c))
        report[label] = {
            name: round(float(np.mean(np.asarray(trains[name]) == np.asarray(trains_c[name]))), 6)
            for name in trains
        } | {"max_action_diff": float(diff.max()), "mean_action_diff": float(diff.mean())}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lava = sub.add_parser("lava", help="the Lava half (Python 3.10 with lava-nc)")
    lava.add_argument("inputs")
    lava.add_argument("outputs")
    rand = sub.add_parser("random", help="random integer layers against Lava")
    rand.add_argument("--sizes", type=int, nargs="+", default=[40, 32, 24, 10])
    rand.add_argument("--timesteps", type=int, default=5)
    rand.add_argument("--batch", type=int, default=4)
    rand.add_argument("--seed", type=int, default=0)
    rand.add_argument("--regime", choices=["active", "v-bias", "overflow"], default="active")
    run = sub.add_parser("run", help="a trained run's actor against Lava")
    run.add_argument("run_dir")
    run.add_argument("--observations", type=int, default=40)
    for p in (rand, run):
        p.add_argument("--lava-python", default=None)
    args = parser.parse_args(argv)

    if args.command == "lava":
        out = run_lava(dict(np.load(args.inputs)))
        np.savez(args.outputs, **out)
        return 0
    python = lava_python(args.lava_python)
    if python is None:
        print("no Python with lava-nc: pass --lava-python or set SPIKERL_JAX_LAVA_PYTHON")
        return 2
    with tempfile.TemporaryDirectory() as workdir:
        if args.command == "random":
            chip, spikes = random_chip(
                args.seed, tuple(args.sizes), args.timesteps, args.batch, args.regime
            )
            report = {"case": f"random, {args.regime}", "sizes": args.sizes, "batch": args.batch}
        else:
            from spikerl_jax.export.loihi import chip_forward, chip_headroom

            policy, chip, spikes, obs_BD = trained_spikes(args.run_dir, args.observations)
            report = {
                "case": "trained",
                "run": args.run_dir,
                "env": policy.config.env,
                "observations": args.observations,
                "vth": [int(layer.vth) for layer in chip],
                "headroom": [chip_headroom(layer) for layer in chip],
                "largest_current": [
                    int(np.abs(np.asarray(t.current)).max()) for t in chip_forward(chip, spikes)
                ],
                "float_vs_chip": float_agreement(policy, chip, obs_BD),
            }
        report["timesteps"] = int(spikes.shape[0])
        report |= lava_check(chip, spikes, python, workdir)
    print(json.dumps(report))
    return 0 if report["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())

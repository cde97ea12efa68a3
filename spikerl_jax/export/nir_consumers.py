"""The exported NIR graph run in the neuromorphic toolchains that read it, against the
project's own actor: ``spikerl-jax export-nir --check``.

Each consumer takes the encoder's spikes ``(T, B, D*P_in)`` (the companion file's
pre-processing, computed here by the project) and returns the spikes it computes, per layer
where it exposes them, ``{layer: (T, B, N)}`` (``output`` at least). How each is called:

Each consumer is imported when it runs: all are optional.

- snnTorch: ``snntorch.import_nir.import_from_nir(graph)``, one call per timestep (its neurons
  keep their state; ``snntorch.utils.reset`` first). It assumes ``dt = 1e-4``.
- Norse: ``norse.torch.from_nir(graph, dt=graph.metadata["dt"])``, one call per timestep with
  the state it returns.
- Spyx: ``spyx.nir.from_nir(graph, spikes, dt=graph.metadata["dt"])``. Its CuBaLIF fires from
  the previous step's voltage with a subtractive reset; the one-step delay is undone by one
  extra step of no input (``spyx-shifted``), the reset has no NIR parameter.
- Rockpool: ``rockpool.nn.modules.from_nir(graph)``. It derives ``dt = tau_mem / (1 + r)``,
  decays exactly (``exp(-dt / tau)``), emits several spikes per step and resets by
  subtraction; ``rockpool-adapted`` sets ``dt``, the decays and one spike per step, which
  leaves only the reset different.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings

import numpy as np

from spikerl_jax.export.nir import companion_path
from spikerl_jax.export.policy import load_policy

CONSUMERS = ("snntorch", "norse", "spyx", "rockpool")


def installed() -> list[str]:
    """The consumers importable here."""
    return [name for name in CONSUMERS if importlib.util.find_spec(name) is not None]


def _lif_names(graph) -> list[str]:
    return sorted((n for n in graph.nodes if n.startswith("lif")), key=lambda n: int(n[3:]))


def _layers(graph, by_node: dict) -> dict:
    names = _lif_names(graph)
    layer = {n: f"hidden_{i}" for i, n in enumerate(names[:-1])} | {names[-1]: "output"}
    return {layer[n]: np.stack(v) for n, v in by_node.items()}


def run_snntorch(graph, spikes_TBN: np.ndarray) -> dict:
    import torch
    from snntorch import import_nir, utils

    net = import_nir.import_from_nir(graph)
    seen: dict = {n: [] for n in _lif_names(graph)}
    for name, module in net.named_modules():
        if name in seen:
            module.register_forward_hook(
                lambda m, i, out, n=name: seen[n].append(
                    (out[0] if isinstance(out, tuple) else out).numpy()
                )
            )
    utils.reset(net)
    with torch.no_grad():
        for x in spikes_TBN:
            net(torch.tensor(x))
    return _layers(graph, seen)


def run_norse(graph, spikes_TBN: np.ndarray) -> dict:
    import norse.torch as norse
    import torch

    net = norse.from_nir(graph, dt=float(graph.metadata["dt"]))
    seen: dict = {n: [] for n in _lif_names(graph)}
    for name, module in net.named_children():
        if name in seen:
            module.register_forward_hook(lambda m, i, out, n=name: seen[n].append(out[0].numpy()))
    state = None
    with torch.no_grad():
        for x in spikes_TBN:
            _, state = net(torch.tensor(x), state)
    return _layers(graph, seen)


def run_spyx(graph, spikes_TBN: np.ndarray, shifted: bool = False) -> dict:
    import jax.numpy as jnp
    import spyx.nir

    x = jnp.asarray(spikes_TBN)
    if shifted:  # its neurons fire a step late: one more step, of no input
        x = jnp.concatenate([x, jnp.zeros_like(x[:1])])
    _, out = spyx.nir.from_nir(graph, x, dt=float(graph.metadata["dt"]))
    out = np.asarray(out)
    return {"output": out[1:] if shifted else out}


def run_rockpool(graph, spikes_TBN: np.ndarray, adapted: bool = False) -> dict:
    import torch
    from rockpool.nn.modules import from_nir

    net = from_nir(graph)
    if adapted:
        dt, meta = float(graph.metadata["dt"]), graph.metadata
        for name in _lif_names(graph):
            lif = getattr(net, name)
            lif.dt = dt
            # Its exact decays exp(-dt/tau) made PopSAN's; its synaptic decay also scales
            # the input, so the layer before is scaled back.
            lif.tau_syn.data[:] = -dt / np.log(float(meta["current_decay"]))
            lif.tau_mem.data[:] = -dt / np.log(float(meta["voltage_decay"]))
            lif.max_spikes_per_dt = torch.tensor(1.0)
            fc = getattr(net, "fc" + name[3:])
            fc.weight.data /= float(meta["current_decay"])
            fc.bias.data /= float(meta["current_decay"])
    with torch.no_grad():
        out, _ = net(torch.tensor(spikes_TBN).permute(1, 0, 2))
    return {"output": out.numpy().transpose(1, 0, 2)}


RUNS = {
    "snntorch": run_snntorch,
    "norse": run_norse,
    "spyx": run_spyx,
    "spyx-shifted": lambda g, s: run_spyx(g, s, shifted=True),
    "rockpool": run_rockpool,
    "rockpool-adapted": lambda g, s: run_rockpool(g, s, adapted=True),
}


def decode(side: dict, output_TBN: np.ndarray) -> np.ndarray:
    """The companion file's decoder on output spikes: actions ``(B, A)``."""
    rate = output_TBN.mean(0).reshape(output_TBN.shape[1], int(side["action_dim"]), -1)
    pre = (rate * side["decoder_weight"]).sum(-1) + side["decoder_bias"]
    return np.float32(side["action_limit"]) * np.tanh(pre)


def agreement(graph, side: dict, trains: dict, actions: np.ndarray, names=None) -> list[dict]:
    """Per consumer (installed, or ``names``): the fraction of spike bins equal to the
    project's, over every layer the consumer exposes, and the largest action difference.

    Args:
      trains: the project's spikes ``{layer: (T, B, N)}`` (``Policy.spike_trains``).
      actions: the project's actions ``(B, A)``.
    """
    wanted = [n for n in RUNS if n.split("-")[0] in installed()] if names is None else names
    rows = []
    for name in wanted:
        try:  # the toolchains print notes and deprecation warnings of their own
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                spikes = RUNS[name](graph, np.asarray(trains["encoder"], np.float32))
        except Exception as e:  # a consumer's own failure is its row's result
            rows.append(
                {"toolchain": name, "loads": False, "error": f"{type(e).__name__}: {e}"[:200]}
            )
            continue
        equal = [np.mean(spikes[k] == trains[k]) for k in spikes]
        error = float(np.abs(decode(side, spikes["output"]) - actions).max())
        rows.append(
            {
                "toolchain": name,
                "loads": True,
                "layers": sorted(spikes),
                "bins_equal": float(np.mean(equal)),
                "action_error": error,
            }
        )
    return rows


def check_export(run_dir: str, path: str, checkpoint: str = "best", observations: int = 20):
    """Runs an exported graph (``path`` and its companion file) in every installed consumer
    against ``run_dir``'s actor on ``observations`` observations around its normalizer's
    statistics (mean + 2 std x normal, seed 0); returns ``agreement``'s rows."""
    import nir  # optional: spikerl_jax[nir]

    policy = load_policy(run_dir, checkpoint)
    mean, std = np.asarray(policy.normalizer.mean), np.sqrt(np.asarray(policy.normalizer.var))
    noise = np.random.default_rng(0).standard_normal((observations, policy.spec.obs_dim))
    actions, trains = policy.spike_trains((mean + 2 * std * noise).astype(np.float32))
    with np.load(companion_path(path)) as f:
        side = dict(f)
    return agreement(nir.read(path), side, trains, actions)

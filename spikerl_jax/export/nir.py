"""Export of a trained PopSAN actor to NIR, the Neuromorphic Intermediate Representation.

    from spikerl_jax.export.nir import export_nir
    export_nir("runs/hopper", "hopper.nir")    # -> ["hopper.nir", "hopper.popsan.npz"]

NIR (``pip install nir``) describes the spiking core of the actor: the LIF layers. PopSAN's
Gaussian population encoder and its population decoder have no exact NIR node (NIR has no
Gaussian receptive field, and its IF neuron resets *to* a value where the encoder subtracts
its threshold), so they are exported as pre- and post-processing whose parameters lie in a
companion ``.npz`` file beside the graph (``out.nir`` -> ``out.popsan.npz``; the graph's
metadata names it).

Shapes: ``D`` observation dims, ``A`` action dims, ``P_in``/``P_out`` neurons per population,
``H_i`` hidden widths, ``T`` timesteps.

**Time.** One PopSAN timestep is one NIR time step of ``dt`` seconds (``dt = 1e-4`` unless
``export_nir(..., dt=)`` / ``--dt`` says otherwise: snnTorch's and Lava's importers assume
1e-4; the graph's metadata records it). Every node is read with a forward-Euler step of
``dt``, for ``T`` steps from rest (``I = v = 0``, no spikes), one inference per observation.

**Graph.** ``input (D*P_in) -> fc0 -> lif0 -> fc1 -> lif1 -> ... -> fc{L} -> lif{L} -> output
(A*P_out)``, where ``fc{i}`` is ``nir.Affine(weight=kernel_i.T (n_out, n_in), bias=bias_i)``
(``y = W x + b``, applied to the previous layer's spikes of the same timestep) and ``lif{i}``
is a ``nir.CubaLIF`` layer. The input is the encoder's spikes, the output the last layer's
spikes.

**Neurons.** PopSAN's discrete current-based LIF (``spikerl_jax.snn.lif.lif_step``), with
``cd = current_decay``, ``vd = voltage_decay``, ``theta = threshold`` and drive ``x = W s + b``::

    c_t = cd * c_{t-1} + x_t
    v_t = vd * v_{t-1} * (1 - s_{t-1}) + c_t
    s_t = H(v_t - theta)                       (H(0) = 0: a spike needs v_t > theta)

is NIR's CubaLIF (``tau_syn dI/dt = -I + w_in x``; ``tau_mem dv/dt = (v_leak - v) + r I``;
``z = v > v_threshold``; ``v <- v_reset`` where ``z``) with one Euler step of ``dt``::

    I_t = I_{t-1} + dt/tau_syn * (-I_{t-1} + w_in * x_t)          (current first)
    v_t = v_{t-1} + dt/tau_mem * (v_leak - v_{t-1} + r * I_t)     (then voltage, NEW current)
    z_t = v_t > v_threshold                                       (then the spike)
    v_t <- v_reset where z_t                                      (reset ends the step)

with the parameters (every one an array of the layer's width)::

    tau_syn     = dt / (1 - cd)    (1 - dt/tau_syn = cd)     cd=0.5,  dt=1e-4 -> 2e-4
    tau_mem     = dt / (1 - vd)    (1 - dt/tau_mem = vd)     vd=0.75, dt=1e-4 -> 4e-4
    w_in        = tau_syn / dt     (dt/tau_syn * w_in = 1)   cd=0.5  -> 2
    r           = tau_mem / dt     (dt/tau_mem * r = 1)      vd=0.75 -> 4
    v_leak      = 0
    v_threshold = theta
    v_reset     = 0

so that the Euler step is ``I_t = cd I_{t-1} + x_t`` and ``v_t = vd v_{t-1} + I_t``: ``I`` is
PopSAN's ``c`` (only ``tau_syn`` and ``tau_mem`` depend on ``dt``). PopSAN applies a spike's
reset at the start of the next step (``vd * v_{t-1} * (1 - s_{t-1})``), NIR's reading at the
end of the spiking step (``v_{t-1}`` is already ``v_reset = 0`` after a spike); both give
``vd * 0 + c_t`` after a spike and ``vd * v_{t-1} + c_t`` otherwise, hence the same spikes.
This needs ``0 <= cd, vd < 1`` (a decay of 1 has no finite time constant). The arrays are
float32, the actor's arithmetic dtype; with the defaults ``dt/tau`` is exactly 0.5 and 0.25
in float32 (``1 - cd`` and ``1 - vd`` are powers of two). A run trained with a bf16 actor
precision computed its drives with bf16 matmuls: the exported float32 graph can differ from
it slightly.

**Toolchains** (``spikerl_jax.export.nir_consumers``; ``spikerl-jax export-nir --check`` runs
each installed one): snnTorch, ``snntorch.import_nir.import_from_nir(graph)``, and Norse,
``norse.torch.from_nir(graph, dt=graph.metadata["dt"])``, reproduce every spike; Spyx and
Rockpool read the file into neuron models of their own (README, "Neuromorphic export").

**Encoder (pre-processing, companion file).** For an observation ``obs (D,)``::

    o    = clip((obs - norm_mean) / sqrt(norm_var + norm_eps), -obs_clip, obs_clip)
    A    = exp(-0.5 * (o[:, None] - encoder_mean)**2 / encoder_std**2).reshape(D * P_in)
    m = 0; for t in 1..T: m += A; s_t = m > encoder_threshold; m -= encoder_threshold * s_t

(integrate-and-subtract, ``encoder_threshold = 0.999``; neuron ``d*P_in + p`` encodes
observation dim ``d``). ``s_1 .. s_T`` drive the graph's input. Only PopSAN's deterministic
``regular`` encoder is exported; the Poisson one is stochastic and is refused.

**Decoder (post-processing, companion file).** With ``z_t (A*P_out)`` the graph's output::

    rate   = (sum_t z_t / T).reshape(A, P_out)            (neuron a*P_out + p: action a)
    action = action_limit * tanh((rate * decoder_weight).sum(-1) + decoder_bias)

**Companion file** (``numpy.load``; no pickles): ``norm_mean (D,)``, ``norm_var (D,)``,
``norm_eps``, ``obs_clip``, ``encoder_mean (D, P_in)``, ``encoder_std (D, P_in)``,
``encoder_threshold``, ``timesteps``, ``dt``, ``decoder_weight (A, P_out)``,
``decoder_bias (A,)``, ``action_limit``, ``pop_in``, ``pop_out``, ``obs_dim``, ``action_dim``,
``format``. The graph's ``metadata`` holds the scalars of this description (``timesteps``,
``dt``, ``neuron_model``, ``update_order``, ``companion``, ...).
"""

from __future__ import annotations

import os

import numpy as np

from spikerl_jax.arguments import expect_path
from spikerl_jax.config import ConfigError
from spikerl_jax.export.nir_format import COMPANION_SUFFIX, companion_arrays, metadata
from spikerl_jax.export.policy import load_policy

# The time step the time constants are written for: snnTorch's and Lava's importers assume
# 1e-4 s (snnTorch asserts r == tau_mem / 1e-4); one PopSAN timestep is one such step.
DT = 1e-4


def _import_nir():
    try:
        import nir
    except ImportError:
        raise ConfigError(
            "NIR export needs the nir package: pip install nir (or pip install 'spikerl_jax[nir]')"
        ) from None
    return nir


def companion_path(path: str) -> str:
    """The companion file of the NIR file ``path`` (``out.nir`` -> ``out.popsan.npz``)."""
    root, ext = os.path.splitext(path)
    return (root if ext == ".nir" else path) + COMPANION_SUFFIX


def _check_exportable(config) -> None:
    if config.actor_kind != "popsan":
        raise ConfigError(
            f"NIR export needs the spiking PopSAN actor; this run uses --actor "
            f"{config.actor_kind} (train with --actor popsan)"
        )
    actor = config.actor
    if actor.encoder != "regular":
        raise ConfigError(
            "NIR export needs the deterministic 'regular' encoder; this run uses "
            f"{actor.encoder!r} (train with --encoder regular)"
        )
    if actor.encoder_input != "observation" or not config.obs_normalization:
        raise ConfigError(
            "NIR export's pre-processing normalizes the observation; this run's "
            "actor sees raw or tanh-squashed observations"
        )
    for name in ("current_decay", "voltage_decay"):
        value = getattr(actor, name)
        if not 0.0 <= value < 1.0:
            raise ConfigError(
                f"NIR export needs 0 <= {name} < 1 (a decay of 1 or more has no finite NIR "
                f"time constant); this run uses {value}"
            )


def _cuba_lif(nir, size: int, actor, dt: float):
    """The CubaLIF layer of ``size`` neurons equivalent to PopSAN's LIF for time step ``dt``
    (module docstring)."""

    def full(value: float) -> np.ndarray:
        return np.full(size, value, np.float32)

    syn, mem = 1.0 - actor.current_decay, 1.0 - actor.voltage_decay
    return nir.CubaLIF(
        tau_syn=full(dt / syn),
        tau_mem=full(dt / mem),
        r=full(1.0 / mem),
        v_leak=full(0.0),
        v_threshold=full(actor.threshold),
        v_reset=full(0.0),
        w_in=full(1.0 / syn),
    )


def popsan_to_nir(
    config, spec, actor_params, normalizer, *, companion: str | None = None, dt: float = DT
):
    """The NIR graph of a PopSAN actor's LIF layers and its encoder/decoder parameters.

    Args:
      config: the run's ``TrainConfig`` (``actor_kind``, ``actor`` and ``obs_clip`` are read).
      spec: the task's ``EnvSpec`` (``obs_dim`` D, ``action_dim`` A, ``action_limit``).
      actor_params: the actor's Flax parameters (``{"params": {"encoder", "snn", "decoder"}}``).
      normalizer: the run's ``Normalizer`` (``mean (D,)``, ``var (D,)``).
      companion: the companion file's name, recorded in the graph's metadata.
      dt: the time step (seconds) the time constants are written for: one PopSAN timestep.

    Returns:
      ``(graph, arrays)``: the ``nir.NIRGraph`` (input ``(D*P_in,)`` encoder spikes, output
      ``(A*P_out,)`` output spikes) and the companion file's arrays (module docstring).

    Raises:
      ConfigError: the MLP actor, the Poisson encoder, a decay outside ``[0, 1)``, a time step
        that is not positive, or ``nir`` not installed.
    """
    _check_exportable(config)
    if not dt > 0:
        raise ConfigError(f"--dt must be a positive number of seconds, got {dt}")
    nir, actor, params = _import_nir(), config.actor, actor_params["params"]
    n_in, n_out = spec.obs_dim * actor.pop_in, spec.action_dim * actor.pop_out
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    edges, previous = [], "input"
    n_layers = len(actor.hidden_sizes) + 1
    for i in range(n_layers):
        kernel = np.asarray(params["snn"][f"kernel_{i}"], np.float32)  # (n_in, n_out)
        bias = np.asarray(params["snn"][f"bias_{i}"], np.float32)
        nodes[f"fc{i}"] = nir.Affine(weight=np.ascontiguousarray(kernel.T), bias=bias)
        nodes[f"lif{i}"] = _cuba_lif(nir, kernel.shape[1], actor, dt)
        edges += [(previous, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        previous = f"lif{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
    edges.append((previous, "output"))
    meta = metadata(actor, spec, n_in, n_out, n_layers, dt)
    if companion is not None:
        meta["companion"] = companion
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    return graph, companion_arrays(config, spec, params, normalizer, dt)


def export_nir(run_dir: str, path: str, checkpoint: str = "best", dt: float = DT) -> list[str]:
    """Writes the NIR graph of ``run_dir``'s actor to ``path`` and its companion file.

    Args:
      run_dir: a training run's directory.
      path: the NIR (HDF5) file to write, e.g. ``actor.nir``; the companion file is written
        beside it (``actor.popsan.npz``).
      checkpoint: ``"best"`` or ``"latest"``.
      dt: the time step the time constants are written for (seconds; 1e-4 by default,
        what snnTorch's and Lava's importers assume).

    Returns:
      ``[path, companion path]``.

    Raises:
      ConfigError: no run there, an unknown checkpoint, the MLP actor, the Poisson encoder, or
        ``nir`` not installed.
    """
    expect_path("export_nir(run_dir)", run_dir)
    expect_path("export_nir(path)", path)
    nir = _import_nir()  # fail before loading the checkpoint
    policy = load_policy(run_dir, checkpoint)
    side = companion_path(path)
    graph, arrays = popsan_to_nir(
        policy.config,
        policy.spec,
        policy.actor_params,
        policy.normalizer,
        companion=os.path.basename(side),
        dt=dt,
    )
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    nir.write(path, graph)
    with open(side, "wb") as f:  # a file object: numpy appends no second ".npz"
        np.savez(f, **arrays)
    return [path, side]

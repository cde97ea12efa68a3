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

**Time.** One PopSAN timestep is one NIR time unit: every node is read with a forward-Euler step
of ``dt = 1``, for ``T`` steps from rest (``I = v = 0``, no spikes), one inference per
observation. The network is run afresh (from rest) for every observation.

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
``z = v > v_threshold``; ``v <- v_reset`` where ``z``) with one Euler step of ``dt = 1``::

    I_t = I_{t-1} + dt/tau_syn * (-I_{t-1} + w_in * x_t)          (current first)
    v_t = v_{t-1} + dt/tau_mem * (v_leak - v_{t-1} + r * I_t)     (then voltage, NEW current)
    z_t = v_t > v_threshold                                       (then the spike)
    v_t <- v_reset where z_t                                      (reset ends the step)

with the parameters (every one an array of the layer's width)::

    tau_syn     = dt / (1 - cd)    (alpha = 1 - dt/tau_syn = cd)     cd=0.5  -> 2
    tau_mem     = dt / (1 - vd)    (beta  = 1 - dt/tau_mem = vd)     vd=0.75 -> 4
    w_in        = tau_syn / dt     (so that dt/tau_syn * w_in = 1)   cd=0.5  -> 2
    r           = tau_mem / dt     (so that dt/tau_mem * r = 1)      vd=0.75 -> 4
    v_leak      = 0
    v_threshold = theta
    v_reset     = 0

so that the Euler step is ``I_t = cd I_{t-1} + x_t`` and ``v_t = vd v_{t-1} + I_t``: ``I`` is
PopSAN's ``c``. PopSAN applies a spike's reset at the start of the next step
(``vd * v_{t-1} * (1 - s_{t-1})``), NIR's reading at the end of the spiking step (``v_{t-1}``
is already ``v_reset = 0`` after a spike); both give ``vd * 0 + c_t`` after a spike and
``vd * v_{t-1} + c_t`` otherwise, hence the same spikes. This needs ``0 <= cd, vd < 1`` (a decay
of 1 has no finite time constant). The arrays are float32, the actor's arithmetic dtype; the
defaults' constants (2, 4, 0.5, 0) are exact in it. A run trained with a bf16 actor precision
computed its drives with bf16 matmuls: the exported float32 graph can differ from it slightly.

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

from spikerl_jax.config import ConfigError
from spikerl_jax.export.policy import load_policy
from spikerl_jax.snn.popcode import ENCODER_THRESHOLD

DT = 1.0  # one PopSAN timestep is one NIR time unit (forward Euler)
NORM_EPS = 1e-8  # spikerl_jax.rl.normalizer.normalize's variance epsilon
FORMAT = "spikerl_jax.popsan.nir/1"
COMPANION_SUFFIX = ".popsan.npz"

NEURON_MODEL = (
    "CubaLIF read with forward Euler, dt=1: I += dt/tau_syn*(-I + w_in*x); "
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
    for name in ("current_decay", "voltage_decay"):
        value = getattr(actor, name)
        if not 0.0 <= value < 1.0:
            raise ConfigError(
                f"NIR export needs 0 <= {name} < 1 (a decay of 1 or more has no finite NIR "
                f"time constant); this run uses {value}"
            )


def _cuba_lif(nir, size: int, actor):
    """The CubaLIF layer of ``size`` neurons equivalent to PopSAN's LIF (module docstring)."""
    f32 = np.float32

    def full(value: float) -> np.ndarray:
        return np.full(size, value, f32)

    tau_syn = DT / (1.0 - actor.current_decay)
    tau_mem = DT / (1.0 - actor.voltage_decay)
    return nir.CubaLIF(
        tau_syn=full(tau_syn),
        tau_mem=full(tau_mem),
        r=full(tau_mem / DT),
        v_leak=full(0.0),
        v_threshold=full(actor.threshold),
        v_reset=full(0.0),
        w_in=full(tau_syn / DT),
    )


def popsan_to_nir(config, spec, actor_params, normalizer, *, companion: str | None = None):
    """The NIR graph of a PopSAN actor's LIF layers and its encoder/decoder parameters.

    Args:
      config: the run's ``TrainConfig`` (``actor_kind``, ``actor`` and ``obs_clip`` are read).
      spec: the task's ``EnvSpec`` (``obs_dim`` D, ``action_dim`` A, ``action_limit``).
      actor_params: the actor's Flax parameters (``{"params": {"encoder", "snn", "decoder"}}``).
      normalizer: the run's ``Normalizer`` (``mean (D,)``, ``var (D,)``).
      companion: the companion file's name, recorded in the graph's metadata.

    Returns:
      ``(graph, arrays)``: the ``nir.NIRGraph`` (input ``(D*P_in,)`` encoder spikes, output
      ``(A*P_out,)`` output spikes) and the companion file's arrays (module docstring).

    Raises:
      ConfigError: the MLP actor, the Poisson encoder, a decay outside ``[0, 1)``, or ``nir``
        not installed.
    """
    _check_exportable(config)
    nir = _import_nir()
    actor = config.actor
    params = actor_params["params"]
    f32 = np.float32
    obs_dim, action_dim = spec.obs_dim, spec.action_dim
    n_in, n_out = obs_dim * actor.pop_in, action_dim * actor.pop_out

    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    edges = []
    previous = "input"
    n_layers = len(actor.hidden_sizes) + 1
    for i in range(n_layers):
        kernel = np.asarray(params["snn"][f"kernel_{i}"], f32)  # (n_in, n_out)
        bias = np.asarray(params["snn"][f"bias_{i}"], f32)
        nodes[f"fc{i}"] = nir.Affine(weight=np.ascontiguousarray(kernel.T), bias=bias)
        nodes[f"lif{i}"] = _cuba_lif(nir, kernel.shape[1], actor)
        edges += [(previous, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        previous = f"lif{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
    edges.append((previous, "output"))

    layer_names = ["encoder", *(f"hidden_{i}" for i in range(n_layers - 1)), "output"]
    metadata = {
        "format": FORMAT,
        "timesteps": int(actor.timesteps),
        "dt": DT,
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
        "obs_dim": int(obs_dim),
        "action_dim": int(action_dim),
        "pop_in": int(actor.pop_in),
        "pop_out": int(actor.pop_out),
    }
    if companion is not None:
        metadata["companion"] = companion
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)

    arrays = {
        "format": np.array(FORMAT),
        "norm_mean": np.asarray(normalizer.mean, f32),
        "norm_var": np.asarray(normalizer.var, f32),
        "norm_eps": np.float64(NORM_EPS),
        "obs_clip": np.float64(config.obs_clip),
        "encoder_mean": np.asarray(params["encoder"]["mean"], f32),
        "encoder_std": np.asarray(params["encoder"]["std"], f32),
        "encoder_threshold": np.float64(ENCODER_THRESHOLD),
        "timesteps": np.int64(actor.timesteps),
        "dt": np.float64(DT),
        "decoder_weight": np.asarray(params["decoder"]["weight"], f32),
        "decoder_bias": np.asarray(params["decoder"]["bias"], f32),
        "action_limit": np.float64(spec.action_limit),
        "pop_in": np.int64(actor.pop_in),
        "pop_out": np.int64(actor.pop_out),
        "obs_dim": np.int64(obs_dim),
        "action_dim": np.int64(action_dim),
    }
    return graph, arrays


def export_nir(run_dir: str, path: str, checkpoint: str = "best") -> list[str]:
    """Writes the NIR graph of ``run_dir``'s actor to ``path`` and its companion file.

    Args:
      run_dir: a training run's directory.
      path: the NIR (HDF5) file to write, e.g. ``actor.nir``; the companion file is written
        beside it (``actor.popsan.npz``).
      checkpoint: ``"best"`` or ``"latest"``.

    Returns:
      ``[path, companion path]``.

    Raises:
      ConfigError: no run there, an unknown checkpoint, the MLP actor, the Poisson encoder, or
        ``nir`` not installed.
    """
    nir = _import_nir()  # fail before loading the checkpoint
    policy = load_policy(run_dir, checkpoint)
    side = companion_path(path)
    graph, arrays = popsan_to_nir(
        policy.config,
        policy.spec,
        policy.actor_params,
        policy.normalizer,
        companion=os.path.basename(side),
    )
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    nir.write(path, graph)
    with open(side, "wb") as f:  # a file object: numpy appends no second ".npz"
        np.savez(f, **arrays)
    return [path, side]

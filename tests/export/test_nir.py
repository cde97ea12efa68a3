"""NIR export of a trained PopSAN actor: the graph read back and simulated from NIR's own node
semantics (with the companion file's encoder and decoder) acts and spikes as the JAX actor."""

import dataclasses
import os

import numpy as np
import pytest
from helpers import TINY

from spikerl_jax.cli import main
from spikerl_jax.config import ConfigError
from spikerl_jax.export.nir import export_nir, popsan_to_nir
from spikerl_jax.export.policy import load_policy

nir = pytest.importorskip("nir")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nir") / "run"
    assert main(["train", *TINY, "--no-energy", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("nir_out") / "actor.nir")
    return export_nir(str(run), path)


def simulate(graph, side, obs_BD):
    """The actions ``(B, A)`` and per-layer spike totals ``{layer: (B,)}`` of NIR ``graph``
    and its companion arrays, from NIR's documented semantics with forward Euler at the
    companion file's ``dt``.

    Written from the file's parameters alone: no project code. float32 throughout, the
    arithmetic of the exported actor.
    """
    f32 = np.float32
    dt = f32(side["dt"])
    steps = int(side["timesteps"])
    # Observation normalization and Gaussian receptive fields.
    o = (obs_BD.astype(f32) - side["norm_mean"]) / np.sqrt(side["norm_var"] + f32(side["norm_eps"]))
    o = np.clip(o, -f32(side["obs_clip"]), f32(side["obs_clip"]))
    act = np.exp(
        f32(-0.5) * (o[:, :, None] - side["encoder_mean"]) ** 2 / side["encoder_std"] ** 2
    ).reshape(len(o), -1)
    # Encoder: integrate-and-subtract, an explicit loop over T.
    theta_enc = f32(side["encoder_threshold"])
    membrane = np.zeros_like(act)
    input_spikes = []
    for _ in range(steps):
        membrane = membrane + act
        s = (membrane > theta_enc).astype(f32)
        membrane = membrane - theta_enc * s
        input_spikes.append(s)

    # The graph: walk the edges from the input node.
    successor = dict(graph.edges)
    chain, name = [], successor["input"]
    while name != "output":
        chain.append(name)
        name = successor[name]
    state = {
        n: (np.zeros(len(graph.nodes[n].v_threshold), f32),) * 2
        for n in chain
        if isinstance(graph.nodes[n], nir.CubaLIF)
    }
    counts = {"encoder": np.zeros(len(obs_BD))}
    lif_names = [n for n in chain if isinstance(graph.nodes[n], nir.CubaLIF)]
    for n in lif_names:
        counts[n] = np.zeros(len(obs_BD))
    out_sum = 0.0
    for s in input_spikes:
        counts["encoder"] += s.sum(-1)
        x = s
        for n in chain:
            node = graph.nodes[n]
            if isinstance(node, nir.Affine):  # y = W x + b
                x = x @ node.weight.astype(f32).T + node.bias.astype(f32)
            else:  # CubaLIF, one Euler step; reset at the end of the step
                i_syn, v = state[n]
                i_syn = i_syn + dt / node.tau_syn * (-i_syn + node.w_in * x)
                v = v + dt / node.tau_mem * (node.v_leak - v + node.r * i_syn)
                z = (v > node.v_threshold).astype(f32)
                v = np.where(z > 0, node.v_reset, v)
                state[n] = (i_syn, v)
                counts[n] += z.sum(-1)
                x = z
        out_sum = out_sum + x
    # Decoder.
    rate = (out_sum / steps).reshape(len(obs_BD), int(side["action_dim"]), int(side["pop_out"]))
    pre = (rate * side["decoder_weight"]).sum(-1) + side["decoder_bias"]
    actions = f32(side["action_limit"]) * np.tanh(pre)
    names = ["encoder", *(f"hidden_{i}" for i in range(len(lif_names) - 1)), "output"]
    totals = [counts["encoder"], *(counts[n] for n in lif_names)]
    return actions, dict(zip(names, totals, strict=True))


def test_the_nir_file_holds_the_lif_layers_and_names_its_companion(exported):
    path, side_path = exported
    assert side_path == path[: -len(".nir")] + ".popsan.npz" and os.path.exists(side_path)
    graph = nir.read(path)
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert kinds == {
        "input": "Input",
        "fc0": "Affine",
        "lif0": "CubaLIF",
        "fc1": "Affine",
        "lif1": "CubaLIF",
        "fc2": "Affine",
        "lif2": "CubaLIF",
        "output": "Output",
    }
    assert sorted(graph.edges) == sorted(
        [
            ("input", "fc0"),
            ("fc0", "lif0"),
            ("lif0", "fc1"),
            ("fc1", "lif1"),
            ("lif1", "fc2"),
            ("fc2", "lif2"),
            ("lif2", "output"),
        ]
    )
    # InvertedPendulum: D = 4, A = 1, 10 neurons per population, 16x16 hidden.
    assert list(graph.nodes["input"].input_type["input"]) == [40]
    assert list(graph.nodes["output"].output_type["output"]) == [10]
    assert graph.nodes["fc0"].weight.shape == (16, 40)
    assert graph.nodes["fc2"].weight.shape == (10, 16)
    lif = graph.nodes["lif0"]
    # current_decay 0.5, voltage_decay 0.75, threshold 0.5 at the default dt = 1e-4 s.
    for field, value in [
        ("tau_syn", 2e-4),
        ("tau_mem", 4e-4),
        ("w_in", 2.0),
        ("r", 4.0),
        ("v_leak", 0.0),
        ("v_threshold", 0.5),
        ("v_reset", 0.0),
    ]:
        np.testing.assert_array_equal(getattr(lif, field), np.full(16, value, np.float32))
    meta = graph.metadata
    assert meta["companion"] == "actor.popsan.npz"
    assert int(meta["timesteps"]) == 5 and float(meta["dt"]) == 1e-4


def test_the_simulated_nir_graph_acts_and_spikes_as_the_jax_actor(run, exported):
    path, side_path = exported
    graph = nir.read(path)
    policy = load_policy(str(run))
    with np.load(side_path) as f:
        side = dict(f)
    np.testing.assert_array_equal(
        graph.nodes["fc1"].weight, np.asarray(policy.actor_params["params"]["snn"]["kernel_1"]).T
    )
    rng = np.random.default_rng(0)
    std = np.sqrt(np.asarray(policy.normalizer.var))
    obs = np.asarray(policy.normalizer.mean) + 2 * std * rng.standard_normal((100, 4))
    obs = obs.astype(np.float32)

    actions, counts = simulate(graph, side, obs)
    expected_actions, expected_counts = policy.with_spikes(obs)
    np.testing.assert_allclose(actions, policy(obs), rtol=0, atol=1e-5)
    np.testing.assert_allclose(actions, expected_actions, rtol=0, atol=1e-5)
    assert set(counts) == set(expected_counts)
    for layer, count in counts.items():
        np.testing.assert_array_equal(count, np.asarray(expected_counts[layer]), err_msg=layer)
    assert all(count.sum() > 0 for count in counts.values())  # the comparison is not vacuous


def test_a_sac_run_exports_its_deterministic_policy_the_spiking_network_alone(tmp_path):
    """SAC's deterministic action (evaluation, the best policy, exports) is the actor's own
    pass, ``limit tanh(mean)``: the NIR graph of a SAC run acts as its loaded policy, and the
    log-std network stays behind."""
    out = tmp_path / "sac"
    assert main(["train", *TINY, "--algo", "sac", "--no-energy", "--out", str(out)]) == 0
    path, side_path = export_nir(str(out), str(tmp_path / "sac.nir"))
    policy = load_policy(str(out))
    assert set(policy.actor_params["params"]) == {"encoder", "snn", "decoder"}
    with np.load(side_path) as f:
        side = dict(f)
    rng = np.random.default_rng(1)
    std = np.sqrt(np.asarray(policy.normalizer.var))
    obs = np.asarray(policy.normalizer.mean) + 2 * std * rng.standard_normal((50, 4))
    actions, counts = simulate(nir.read(path), side, obs.astype(np.float32))
    np.testing.assert_allclose(actions, policy(obs.astype(np.float32)), rtol=0, atol=1e-5)
    assert all(count.sum() > 0 for count in counts.values())
    assert main(["eval", str(out), "--episodes", "1"]) == 0


def test_the_poisson_encoder_and_the_mlp_actor_are_refused(run):
    policy = load_policy(str(run))
    cfg = policy.config
    args = (policy.spec, policy.actor_params, policy.normalizer)
    poisson = dataclasses.replace(cfg, actor=dataclasses.replace(cfg.actor, encoder="poisson"))
    with pytest.raises(
        ConfigError, match="needs the deterministic 'regular' encoder; this run uses 'poisson'"
    ):
        popsan_to_nir(poisson, *args)
    mlp = dataclasses.replace(cfg, actor_kind="mlp")
    with pytest.raises(
        ConfigError, match="needs the spiking PopSAN actor; this run uses --actor mlp"
    ):
        popsan_to_nir(mlp, *args)
    leaky = dataclasses.replace(cfg, actor=dataclasses.replace(cfg.actor, voltage_decay=1.0))
    with pytest.raises(ConfigError, match="0 <= voltage_decay < 1"):
        popsan_to_nir(leaky, *args)


@pytest.fixture(scope="module")
def hopper_sized():
    """A PopSAN of Hopper's sizes (110 -> 256 -> 256 -> 30), its weights scaled so that every
    layer fires (an initial actor barely does), exported at the default dt, with its own
    spikes and actions on 20 observations."""
    import jax
    import jax.numpy as jnp

    from spikerl_jax.config import preset_for
    from spikerl_jax.envs.registry import env_spec
    from spikerl_jax.rl.networks import make_networks
    from spikerl_jax.rl.normalizer import Normalizer, normalize

    cfg = preset_for("Hopper-v4")
    spec = env_spec(cfg.env)
    actor = make_networks(spec.action_dim, spec.action_limit, cfg.actor).actor
    params = jax.tree.map(lambda x: 3.0 * x, actor.init(jax.random.key(0), jnp.zeros((1, 11))))
    rng = np.random.default_rng(0)
    norm = Normalizer(
        jnp.float32(100),
        jnp.asarray(rng.standard_normal(11), jnp.float32),
        jnp.full(11, 2.0, jnp.float32),
    )
    obs = (2 * rng.standard_normal((20, 11))).astype(np.float32)
    actions, trains = actor.apply(params, normalize(norm, obs), None, method=actor.spike_trains)
    graph, side = popsan_to_nir(cfg, spec, params, norm)
    trains = {k: np.asarray(v) for k, v in trains.items()}
    assert all(0.05 < v.mean() < 0.95 for v in trains.values())  # every layer fires, not always
    return graph, side, trains, np.asarray(actions)


@pytest.mark.parametrize("toolchain", ["snntorch", "norse"])
def test_snntorch_and_norse_run_the_file_as_the_actor(toolchain, hopper_sized, tmp_path):
    """Loaded with the toolchain's own importer as its documentation says (snnTorch:
    ``import_from_nir(graph)``, which assumes dt = 1e-4; Norse: ``from_nir(graph, dt=1e-4)``,
    the declared step): every spike of every layer, and the actions to 1e-5."""
    pytest.importorskip(toolchain)
    from spikerl_jax.export.nir_consumers import decode, run_norse, run_snntorch

    graph, side, trains, actions = hopper_sized
    path = tmp_path / "hopper.nir"
    nir.write(str(path), graph)
    graph = nir.read(str(path))
    assert float(graph.metadata["dt"]) == 1e-4
    run = run_snntorch if toolchain == "snntorch" else run_norse
    spikes = run(graph, trains["encoder"])
    assert sorted(spikes) == ["hidden_0", "hidden_1", "output"]
    for layer, train in spikes.items():
        np.testing.assert_array_equal(train, trains[layer], err_msg=layer)
    np.testing.assert_allclose(decode(side, spikes["output"]), actions, atol=1e-5)


def test_export_nir_check_prints_each_installed_toolchain(run, tmp_path, capsys):
    out = tmp_path / "actor.nir"
    assert main(["export-nir", str(run), str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    for toolchain in ("snntorch", "norse"):
        assert toolchain in printed
    assert "100.0%" in printed

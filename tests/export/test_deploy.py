"""``spikerl-jax deploy``: a tiny run's policy on the Loihi chip model, closed loop beside the
float actor, and the one-line refusals that write nothing."""

import json
import re

import pytest
from helpers import TINY

from spikerl_jax.cli import main
from spikerl_jax.config import ConfigError
from spikerl_jax.export.deploy import ENERGY_PER_OP, decision_cost, deploy


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "run"
    assert main(["train", *TINY, "--no-energy", "--out", str(out)]) == 0
    return out


def test_deploy_writes_float_and_chip_returns_agreement_and_energy(run, capsys):
    assert main(["deploy", str(run), "--chip", "loihi", "--episodes", "2"]) == 0
    assert "written:" in capsys.readouterr().out
    report = json.loads((run / "deploy.json").read_text())
    assert report["seeds"] == [0, 1]
    for side in ("float", "on_chip"):
        assert len(report[side]["returns"]) == 2 and report[side]["return_mean"] > 0
    agree = report["agreement"]
    assert agree["observations"] == sum(report["on_chip"]["returns"])  # reward 1 per step
    assert 0.9 < agree["output_spike_agreement"] <= 1.0
    assert 0 <= agree["action_error_mean"] <= agree["action_error_max"]
    energy = report["energy"]
    assert energy["loihi"]["neuron_updates"] == (16 + 16 + 10) * 5
    assert energy["mlp"]["macs"] == 4 * 16 + 16 * 16 + 16 * 1
    assert energy["mlp_cpu_over_loihi"] > energy["mlp_gpu_over_loihi"] > 0


def test_the_float_episodes_are_evals_and_the_api_deploys(run, capsys):
    import spikerl_jax as sj

    report = sj.deploy(str(run), episodes=2, out=str(run / "again.json"))
    assert report["path"].endswith("again.json")
    assert main(["eval", str(run), "--episodes", "2", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["float"]["return_mean"] == evaluated["return_mean"]


def test_decision_cost_counts_spikes_bias_and_updates():
    from spikerl_jax.config import PopSANConfig

    cfg = PopSANConfig(hidden_sizes=(3,), timesteps=2, pop_in=1, pop_out=1)
    cost = decision_cost({"encoder": 4.0, "hidden_0": 2.0, "output": 1.0}, 2, 2, 1, cfg)
    loihi = cost["loihi"]
    # (2 input spikes + 2 bias spikes) * 3 neurons, then (1 + 2) * 1 neuron.
    assert loihi["synops"] == 4 * 3 + 3 * 1 and loihi["neuron_updates"] == (3 + 1) * 2
    expected = 15 * ENERGY_PER_OP["loihi"]["synop"] + 8 * ENERGY_PER_OP["loihi"]["neuron_update"]
    assert loihi["nj"] == pytest.approx(expected / 1e3)


def _config_only(run, tmp_path, actor_kind=None):
    bare = tmp_path / "bare"
    bare.mkdir()
    config = json.loads((run / "config.json").read_text())
    if actor_kind:
        config["actor_kind"] = actor_kind
    (bare / "config.json").write_text(json.dumps(config))
    return bare


@pytest.mark.parametrize(
    "case, message",
    [
        ("mlp", "trained an MLP actor.*--actor popsan"),
        ("no checkpoint", "no complete checkpoint.*train --resume"),
        ("layer", "layer hidden_0: weight exponent 9 is outside Loihi's -8..7.*--weight-exp"),
        ("episodes", "--episodes must be a positive integer.*--episodes 10"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run, tmp_path, capsys, case, message):
    target, extra = run, []
    if case == "mlp":
        target = _config_only(run, tmp_path, "mlp")
    elif case == "no checkpoint":
        target = _config_only(run, tmp_path)
    elif case == "layer":
        extra = ["--weight-exp", "9"]
    else:
        extra = ["--episodes", "0"]
    out = tmp_path / "deploy.json"
    assert main(["deploy", str(target), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err
    assert not out.exists()
    if case in ("mlp", "no checkpoint"):
        assert sorted(p.name for p in target.iterdir()) == ["config.json"]
    with pytest.raises(ConfigError):
        deploy(str(target), episodes=int(case != "episodes"), weight_exp=9 * (case == "layer"))

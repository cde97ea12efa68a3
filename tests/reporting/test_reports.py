"""Energy and carbon (codecarbon, offline), TensorBoard, spike statistics of a real short run;
tracker failures; `spikerl-jax compare` arithmetic and `spikerl-jax plot` output."""

import csv
import json
import shutil
import socket

import numpy as np
import pytest
from helpers import TINY, read_scalars

from spikerl_jax.cli import main
from spikerl_jax.reporting.compare import compare_runs
from spikerl_jax.reporting.energy import EMISSIONS_COLUMNS, PhaseTotals
from spikerl_jax.reporting.grouping import group_runs
from spikerl_jax.reporting.plots import _curve
from spikerl_jax.reporting.runs import RunRecord, read_run


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """A short run with every network connection refused (and recorded)."""
    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError("network access is blocked in this test")

    out = tmp_path_factory.mktemp("offline") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse)
        assert main(["train", *TINY, "--energy-country", "FRA", "--out", str(out)]) == 0
    return out, attempts


def test_energy_fields_without_network(offline_run):
    out, attempts = offline_run
    assert attempts == []
    energy = json.loads((out / "summary.json").read_text())["energy"]
    assert energy["enabled"] and "error" not in energy
    assert energy["country_iso_code"] == "FRA"
    assert set(energy["power_source"]) >= {"cpu", "gpu", "ram"}
    for phase in ("train", "eval", "total"):
        e = energy[phase]
        assert e["duration_s"] > 0 and e["energy_kwh"] > 0 and e["emissions_kg"] > 0
        parts = e["cpu_energy_kwh"] + e["gpu_energy_kwh"] + e["ram_energy_kwh"]
        assert parts == pytest.approx(e["energy_kwh"], rel=1e-6)
        assert e["mean_power_w"] == pytest.approx(e["energy_kwh"] * 3.6e6 / e["duration_s"])
    total = energy["total"]
    for key in ("duration_s", "energy_kwh", "emissions_kg"):
        assert total[key] == pytest.approx(energy["train"][key] + energy["eval"][key])


def test_emissions_csv_holds_each_stretch(offline_run):
    out, _ = offline_run
    with open(out / "emissions.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == EMISSIONS_COLUMNS
        stretches = list(reader)
    # train until the evaluation at 300, eval, train until 600, eval (the run's end).
    assert [(r["phase"], int(r["step"])) for r in stretches] == [
        ("train", 300),
        ("eval", 300),
        ("train", 600),
        ("eval", 600),
    ]
    summary = json.loads((out / "summary.json").read_text())
    for phase in ("train", "eval"):
        rows = [r for r in stretches if r["phase"] == phase]
        assert sum(float(r["energy_kwh"]) for r in rows) == pytest.approx(
            summary["energy"][phase]["energy_kwh"], rel=1e-9
        )


def test_tensorboard_scalars_match_metrics_csv(offline_run):
    out, _ = offline_run
    scalars = read_scalars(out)
    with open(out / "metrics.csv") as f:
        metrics = list(csv.DictReader(f))
    assert [s for s, _ in scalars["eval/return"]] == [300, 600]
    assert [v for _, v in scalars["eval/return"]] == pytest.approx(
        [float(r["eval_return"]) for r in metrics]
    )
    spikes = json.loads((out / "summary.json").read_text())["spikes"]
    for layer, stats in spikes["layers"].items():
        assert scalars[f"spikes/firing_rate_{layer}"][-1][1] == pytest.approx(stats["firing_rate"])


def test_summary_spike_statistics_match_metrics(offline_run):
    out, _ = offline_run
    spikes = json.loads((out / "summary.json").read_text())["spikes"]
    with open(out / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["synops_per_inference"]) == pytest.approx(spikes["synops_per_inference"])
    assert set(spikes["layers"]) == {"encoder", "hidden_0", "hidden_1", "output"}
    assert spikes["inferences"] == 2 * float(last["eval_length"])  # 2 episodes
    for stats in spikes["layers"].values():
        assert 0.0 <= stats["firing_rate"] <= 1.0


class _BrokenTracker:
    """Stands in for codecarbon's tracker, failing at ``where``."""

    where = "init"

    def __init__(self, *args, **kwargs):
        if self.where == "init":
            raise RuntimeError("no power readings")
        self._conf = {}

    def start_task(self, *args):
        if self.where == "start_task":
            raise RuntimeError("no power readings")

    def stop_task(self, *args):
        raise RuntimeError("no power readings")

    def stop(self):
        pass


@pytest.mark.parametrize("where", ["init", "start_task", "stop_task"])
def test_a_failing_tracker_does_not_stop_training(where, tmp_path, monkeypatch):
    import codecarbon

    monkeypatch.setattr(_BrokenTracker, "where", where)
    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", _BrokenTracker)
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="energy tracking failed"):
        assert main(["train", *TINY, "--no-tensorboard", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 600 and summary["final_eval_return"] is not None
    assert "no power readings" in summary["energy"]["error"]
    assert not (out / "tensorboard").exists()


def test_no_energy_and_bad_grid(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--no-energy", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["energy"] == {"enabled": False}
    assert (out / "emissions.csv").read_text().strip() == ",".join(EMISSIONS_COLUMNS)
    capsys.readouterr()
    assert main(["train", *TINY, "--energy-country", "XYZ", "--out", str(tmp_path / "b")]) == 2
    assert "--energy-country 'XYZ'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # refused before anything is written


def measured(duration_s, energy_kwh, emissions_kg):
    total = PhaseTotals(
        duration_s=duration_s,
        energy_kwh=energy_kwh,
        emissions_kg=emissions_kg,
        cpu_energy_kwh=energy_kwh,
    )
    return {"enabled": True, "total": total.report()}


def record(name, energy, final=1.0, wall=1.0):
    summary = {
        "env": "Hopper-v4",
        "total_steps": 1000,
        "final_eval_return": final,
        "best_eval_return": final,
        "wall_s": wall,
        "energy": energy,
    }
    return RunRecord(name, {}, summary, [])


def test_compare_arithmetic():
    base = record("base", measured(100.0, 0.010, 0.004), final=500.0)
    new = record("new", measured(50.0, 0.004, 0.0016), final=600.0)
    off = record("off", {"enabled": False}, wall=25.0)
    rows = compare_runs(base, [new, off])
    assert [r["run"] for r in rows] == ["base", "new", "off"]
    assert (rows[0]["speedup"], rows[0]["greenup"], rows[0]["powerup"]) == (1.0, 1.0, 1.0)
    # P_base = 0.010 kWh * 3.6e6 J/kWh / 100 s = 360 W; P_new = 0.004 * 3.6e6 / 50 = 288 W.
    r = rows[1]
    assert r["mean_power_w"] == pytest.approx(288.0)
    assert r["speedup"] == pytest.approx(2.0)
    assert r["powerup"] == pytest.approx(0.8)
    assert r["greenup"] == pytest.approx(2.5) == pytest.approx(r["speedup"] / r["powerup"])
    assert r["carbon_reduction_pct"] == pytest.approx(60.0)
    assert r["final_return"] == 600.0
    # Without energy figures: speedup from wall time, energy ratios absent.
    assert rows[2]["speedup"] == pytest.approx(4.0)
    assert rows[2]["greenup"] is None and rows[2]["carbon_reduction_pct"] is None


def test_compare_warns_about_runs_of_different_environments():
    base = record("base", {"enabled": False})
    other = RunRecord("other", {}, {**base.summary, "env": "Walker2d-v4"}, [])
    with pytest.warns(UserWarning, match=r"differ in tasks \(Hopper-v4, Walker2d-v4\): their"):
        compare_runs(base, [other])


def copy_run(src, dst, seed, returns, actor_lr=None):
    """A copy of a real run with another seed (and learning rate) and chosen eval returns."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    config = json.loads((dst / "config.json").read_text())
    config["seed"] = seed
    if actor_lr is not None:
        config["td3"]["actor_lr"] = actor_lr
    (dst / "config.json").write_text(json.dumps(config))
    with open(dst / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for row, ret in zip(rows, returns, strict=True):
        row["eval_return"] = ret
    with open(dst / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    return dst


def test_compare_and_plot_commands(offline_run, tmp_path, capsys):
    out, _ = offline_run
    a = copy_run(out, tmp_path / "a", 0, [10.0, 30.0])
    b = copy_run(out, tmp_path / "b", 1, [20.0, 50.0])
    c = copy_run(out, tmp_path / "c", 0, [5.0, 6.0], actor_lr=1e-3)

    groups = group_runs([read_run(str(p)) for p in (a, b, c)])
    assert sorted(groups) == ["actor_lr=0.0003", "actor_lr=0.001"]  # one task: not named
    steps, mean, std = _curve(groups["actor_lr=0.0003"])
    np.testing.assert_allclose(steps, [300, 600])
    np.testing.assert_allclose(mean, [15.0, 40.0])
    np.testing.assert_allclose(std, [5.0, 10.0])

    prefix = tmp_path / "cmp"
    assert main(["compare", str(a), str(c), "--out", str(prefix)]) == 0
    assert "Greenup" in capsys.readouterr().out
    rows = json.loads((tmp_path / "cmp.json").read_text())
    assert rows[1]["speedup"] == pytest.approx(1.0)  # a copy of the same measurements
    assert len((tmp_path / "cmp.csv").read_text().splitlines()) == 3  # header + 2 runs

    assert main(["plot", str(a), str(b), str(c), "--out", str(tmp_path / "plots")]) == 0
    for name in ("learning_curve.png", "energy.png", "firing_rates.png"):
        png = (tmp_path / "plots" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    capsys.readouterr()
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text("{}")
    assert main(["compare", str(a), str(tmp_path / "unfinished")]) == 2
    assert "has no summary.json" in capsys.readouterr().err


def test_a_torn_metrics_row_is_dropped_with_one_warning(offline_run, tmp_path):
    """compare and plot read a run whose last metrics.csv line was cut mid-write (a kill, a
    full disk): the whole rows stay, the torn one is dropped and named."""
    import shutil

    run, source = tmp_path / "torn", offline_run[0]
    shutil.copytree(source, run)
    text = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])
    whole = read_run(str(source)).metrics
    with pytest.warns(UserWarning, match=r"dropped 1 row\(s\) that do not parse \(line \d+\)"):
        assert read_run(str(run)).metrics == whole[:-1]

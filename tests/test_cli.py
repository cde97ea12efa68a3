"""The command line: outputs of a short real run, --help, and one clear line per bad input."""

import csv
import json

import pytest
from helpers import TINY, user_cli

from spikerl_jax.cli import main


def run_cli(*args):
    """``spikerl-jax ARGS`` as a user runs it (no forced devices)."""
    return user_cli(*args, timeout=300)


def test_short_run_writes_config_metrics_and_summary(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["env"] == "InvertedPendulum-v4" and config["actor"]["hidden_sizes"] == [16, 16]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [300, 600]
    for column in ("eval_return", "eval_return_std", "wall_s", "env_steps_per_s", "updates_per_s"):
        assert rows[-1][column] != ""
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["total_steps"] == 600 and summary["updates"] == 550
    )  # 11 rounds of 50: those ending at 100..600
    assert summary["final_eval_return"] == float(rows[-1]["eval_return"])
    assert summary["best_eval_return"] == max(float(r["eval_return"]) for r in rows)
    # Nothing is overwritten: the same --out again is refused.
    assert main(["train", *TINY, "--out", str(out)]) == 2


def test_target_return_stops_at_the_first_evaluation_that_reaches_it(tmp_path):
    out = tmp_path / "run"  # every return reaches -1e9: the first evaluation ends the run
    assert main(["train", *TINY, "--target-return", "-1e9", "--out", str(out)]) == 0
    assert [r["step"] for r in csv.DictReader((out / "metrics.csv").open())] == ["300"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 300 and summary["target_reached_at"] == 300
    assert (out / "checkpoints" / "300").is_dir()
    # A resumed run goes on to the next evaluation (which reaches it again).
    assert main(["train", "--resume", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 600 and summary["target_reached_at"] == 600
    # ... or trains on without a target (a resume may change it).
    assert (
        main(["train", "--resume", str(out), "--target-return", "None", "--total-steps", "900"])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 900 and summary["target_reached_at"] is None
    bad = ["train", *TINY, "--target-return", "nan", "--out", str(tmp_path / "bad")]
    assert main(bad) == 2 and not (tmp_path / "bad").exists()


def test_parallel_envs_run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--num-envs", "2", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 600 and summary["updates"] == 550


def test_help_documents_every_option():
    code, out, _ = run_cli("train", "--env", "Hopper-v4", "--help")
    assert code == 0
    for flag in (
        "--env",
        "--total-steps",
        "--seed",
        "--out",
        "--eval-every",
        "--eval-episodes",
        "--batch-size",
        "--actor-lr",
        "--critic-lr",
        "--gamma",
        "--polyak",
        "--policy-delay",
        "--target-noise",
        "--exploration-noise",
        "--start-steps",
        "--hidden-sizes",
        "--timesteps",
        "--no-energy",
        "--energy-country",
        "--energy-region",
        "--no-tensorboard",
        "--pj-per-synop",
        "--pj-per-mac",
    ):
        assert flag in out, flag
    assert "Transitions per gradient step" in out
    assert "1000000" in out  # Hopper's preset: the paper's 1M steps


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "Hoper-v4"], "unknown env 'Hoper-v4' (did you mean Hopper-v4"),
        (["--total-steps", "0"], "--total-steps must be positive"),
        (["--batch-size", "-5"], "--batch-size must be positive"),
        (["--updates-per-round", "3"], "must be a multiple of --policy-delay"),
        (["--energy-region", "atlantis"], "--energy-region 'atlantis' is not a region of USA"),
        (["--pj-per-mac", "0"], "--pj-per-mac must be positive"),
    ],
)
def test_bad_input_gives_one_clear_line(args, message, tmp_path):
    code, _out, err = run_cli("train", *args, "--out", str(tmp_path / "run"))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing written for a bad config


@pytest.mark.parametrize(
    "args, message",
    [
        (["--keep-checkpoints", "0"], "--keep-checkpoints must be positive, got 0"),
        (["--actor-lr", "-1"], "--actor-lr must be positive, got -1.0"),
        (["--actor-lr", "inf"], "--actor-lr must be a finite number, got inf"),
        (["--critic-lr", "nan"], "--critic-lr must be a finite number, got nan"),
        (["--gamma", "1.5"], "--gamma must lie in [0, 1], got 1.5"),
        (["--exploration-noise", "-0.1"], "--exploration-noise must be non-negative"),
        (["--seed", "-1"], "--seed must lie in [0, 2**32), got -1"),
        (["--out="], "--out must name a directory (it is empty)"),
        (["--total-steps", "1234"], "--total-steps (1234) must be a multiple of --update-every"),
        (["--replay-size", "4000000000"], "lower --replay-size"),
        (["--backend", "mjx", "--act-device", "cpu"], "--act-device cpu applies to --backend"),
        (["--drive-penalty", "-1"], "--drive-penalty must be non-negative, got -1.0"),
        (["--actor", "mlp", "--drive-penalty", "1"], "the MLP actor has none"),
    ],
)
def test_bad_values_are_refused_up_front_in_one_line(args, message, tmp_path, capsys):
    out = [] if any(a.startswith("--out") for a in args) else ["--out", str(tmp_path / "run")]
    assert main(["train", "--env", "InvertedPendulum-v4", "--devices", "1", *args, *out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"spikerl-jax: error: {err[0].split('error: ', 1)[1]}"] and message in err[0]
    assert not (tmp_path / "run").exists()  # nothing written for a bad config


@pytest.mark.parametrize(
    "args, message",
    [
        (["--precision", "fp8"], "invalid choice 'fp8' for argument '--precision'"),
        (["--resume"], "Missing value for argument '--resume'"),
        (["--batch-size", "abc"], "Error parsing --batch-size"),
        (["--bach-size", "8"], "--bach-size"),
    ],
)
def test_malformed_command_lines_are_named_by_the_parser(args, message, tmp_path, capsys):
    """What the parser refuses (a bad choice, a missing value, an unknown option) it names
    with the option's help, no traceback, nothing written."""
    assert main(["train", *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr()
    assert message in err.err + err.out and "Traceback" not in err.err
    assert not (tmp_path / "run").exists()


def test_version():
    from spikerl_jax import __version__

    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"spikerl-jax {__version__}"


def test_energy_country_in_any_case():
    from spikerl_jax.config import TrainConfig
    from spikerl_jax.reporting.energy import check_grid

    cfg = TrainConfig(energy_country="usa")
    assert cfg.energy_country == "USA"
    check_grid(cfg.energy_country, cfg.energy_region)  # accepted


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_cli("train", "--out", str(blocker / "run"), "--total-steps", "100")
    assert code == 2 and "cannot write the run directory" in err and "Traceback" not in err


def test_unknown_command():
    code, _, err = run_cli("fly")
    assert code == 2 and "Unrecognized options: fly" in err and "train, sweep, pbt, eval" in err


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_locomotion_defaults_to_the_drive_penalty_and_paper_restores_the_published(command):
    """PopSAN on a locomotion task trains with --drive-penalty 1 unless --paper; the MLP
    actor (which has no output neurons) and other tasks start at 0."""
    from spikerl_jax.cli import parse
    from spikerl_jax.cli.options import from_grid, from_options

    def penalty(*args):
        parsed = parse([command, *args])
        cfg = from_options(parsed.config) if command == "train" else from_grid(parsed.config)[0]
        cfg.validate()
        return cfg.actor.drive_penalty

    assert penalty("--env", "Hopper-v4") == 1.0
    # The proxy target's fix on Hopper: without the penalty its actor collapses (learning.md).
    assert penalty("--env", "Hopper-v4", "--target-actor", "proxy") == 1.0
    assert penalty("--env", "Walker2d", "--paper") == 0.0
    assert penalty("--env", "Ant-v4", "--actor", "mlp") == 0.0
    assert penalty("--env", "InvertedPendulum-v4") == 0.0
    assert penalty("--env", "HalfCheetah-v4", "--paper", "--drive-penalty", "0.5") == 0.5


def test_paper_is_refused_on_resume(tmp_path, capsys):
    import dataclasses

    from spikerl_jax.config import preset_for

    out = tmp_path / "run"  # a run's config.json is all that --resume reads before refusing
    out.mkdir()
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(preset_for("Hopper-v4"))))
    assert main(["train", "--resume", str(out), "--paper"]) == 2
    assert "--paper sets a new run's defaults" in capsys.readouterr().err

"""Configs: default run directories never collide, presets, resume rules."""

import os

from spikerl_jax.config import TrainConfig, preset_for


def test_default_run_directories_of_runs_started_together_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(env="Hopper-v4", seed=3)
    first, second = cfg.run_dir(), cfg.run_dir()  # the same second
    assert first != second and second == f"{first}-2"
    assert os.path.isdir(first) and os.path.isdir(second)
    assert first.startswith(os.path.join("runs", "Hopper-v4-s3-"))


def test_presets_and_what_a_resume_may_change():
    hopper = preset_for("Hopper-v4")
    assert hopper.total_steps == 1_000_000 and hopper.start_steps == 10_000
    assert hopper.actor.drive_penalty == 1.0 and preset_for("Hopper", paper=True).actor == (
        TrainConfig().actor
    )
    pendulum = preset_for("InvertedPendulum-v4")
    assert pendulum.td3.actor_lr == 3e-4 and pendulum.total_steps == 20_000
    longer = TrainConfig(total_steps=40_000, eval_episodes=3)
    assert longer.resume_mismatch(TrainConfig()) is None
    mlp = TrainConfig(actor_kind="mlp")
    assert mlp.resume_mismatch(TrainConfig()) == (
        "--actor: the run has 'popsan', this command gives 'mlp'"
    )

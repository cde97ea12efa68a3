"""Configs: default run directories never collide, presets, resume rules."""

import dataclasses
import os

import pytest

from spikerl_jax.config import (
    ConfigError,
    CriticConfig,
    PopSANConfig,
    TD3Config,
    TrainConfig,
    check_fits,
    preset_for,
    run_needs,
)
from spikerl_jax.envs.registry import SPECS, EnvSpec


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


# Sizes and counts that cannot work, each refused by the validator in one line naming its
# option (issue 51): a zero policy delay (the schedule divided by it), counts above int32,
# decays that make the LIF state grow, runs of more updates than can be made, and sizes whose
# memory no machine has.
INVERTED_PENDULUM = EnvSpec(obs_dim=4, action_dim=1, action_limit=3.0, max_episode_steps=1000)
HUGE = 10**20


def actor(**kw):
    return dict(actor=PopSANConfig(**kw))


def td3(**kw):
    return dict(td3=TD3Config(**kw))


def refused(cfg: TrainConfig, free: int = 16 * 2**30, members: int = 1) -> str:
    """The one line refusing ``cfg`` (validation, then its memory against ``free`` bytes)."""
    with pytest.raises(ConfigError) as e:
        cfg.validate()
        check_fits(cfg, INVERTED_PENDULUM, members, free, "host RAM")
    (line,) = str(e.value).splitlines()
    return line


@pytest.mark.parametrize("delay", [0, -1])
def test_a_policy_delay_below_one_is_refused_before_the_schedule_divides_by_it(delay):
    assert refused(TrainConfig(**td3(policy_delay=delay))) == (
        f"--policy-delay must be positive, got {delay}"
    )


@pytest.mark.parametrize(
    "option, kw",
    [
        ("--hidden-sizes", actor(hidden_sizes=(10**11,))),
        ("--timesteps", actor(timesteps=HUGE)),
        ("--pop-in", actor(pop_in=HUGE)),
        ("--pop-out", actor(pop_out=10**11)),
        ("--critic-hidden-sizes", dict(critic=CriticConfig(critic_hidden_sizes=(256, 10**11)))),
        ("--proxy-hidden-sizes", td3(proxy_hidden_sizes=(10**11,))),
        ("--proxy-steps", td3(proxy_steps=HUGE)),
        ("--updates-per-round", dict(updates_per_round=10**11)),
        ("--mjx-iterations", dict(mjx_iterations=HUGE, backend="mjx")),
        ("--replay-size", dict(replay_size=4_000_000_000)),
        ("--total-steps", dict(total_steps=2**31)),
    ],
)
def test_counts_above_int32_are_refused(option, kw):
    line = refused(TrainConfig(**kw))
    assert line.startswith(f"{option} ") and "above 2**31 - 1" in line
    assert line.endswith(f"lower {option}")


@pytest.mark.parametrize("option", ["--mjx-iterations", "--mjx-ls-iterations"])
def test_solver_iterations_that_would_run_for_ever_are_refused(option):
    name = option[2:].replace("-", "_")
    line = refused(TrainConfig(backend="mjx", **{name: 2**31 - 1}))
    assert line.startswith(f"{option} 2147483647 is above 1000") and line.endswith(
        f"lower {option}"
    )
    TrainConfig(backend="mjx", **{name: 1000}).validate()


@pytest.mark.parametrize("name", ["current_decay", "voltage_decay"])
@pytest.mark.parametrize("value", [1e300, 1.5, -0.1, float("nan")])
def test_decays_outside_0_1_are_refused(name, value):
    line = refused(TrainConfig(**actor(**{name: value})))
    assert line.startswith(f"--{name.replace('_', '-')} must lie in [0, 1]")
    TrainConfig(**actor(current_decay=0.0, voltage_decay=1.0)).validate()  # the edges work


@pytest.mark.parametrize(
    "option, kw",
    [
        ("--updates-per-round", dict(updates_per_round=10**9)),
        ("--proxy-steps", td3(proxy_steps=10**6, target_actor="proxy")),
    ],
)
def test_runs_of_more_updates_than_can_be_made_are_refused(option, kw):
    assert refused(TrainConfig(**kw)).endswith(f"lower {option}")


def test_proxy_steps_count_only_with_the_proxy():
    TrainConfig(**td3(proxy_steps=10**6)).validate()


@pytest.mark.parametrize(
    "option, kw, largest",
    [
        ("--hidden-sizes", actor(hidden_sizes=(10**7,)), "the actor's activations"),
        (
            "--hidden-sizes",
            dict(actor_kind="mlp", **actor(hidden_sizes=(10**5,) * 2)),
            "the actor's parameters",
        ),
        ("--timesteps", actor(timesteps=10**7), "the actor's activations"),
        ("--pop-in", actor(pop_in=10**9), "the actor's"),
        ("--pop-out", actor(pop_out=10**9), "the actor's"),
        (
            "--critic-hidden-sizes",
            dict(critic=CriticConfig(critic_hidden_sizes=(10**5,) * 2)),
            "the critics' parameters",
        ),
        (
            "--proxy-hidden-sizes",
            td3(target_actor="proxy", proxy_hidden_sizes=(10**9,)),
            "the proxy's",
        ),
        ("--replay-size", dict(replay_size=10**9), "the replay buffers (1000000000 transitions"),
        ("--eval-episodes", dict(eval_episodes=10**7), "10000000 evaluation envs"),
        (
            "--batch-size",
            dict(replay_size=10**8, **td3(batch_size=10**8)),
            "the actor's activations",
        ),
    ],
)
def test_sizes_whose_memory_is_not_there_are_refused_naming_the_largest(option, kw, largest):
    line = refused(TrainConfig(**kw))
    assert line.startswith("this run needs ") and "but host RAM has 16.0 GiB free" in line
    assert f"the most is {largest}" in line and line.endswith(f"lower {option}")


def test_every_preset_fits_a_laptop_and_a_sweep_counts_its_members():
    for env, spec in SPECS.items():
        for kind in ("popsan", "mlp"):
            cfg = preset_for(env, kind)
            check_fits(cfg, spec, 1, 8 * 2**30, "host RAM")
            check_fits(
                dataclasses.replace(cfg, backend="mjx", num_envs=4096), spec, 1, 8 * 2**30, "GPU"
            )
    one = sum(n.bytes for n in run_needs(TrainConfig(), INVERTED_PENDULUM))
    assert sum(n.bytes for n in run_needs(TrainConfig(), INVERTED_PENDULUM, 8)) == 8 * one
    line = refused(TrainConfig(replay_size=10**8), free=10 * 2**30, members=8)
    assert line.startswith("these 8 runs need") and "x 8 members" in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy-frequency", "0"], "--policy-delay must be positive, got 0"),
        (["--hidden-sizes", str(10**11)], "lower --hidden-sizes"),
        (["--hidden-sizes", "2000000000"], "of memory but host RAM has"),
        (["--voltage-decay", "1e300"], "--voltage-decay must lie in [0, 1]"),
    ],
)
def test_the_command_line_refuses_them_in_one_line_writing_nothing(args, message, tmp_path, capsys):
    from spikerl_jax.cli import main

    run = tmp_path / "run"
    assert main(["train", "--devices", "1", *args, "--out", str(run), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("spikerl-jax: error: ") and message in line
    assert not run.exists()

"""``spikerl-jax``: the command line.

    spikerl-jax train [--env Hopper-v4] [--total-steps N] [...]   # see --help

Defaults depend on the task: ``--env`` selects a preset (the paper's schedule for locomotion,
a short random phase for InvertedPendulum), shown by ``spikerl-jax train --env ID --help``.
"""

from __future__ import annotations

import sys

import tyro

from spikerl_jax.config import ConfigError, TrainConfig, preset_for

USAGE = """usage: spikerl-jax COMMAND [OPTIONS]

commands:
  train    train a PopSAN spiking actor with TD3 on a Gymnasium MuJoCo task

Run 'spikerl-jax COMMAND --help' for the command's options."""


def _peek_env(args: list[str]) -> str:
    """The ``--env`` value among ``args`` (before full parsing: it selects the defaults)."""
    for i, arg in enumerate(args):
        if arg.startswith("--env="):
            return arg.split("=", 1)[1]
        if arg == "--env" and i + 1 < len(args):
            return args[i + 1]
    return TrainConfig.env


def _fail(message: str) -> int:
    print(f"spikerl-jax: error: {message}", file=sys.stderr)
    return 2


def train_command(args: list[str]) -> int:
    """Parses ``train`` options over the env's preset, trains, prints the summary's path."""
    from spikerl_jax.envs import SUPPORTED_ENVS

    env = _peek_env(args)
    if env not in SUPPORTED_ENVS:
        return _fail(f"unknown env {env!r}; supported: {', '.join(sorted(SUPPORTED_ENVS))}")
    cfg = tyro.cli(
        TrainConfig,
        args=args,
        default=preset_for(env),
        prog="spikerl-jax train",
        description="Train a PopSAN spiking actor with TD3 on a Gymnasium MuJoCo task.",
        config=(tyro.conf.OmitArgPrefixes,),
    )
    from spikerl_jax.train import TrainingError, train

    try:
        summary = train(cfg)
    except (ConfigError, TrainingError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted; metrics.csv holds every finished evaluation")
    print(
        f"done: {summary['total_steps']} steps in {summary['wall_s']:.1f} s, final eval return "
        f"{summary['final_eval_return']:.2f} (best {summary['best_eval_return']:.2f}); "
        f"results in {summary['run_dir']}"
    )
    return 0


COMMANDS = {"train": train_command}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] not in COMMANDS:
        return _fail(f"unknown command {args[0]!r}; commands: {', '.join(COMMANDS)}")
    return COMMANDS[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())

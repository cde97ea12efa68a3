"""``spikerl-jax``: the command line.

    spikerl-jax train [--env Hopper-v4] [--total-steps N] [...]   # see --help

Defaults depend on the task: ``--env`` selects a preset (the paper's schedule for locomotion,
a short random phase for InvertedPendulum), shown by ``spikerl-jax train --env ID --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import tyro

from spikerl_jax.config import ConfigError, TrainConfig, preset_for

USAGE = """usage: spikerl-jax COMMAND [OPTIONS]

commands:
  train    train a PopSAN spiking actor with TD3 on a Gymnasium MuJoCo task
           (--resume RUN_DIR continues a run from its latest checkpoint)
  eval     run deterministic episodes of a trained run's policy
  compare  Speedup, Powerup, Greenup and carbon of runs against a base run
  plot     learning curves, energy and firing-rate plots of runs (PNG)

Run 'spikerl-jax COMMAND --help' for the command's options."""


def _pop_option(args: list[str], name: str) -> tuple[str | None, list[str]]:
    """Takes ``--name VALUE`` (or ``--name=VALUE``) out of ``args``: the value and the rest."""
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1], args[:i] + args[i + 1 :]
        if arg == name and i + 1 < len(args):
            return args[i + 1], args[:i] + args[i + 2 :]
    return None, args


def _fail(message: str) -> int:
    print(f"spikerl-jax: error: {message}", file=sys.stderr)
    return 2


def train_command(args: list[str]) -> int:
    """Parses ``train`` options over the env's preset (or the resumed run's config), trains."""
    from spikerl_jax.envs import SUPPORTED_ENVS
    from spikerl_jax.export import load_run_config
    from spikerl_jax.train import Interrupted, TrainingError, train

    resume_dir, args = _pop_option(args, "--resume")
    # Multi-process runs (also from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
    # JAX_PROCESS_ID): spikerl_jax.parallel.init_distributed.
    coordinator, args = _pop_option(args, "--coordinator-address")
    num_processes, args = _pop_option(args, "--num-processes")
    process_id, args = _pop_option(args, "--process-id")
    precision, args = _pop_option(args, "--precision")  # shorthand for actor and critic
    if precision is not None:
        args = [*args, "--actor-precision", precision, "--critic-precision", precision]
    env, _ = _pop_option(args, "--env")
    try:
        if resume_dir is not None:
            default = dataclasses.replace(load_run_config(resume_dir), out=resume_dir)
        else:
            env = env or TrainConfig.env
            if env not in SUPPORTED_ENVS:
                raise ConfigError(
                    f"unknown env {env!r}; supported: {', '.join(sorted(SUPPORTED_ENVS))}"
                )
            default = preset_for(env)
        cfg = tyro.cli(
            TrainConfig,
            args=args,
            default=default,
            prog="spikerl-jax train",
            description="Train a PopSAN spiking actor with TD3 on a Gymnasium MuJoCo task. "
            "--resume RUN_DIR continues a run (only the schedule's length, evaluation, "
            "checkpoint and logging options may change). --precision P sets --actor-precision and "
            "--critic-precision together. Multi-process: --coordinator-address HOST:PORT "
            "--num-processes N --process-id I on every process (or JAX_COORDINATOR_ADDRESS, "
            "JAX_NUM_PROCESSES, JAX_PROCESS_ID); process 0 writes the run's records.",
            config=(tyro.conf.OmitArgPrefixes,),
        )
        if resume_dir is not None:
            mismatch = cfg.resume_mismatch(default)
            if mismatch:
                raise ConfigError(
                    f"cannot resume {resume_dir} with a different setting: {mismatch}"
                )
        from spikerl_jax.parallel import init_distributed

        for flag, value in (("--num-processes", num_processes), ("--process-id", process_id)):
            if value is not None and not value.isdigit():
                raise ConfigError(f"{flag} must be a non-negative integer, got {value!r}")
        init_distributed(coordinator, int(num_processes) if num_processes else None,
                         int(process_id) if process_id is not None else None)  # fmt: skip
        summary = train(cfg, resume=resume_dir is not None)
    except (ConfigError, TrainingError, Interrupted) as e:
        return _fail(str(e))
    final, best = summary["final_eval_return"], summary["best_eval_return"]
    print(
        f"done: {summary['total_steps']} steps in {summary['wall_s']:.1f} s, final eval return "
        f"{final:.2f} (best {best:.2f}); results in {summary['run_dir']}"
    )
    return 0


def eval_command(args: list[str]) -> int:
    """``spikerl-jax eval RUN_DIR [--episodes N] [--checkpoint best|latest] [--render F.mp4]``."""
    from spikerl_jax.export import evaluate_run

    parser = argparse.ArgumentParser(
        prog="spikerl-jax eval", description="Deterministic episodes of a trained run's policy."
    )
    parser.add_argument("run_dir", help="the run directory (holds config.json, checkpoints/)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    parser.add_argument(
        "--checkpoint", choices=("best", "latest"), default="best", help="which policy (best)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the episodes' resets")
    parser.add_argument("--render", metavar="VIDEO.mp4", help="also record the first episode")
    opts = parser.parse_args(args)
    if opts.episodes <= 0:
        return _fail(f"--episodes must be positive, got {opts.episodes}")
    try:
        result = evaluate_run(opts.run_dir, opts.episodes, opts.checkpoint, opts.seed, opts.render)
    except ConfigError as e:
        return _fail(str(e))
    print(json.dumps(result))
    return 0


def compare_command(args: list[str]) -> int:
    """``spikerl-jax compare BASE_DIR NEW_DIR [...] [--out PREFIX]``."""
    from rich.console import Console

    from spikerl_jax.compare import compare_runs, comparison_table, write_comparison
    from spikerl_jax.runlog import read_run

    parser = argparse.ArgumentParser(
        prog="spikerl-jax compare",
        description="Speedup = T_base/T_new, Powerup = P_new/P_base, Greenup = E_base/E_new "
        "and carbon reduction of finished runs against the first (the base).",
    )
    parser.add_argument("base", help="the base run directory")
    parser.add_argument("runs", nargs="+", help="run directories compared with the base")
    parser.add_argument("--out", default="comparison",
                        help="writes OUT.json and OUT.csv (default: comparison)")  # fmt: skip
    opts = parser.parse_args(args)
    try:
        base, runs = read_run(opts.base), [read_run(r) for r in opts.runs]
        rows = compare_runs(base, runs)
        paths = write_comparison(rows, opts.out)
    except ConfigError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write --out {opts.out}: {e.strerror}")
    console = Console()
    console.print(comparison_table(rows))
    console.print(f"written: {', '.join(paths)}")
    return 0


def plot_command(args: list[str]) -> int:
    """``spikerl-jax plot RUN_DIR [...] [--out DIR]``."""
    from spikerl_jax.plots import plot_runs
    from spikerl_jax.runlog import read_run

    parser = argparse.ArgumentParser(
        prog="spikerl-jax plot",
        description="Learning curves (mean ± std over runs differing only in seed), energy and "
        "time bars, and firing rates per layer of finished runs, as PNG files.",
    )
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--out", help="directory for the PNGs (default: the run directory "
                        "for one run, plots/ for several)")  # fmt: skip
    opts = parser.parse_args(args)
    out = opts.out or (opts.runs[0] if len(opts.runs) == 1 else "plots")
    try:
        paths = plot_runs([read_run(r) for r in opts.runs], out)
    except ConfigError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write --out {out}: {e.strerror}")
    print("written: " + ", ".join(paths))
    return 0


COMMANDS = {
    "train": train_command,
    "eval": eval_command,
    "compare": compare_command,
    "plot": plot_command,
}


def main(argv: list[str] | None = None) -> int:
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)  # orbax's per-save INFO/WARNING lines
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] not in COMMANDS:
        return _fail(f"unknown command {args[0]!r}; commands: {', '.join(COMMANDS)}")
    return COMMANDS[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())

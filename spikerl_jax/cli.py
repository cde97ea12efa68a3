"""``spikerl-jax``: the command line, a thin layer over the package's functions.

    spikerl-jax train [--env Hopper-v4] [--total-steps N] [...]   # see --help
    spikerl-jax sweep --env Hopper-v4 --seeds 0 1 2 --actor-lr 1e-4 3e-4 --out runs/sweep

Defaults depend on the task: ``--env`` selects a preset (the paper's schedule for locomotion,
a short random phase for InvertedPendulum), shown by ``spikerl-jax train --env ID --help``.
Every command reports a bad input or a failure as one line (exit 2); interrupts exit with
128 + the signal's number after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import threading
import warnings

from spikerl_jax.config import ConfigError, TrainConfig, flag, preset_for

USAGE = """usage: spikerl-jax COMMAND [OPTIONS]

commands:
  train    train a PopSAN spiking actor (or an MLP baseline) with TD3 on a Gymnasium MuJoCo task
           (--resume RUN_DIR continues a run from its latest checkpoint)
  sweep    train a grid of settings x seeds as one population in one process
  eval     run deterministic episodes of a trained run's policy
  compare  Speedup, Powerup, Greenup and carbon of runs against a base run
  plot     learning curves, energy and firing-rate plots of runs (PNG)
  export-nir  a trained PopSAN actor as a NIR graph (neuromorphic toolchains)

Run 'spikerl-jax COMMAND --help' for the command's options."""

TRAIN_HELP = (
    "--resume RUN_DIR continues a run (only the schedule's length, evaluation, checkpoint and "
    "logging options may change). --precision P sets --actor-precision and --critic-precision "
    "together. Multi-process: --coordinator-address HOST:PORT --num-processes N --process-id I "
    "on every process (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); process "
    "0 writes the run's records."
)


class CommandError(Exception):
    """A command's failure as one line for the terminal."""


def _pop_option(args: list[str], name: str) -> tuple[str | None, list[str]]:
    """Takes ``--name VALUE`` (or ``--name=VALUE``) out of ``args``: the value and the rest.

    Raises:
      ConfigError: ``--name`` without a value.
    """
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1], args[:i] + args[i + 1 :]
        if arg == name:
            if i + 1 == len(args) or args[i + 1].startswith("--"):
                raise ConfigError(f"{name} needs a value")
            return args[i + 1], args[:i] + args[i + 2 :]
    return None, args


def _pop_values(args: list[str], name: str) -> tuple[list[str] | None, list[str]]:
    """Takes ``--name V1 V2 ...`` out of ``args`` (the values up to the next option)."""
    if name not in args:
        return None, args
    i = args.index(name)
    j = i + 1
    while j < len(args) and not (args[j].startswith("--") and not _is_number(args[j])):
        j += 1
    if j == i + 1:
        raise ConfigError(f"{name} needs at least one value")
    return args[i + 1 : j], args[:i] + args[j:]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _config(args: list[str], default: TrainConfig, prog: str, description: str) -> TrainConfig:
    """Parses ``TrainConfig`` options (``--precision`` included) over ``default``."""
    import tyro

    precision, args = _pop_option(args, "--precision")  # shorthand for actor and critic
    if precision is not None:
        from spikerl_jax.precision import POLICIES

        if precision not in POLICIES:
            raise ConfigError(f"--precision must be one of {', '.join(POLICIES)}, got "
                              f"{precision!r}")  # fmt: skip
        args = [*args, "--actor-precision", precision, "--critic-precision", precision]
    return tyro.cli(TrainConfig, args=args, default=default, prog=prog, description=description,
                    config=(tyro.conf.OmitArgPrefixes,))  # fmt: skip


def _preset(args: list[str]) -> TrainConfig:
    """The preset of the ``--env`` in ``args`` (the default env's without one)."""
    from spikerl_jax.envs.registry import SUPPORTED_ENVS

    env, _ = _pop_option(args, "--env")
    env = env or TrainConfig.env
    if env not in SUPPORTED_ENVS:
        raise ConfigError(f"unknown env {env!r}; supported: {', '.join(sorted(SUPPORTED_ENVS))}")
    return preset_for(env)


def train_command(args: list[str]) -> int:
    """Parses ``train`` options over the env's preset (or the resumed run's config), trains."""
    from spikerl_jax.reporting.runlog import load_run_config
    from spikerl_jax.training.parallel import init_distributed
    from spikerl_jax.training.trainer import train

    resume_dir, args = _pop_option(args, "--resume")
    # Multi-process runs (also from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
    # JAX_PROCESS_ID): spikerl_jax.training.parallel.init_distributed.
    coordinator, args = _pop_option(args, "--coordinator-address")
    num_processes, args = _pop_option(args, "--num-processes")
    process_id, args = _pop_option(args, "--process-id")
    if resume_dir is not None:
        if any(a == "--out" or a.startswith("--out=") for a in args):
            raise ConfigError("--resume RUN_DIR continues that run in place: drop --out")
        default = dataclasses.replace(load_run_config(resume_dir), out=resume_dir)
    else:
        default = _preset(args)
    cfg = _config(args, default, "spikerl-jax train",
                  "Train a PopSAN spiking actor with TD3 on a Gymnasium MuJoCo task. "
                  + TRAIN_HELP)  # fmt: skip
    if resume_dir is not None:
        mismatch = cfg.resume_mismatch(default)
        if mismatch:
            raise ConfigError(f"cannot resume {resume_dir} with a different setting: {mismatch}")
    for name, value in (("--num-processes", num_processes), ("--process-id", process_id)):
        if value is not None and not value.isdigit():
            raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    init_distributed(coordinator, int(num_processes) if num_processes else None,
                     int(process_id) if process_id is not None else None)  # fmt: skip
    summary = train(cfg, resume=resume_dir is not None)
    final, best = summary["final_eval_return"], summary["best_eval_return"]
    reached = " (--target-return reached)" if summary["target_reached_at"] is not None else ""
    print(
        f"done: {summary['total_steps']} steps{reached} in {summary['wall_s']:.1f} s, final "
        f"eval return {final:.2f} (best {best:.2f}); results in {summary['run_dir']}"
    )
    return 0


def sweep_command(args: list[str]) -> int:
    """``spikerl-jax sweep --seeds S... [--SETTING V1 V2 ...] [train options] --out ROOT`` or
    ``spikerl-jax sweep --resume ROOT [--total-steps N]``."""
    from rich.console import Console

    from spikerl_jax.reporting.sweep import sweep_table
    from spikerl_jax.training.parallel import split_cpu_for_members
    from spikerl_jax.training.sweep import SWEEPABLE, SweepSpec, load_spec
    from spikerl_jax.training.trainer import train_sweep

    resume_dir, args = _pop_option(args, "--resume")
    description = (
        "Train a grid of settings x seeds as one population: one process, one set of compiled "
        "programs, every member vmapped (and split over --devices; on a CPU without "
        "--devices, whole members over its cores). --seeds S1 S2 ... gives "
        "the seeds; a sweepable setting given several values ("
        + ", ".join(flag(n) for n in SWEEPABLE)
        + ") spans the grid; every other option is shared. Each member writes its own run "
        "directory ROOT/SETTING-sSEED; ROOT gets sweep.json, sweep.csv and "
        "learning_curves.png. --resume ROOT continues a sweep."
    )
    if resume_dir is not None:
        spec = load_spec(resume_dir)
        base = _config(args, spec.base, "spikerl-jax sweep", description)
        mismatch = base.resume_mismatch(spec.base)
        if mismatch:
            raise ConfigError(f"cannot resume {resume_dir} with a different setting: {mismatch}")
        spec = dataclasses.replace(spec, base=dataclasses.replace(base, out=resume_dir))
    else:
        seeds, args = _pop_values(args, "--seeds")
        _refuse_fixed_grids(args, set(SWEEPABLE))
        grid = []
        for name in SWEEPABLE:
            values, rest = _pop_values(args, flag(name))
            if values is not None and len(values) > 1:  # one value: a shared setting
                try:
                    grid.append((name, tuple(float(v) for v in values)))
                except ValueError:
                    raise ConfigError(f"{flag(name)} takes numbers, got {values}") from None
                args = rest
        try:
            seeds = tuple(int(s) for s in (seeds or ["0"]))
        except ValueError:
            raise ConfigError(f"--seeds takes integers, got {seeds}") from None
        base = _config(args, _preset(args), "spikerl-jax sweep", description)
        spec = SweepSpec(base=base, seeds=seeds, grid=tuple(grid))
    if spec.base.devices is None:  # before JAX starts: whole members on the CPU's cores
        split_cpu_for_members(len(spec.members()))
    rows = train_sweep(spec, resume=resume_dir is not None)
    console = Console()
    console.print(sweep_table(rows))
    console.print(f"written: {spec.root}/sweep.json, sweep.csv, learning_curves.png")
    return 0


def _refuse_fixed_grids(args: list[str], sweepable: set[str]) -> None:
    """Raises ``ConfigError`` for a single-valued (shape-changing) setting given several
    values, e.g. ``--batch-size 64 128``: such settings need separate sweeps."""
    import typing

    from spikerl_jax.config import leaf_items

    hints = {}
    for section in (TrainConfig, *(type(v) for v in vars(TrainConfig()).values()
                                   if dataclasses.is_dataclass(v))):  # fmt: skip
        hints.update(typing.get_type_hints(section))
    for name, _ in leaf_items(TrainConfig()):
        if name in sweepable or hints.get(name) not in (int, float):
            continue
        values, _ = _pop_values(args, flag(name)) if flag(name) in args else (None, args)
        if values is not None and len(values) > 1:
            raise ConfigError(
                f"{flag(name)} cannot vary within one sweep (it changes the compiled "
                f"program: run one sweep per value); sweepable: "
                + ", ".join(flag(n) for n in sorted(sweepable))
            )


def eval_command(args: list[str]) -> int:
    """``spikerl-jax eval RUN_DIR [--episodes N] [--checkpoint best|latest] [--render F.mp4]``."""
    from spikerl_jax.export.policy import evaluate_run

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
    parser.add_argument("--raster", metavar="RASTER.png",
                        help="also draw every layer's spikes over the first steps of an "
                        "episode (PopSAN)")  # fmt: skip
    opts = parser.parse_args(args)
    if opts.episodes <= 0:
        raise ConfigError(f"--episodes must be positive, got {opts.episodes}")
    if opts.seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {opts.seed}")
    result = _writing("--raster/--render", evaluate_run, opts.run_dir, opts.episodes,
                      opts.checkpoint, opts.seed, opts.render, opts.raster)  # fmt: skip
    print(json.dumps(result))
    return 0


def compare_command(args: list[str]) -> int:
    """``spikerl-jax compare BASE_DIR NEW_DIR [...] [--out PREFIX]``."""
    from rich.console import Console

    from spikerl_jax.reporting.compare import compare_runs, comparison_table, write_comparison
    from spikerl_jax.reporting.runlog import read_run

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
    base, runs = read_run(opts.base), [read_run(r) for r in opts.runs]
    rows = compare_runs(base, runs)
    paths = _writing(f"--out {opts.out}", write_comparison, rows, opts.out)
    console = Console()
    console.print(comparison_table(rows))
    console.print(f"written: {', '.join(paths)}")
    return 0


def plot_command(args: list[str]) -> int:
    """``spikerl-jax plot RUN_DIR [...] [--out DIR]``."""
    from spikerl_jax.reporting.plots import plot_runs
    from spikerl_jax.reporting.runlog import read_run

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
    paths = _writing(f"--out {out}", plot_runs, [read_run(r) for r in opts.runs], out)
    print("written: " + ", ".join(paths))
    return 0


def export_nir_command(args: list[str]) -> int:
    """``spikerl-jax export-nir RUN_DIR OUT.nir [--checkpoint best|latest]``."""
    from spikerl_jax.export.nir import export_nir

    parser = argparse.ArgumentParser(
        prog="spikerl-jax export-nir",
        description="Export a trained PopSAN actor to NIR (Neuromorphic Intermediate "
        "Representation): its LIF layers as Affine + CubaLIF nodes, the population encoder "
        "and decoder as documented pre/post-processing in OUT.popsan.npz beside the graph "
        "(spikerl_jax/export/nir.py has the mapping). Needs pip install 'spikerl_jax[nir]'.",
    )
    parser.add_argument("run_dir", help="the run directory")
    parser.add_argument("out", help="the NIR file to write (e.g. actor.nir)")
    parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    opts = parser.parse_args(args)
    paths = _writing(opts.out, export_nir, opts.run_dir, opts.out, opts.checkpoint)
    print("written: " + ", ".join(paths))
    return 0


def _writing(target: str, fn, *args):
    """``fn(*args)``, with an OSError reported as a command error about ``target`` (the
    option naming what is written)."""
    try:
        return fn(*args)
    except OSError as e:
        raise CommandError(f"cannot write {target}: {e.strerror or e}") from None


COMMANDS = {
    "train": train_command,
    "sweep": sweep_command,
    "eval": eval_command,
    "compare": compare_command,
    "plot": plot_command,
    "export-nir": export_nir_command,
}


def main(argv: list[str] | None = None) -> int:
    """Runs a command; every failure the user can fix is one ``error:`` line and exit 2."""
    import absl.logging

    from spikerl_jax.training.checkpoint import SaveError
    from spikerl_jax.training.session import TrainingError
    from spikerl_jax.training.signals import Interrupted

    # Orbax logs (absl) and its worker threads print a failing save's tracebacks, many times
    # over; the failure reaches the main thread as one SaveError or CheckpointError line.
    absl.logging.set_verbosity(absl.logging.FATAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    threading.excepthook = _quiet_checkpoint_threads
    warnings.formatwarning = _one_line  # a warning is one line on the terminal
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] not in COMMANDS:
        return _fail(f"unknown command {args[0]!r}; commands: {', '.join(COMMANDS)}")
    if args[0] in ("train", "sweep", "eval"):
        _use_compile_cache()
    try:
        return COMMANDS[args[0]](args[1:])
    except Interrupted as e:
        print(f"spikerl-jax: {e}", file=sys.stderr)
        return e.exit_code
    except (ConfigError, TrainingError, SaveError, CommandError) as e:
        return _fail(str(e))


def _use_compile_cache() -> None:
    """Keeps compiled programs on disk between runs (JAX's persistent compilation cache):
    the first run of a configuration compiles (MJX programs take tens of seconds on a CPU),
    later ones (resumes, repeats, the members of later sweeps) load them. The cache lives in
    ``$XDG_CACHE_HOME/spikerl_jax/xla`` (``~/.cache``; delete it to reclaim the space) and
    is off with ``SPIKERL_JAX_COMPILE_CACHE=0``; a cache already configured
    (``JAX_COMPILATION_CACHE_DIR``) is left alone."""
    import os

    import jax

    if jax.config.jax_compilation_cache_dir or os.environ.get("SPIKERL_JAX_COMPILE_CACHE") == "0":
        return
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    jax.config.update("jax_compilation_cache_dir", os.path.join(root, "spikerl_jax", "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


_THREAD_HOOK = threading.excepthook


def _quiet_checkpoint_threads(args) -> None:
    """Drops the exceptions of Orbax's and asyncio's worker threads (their errors reach the
    main thread, which reports them); any other thread's exception is printed as usual."""
    import traceback

    frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback else []
    if any("/orbax/" in f.filename or "/asyncio/" in f.filename for f in frames):
        logging.getLogger("spikerl_jax").debug("checkpoint thread: %r", args.exc_value)
        return
    _THREAD_HOOK(args)


def _one_line(message, category, filename, lineno, line=None) -> str:
    return f"spikerl-jax: warning: {message}\n"


def _fail(message: str) -> int:
    print(f"spikerl-jax: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""``spikerl-jax``: the command line, tyro subcommands over the package's functions.

    spikerl-jax train [--env Hopper-v4] [--total-steps N] [...]   # see --help
    spikerl-jax sweep --env Hopper-v4 --seeds 0 1 2 --actor-lr 1e-4 3e-4 --out runs/sweep

Each command is a small dataclass whose fields (and their docstrings) are its options.
Defaults depend on the task: ``--env`` selects a preset (the paper's schedule for locomotion,
a short random phase for InvertedPendulum), shown by ``spikerl-jax train --env ID --help``;
``--resume`` takes the defaults from the run being resumed. Every command reports a bad input
or a failure as one line (exit 2); interrupts exit with 128 + the signal's number after saving
a checkpoint.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import logging
import os
import sys
import textwrap
import threading
import typing
import warnings
from typing import Annotated, Literal, Union

import tyro

from spikerl_jax.config import ConfigError, TrainConfig, flag, preset_for
from spikerl_jax.precision import POLICIES
from spikerl_jax.sweep_spec import SWEEPABLE, SweepSpec

Precision = Literal["fp32", "bf16", "bf16-pure"]
assert set(typing.get_args(Precision)) == set(POLICIES)


class CommandError(Exception):
    """A command's failure as one line for the terminal."""


def _writing(target: str, fn, *args):
    """``fn(*args)``, with an OSError reported as a command error about ``target`` (the
    option naming what is written)."""
    try:
        return fn(*args)
    except OSError as e:
        raise CommandError(f"cannot write {target}: {e.strerror or e}") from None


@dataclasses.dataclass(frozen=True)
class Processes:
    """Multi-process training (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
    JAX_PROCESS_ID); process 0 writes the run's records."""

    coordinator_address: str | None = None
    """HOST:PORT of process 0, the same on every process."""
    num_processes: int | None = None
    """How many processes train the run."""
    process_id: int | None = None
    """This process's index, 0 to --num-processes - 1."""

    def start(self) -> None:
        from spikerl_jax.processes import init_distributed

        for name in ("num_processes", "process_id"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{flag(name)} must be a non-negative integer, got {value}")
        init_distributed(self.coordinator_address, self.num_processes, self.process_id)


@dataclasses.dataclass(frozen=True)
class Resuming:
    """Continuing and precision."""

    resume: str | None = None
    """Continue the run in this directory from its latest checkpoint (train: a run directory;
    sweep: a sweep's root). Only the schedule's length, evaluation, checkpoint and logging
    options may change."""
    precision: Precision | None = None
    """Sets --actor-precision and --critic-precision together."""

    def apply(self, cfg: TrainConfig) -> TrainConfig:
        if self.precision is None:
            return cfg
        return dataclasses.replace(
            cfg,
            actor=dataclasses.replace(cfg.actor, actor_precision=self.precision),
            critic=dataclasses.replace(cfg.critic, critic_precision=self.precision),
        )


def _resumable(cfg: TrainConfig, saved: TrainConfig, where: str) -> None:
    mismatch = cfg.resume_mismatch(saved)
    if mismatch:
        raise ConfigError(f"cannot resume {where} with a different setting: {mismatch}")


@dataclasses.dataclass(frozen=True)
class Train:
    """Train a PopSAN spiking actor (or an MLP baseline) with TD3 on a Gymnasium MuJoCo task."""

    config: Annotated[TrainConfig, tyro.conf.arg(name="")]
    continuing: Annotated[Resuming, tyro.conf.arg(name="")] = Resuming()
    processes: Annotated[Processes, tyro.conf.arg(name="")] = Processes()

    def run(self) -> int:
        from spikerl_jax.training.trainer import train

        cfg, resume = self.continuing.apply(self.config), self.continuing.resume
        if resume is not None:
            if cfg.out != resume:
                raise ConfigError("--resume RUN_DIR continues that run in place: drop --out")
            _resumable(cfg, _train_default(resume, None).config, resume)
        self.processes.start()
        summary = train(cfg, resume=resume is not None)
        final, best = summary["final_eval_return"], summary["best_eval_return"]
        reached = " (--target-return reached)" if summary["target_reached_at"] is not None else ""
        print(
            f"done: {summary['total_steps']} steps{reached} in {summary['wall_s']:.1f} s, "
            f"final eval return {final:.2f} (best {best:.2f}); results in "
            f"{summary['run_dir']}"
        )
        return 0


def field_docs(cls) -> dict[str, str]:
    """The docstrings of a dataclass's fields (the string under each field, as tyro reads
    them), for the classes ``grid_config`` derives."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body, docs = tree.body[0].body, {}
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr):
            if isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def grid_config(cls):
    """``cls`` (a config dataclass) with every ``SWEEPABLE`` field taking several values,
    ``tuple[float, ...]`` (one setting each), and the others as they are."""
    hints, docs, fields = typing.get_type_hints(cls, include_extras=True), field_docs(cls), []
    for f in dataclasses.fields(cls):
        kind, default = hints[f.name], f.default
        if dataclasses.is_dataclass(kind):
            kind = grid_config(kind)
            default = convert(f.default, kind, _as_grid)
        elif f.name in SWEEPABLE:
            kind, default = tuple[float, ...], (default,)
        doc = docs.get(f.name, "")
        if f.name in SWEEPABLE:
            doc += " Several values sweep it: one setting each."
        if not dataclasses.is_dataclass(kind) and typing.get_origin(kind) is not Annotated:
            kind = Annotated[kind, tyro.conf.arg(help=doc)]
        fields.append((f.name, kind, dataclasses.field(default=default)))
    made = dataclasses.make_dataclass(cls.__name__, fields, frozen=True)
    made.__doc__ = cls.__doc__
    return made


def _as_grid(name: str, value):
    return (value,) if name in SWEEPABLE else value


def convert(value, cls, leaf):
    """The dataclass ``value`` rebuilt as ``cls`` (the same fields, nested sections too),
    each leaf field through ``leaf(name, value)``."""
    hints = typing.get_type_hints(cls)
    return cls(
        **{
            f.name: convert(getattr(value, f.name), hints[f.name], leaf)
            if dataclasses.is_dataclass(getattr(value, f.name))
            else leaf(f.name, getattr(value, f.name))
            for f in dataclasses.fields(cls)
        }
    )


GridConfig = grid_config(TrainConfig)


def to_grid(cfg, grid_cls=None):
    """A ``TrainConfig`` (or a section of it) as its grid class (every sweepable setting
    with one value)."""
    return convert(cfg, grid_cls or GridConfig, _as_grid)


def from_grid(grid) -> tuple[TrainConfig, tuple[tuple[str, tuple[float, ...]], ...]]:
    """The base ``TrainConfig`` of a parsed ``GridConfig`` (each sweepable setting at its
    first value) and the grid: the settings given several values, in ``SWEEPABLE``'s order."""
    several = {}

    def leaf(name, value):
        if name not in SWEEPABLE:
            return value
        if len(value) > 1:
            several[name] = tuple(value)
        return value[0] if value else None

    cfg = convert(grid, TrainConfig, leaf)
    return cfg, tuple((name, several[name]) for name in SWEEPABLE if name in several)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Train a grid of settings x seeds as one population: one process, one set of compiled
    programs, every member vmapped (and split over --devices; on a CPU without --devices,
    whole members over its cores). Each member writes its own run directory
    ROOT/SETTING-sSEED; ROOT holds the checkpoints, sweep.json, sweep.csv and
    learning_curves.png."""

    config: Annotated[GridConfig, tyro.conf.arg(name="")]  # type: ignore[valid-type]
    seeds: tuple[int, ...] = (0,)
    """The seeds of every setting."""
    continuing: Annotated[Resuming, tyro.conf.arg(name="")] = Resuming()

    def spec(self) -> SweepSpec:
        base, grid = from_grid(self.config)
        base, resume = self.continuing.apply(base), self.continuing.resume
        if resume is None:
            return SweepSpec(base=base, seeds=self.seeds, grid=grid)
        from spikerl_jax.sweep_spec import load_spec

        saved = load_spec(resume)
        if base.out != resume:
            raise ConfigError("--resume ROOT continues that sweep in place: drop --out")
        _resumable(base, saved.base, resume)
        if grid != saved.grid or self.seeds != saved.seeds:
            raise ConfigError(f"cannot resume {resume} with other seeds or grid values")
        return dataclasses.replace(saved, base=base)

    def run(self) -> int:
        from rich.console import Console

        from spikerl_jax.processes import split_cpu_for_members
        from spikerl_jax.reporting.sweep import sweep_table
        from spikerl_jax.training.trainer import train_sweep

        spec = self.spec()
        if spec.base.devices is None:  # before JAX starts: whole members on the CPU's cores
            split_cpu_for_members(len(spec.members()))
        rows = train_sweep(spec, resume=self.continuing.resume is not None)
        console = Console()
        console.print(sweep_table(rows))
        console.print(
            f"written: {spec.root}/sweep.json, sweep.csv, learning_curves.png", markup=False
        )
        return 0


@dataclasses.dataclass(frozen=True)
class Eval:
    """Run deterministic episodes of a trained run's policy."""

    run_dir: tyro.conf.Positional[str]
    """The run directory (holds config.json)."""
    episodes: int = 10
    """Episodes to run."""
    checkpoint: Literal["best", "latest"] = "best"
    """Which policy: the best evaluation's or the latest."""
    seed: int = 0
    """Seeds the episodes' resets."""
    render: str | None = None
    """Also record the first episode as this video (an .mp4)."""
    raster: str | None = None
    """Also draw every layer's spikes over the first steps of an episode (PopSAN) as this PNG."""

    def run(self) -> int:
        from spikerl_jax.export.policy import evaluate_run

        if self.episodes <= 0:
            raise ConfigError(f"--episodes must be positive, got {self.episodes}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be non-negative, got {self.seed}")
        result = _writing(
            "--raster/--render",
            evaluate_run,
            self.run_dir,
            self.episodes,
            self.checkpoint,
            self.seed,
            self.render,
            self.raster,
        )
        print(json.dumps(result))
        return 0


@dataclasses.dataclass(frozen=True)
class Compare:
    """Speedup = T_base/T_new, Powerup = P_new/P_base, Greenup = E_base/E_new and carbon
    reduction of finished runs against the first (the base)."""

    base: tyro.conf.Positional[str]
    """The base run directory."""
    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories compared with the base."""
    out: str | None = None
    """Writes OUT.json and OUT.csv (default: BASE/comparison)."""

    def run(self) -> int:
        from rich.console import Console

        from spikerl_jax.reporting.compare import compare_runs, comparison_table, write_comparison
        from spikerl_jax.reporting.runlog import read_run

        if not self.runs:
            raise ConfigError("compare needs at least one run besides the base")
        out = self.out or os.path.join(self.base, "comparison")
        rows = compare_runs(read_run(self.base), [read_run(r) for r in self.runs])
        paths = _writing(f"--out {out}", write_comparison, rows, out)
        console = Console()
        console.print(comparison_table(rows))
        console.print(f"written: {', '.join(paths)}", markup=False)
        return 0


@dataclasses.dataclass(frozen=True)
class Plot:
    """Learning curves (mean ± std over runs differing only in seed), energy and time bars,
    and firing rates per layer of finished runs, as PNG files."""

    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories."""
    out: str | None = None
    """Directory for the PNGs (default: the run directory for one run, plots/ for several)."""

    def run(self) -> int:
        from spikerl_jax.reporting.plots import plot_runs
        from spikerl_jax.reporting.runlog import read_run

        if not self.runs:
            raise ConfigError("plot needs at least one run directory")
        out = self.out or (self.runs[0] if len(self.runs) == 1 else "plots")
        paths = _writing(f"--out {out}", plot_runs, [read_run(r) for r in self.runs], out)
        print("written: " + ", ".join(paths))
        return 0


@dataclasses.dataclass(frozen=True)
class ExportNir:
    """Export a trained PopSAN actor to NIR (Neuromorphic Intermediate Representation): its
    LIF layers as Affine + CubaLIF nodes, the population encoder and decoder as documented
    pre/post-processing in OUT.popsan.npz beside the graph (spikerl_jax/export/nir.py has the
    mapping). Needs pip install 'spikerl_jax[nir]'."""

    run_dir: tyro.conf.Positional[str]
    """The run directory."""
    out: tyro.conf.Positional[str]
    """The NIR file to write (e.g. actor.nir)."""
    checkpoint: Literal["best", "latest"] = "best"
    """Which policy: the best evaluation's or the latest."""

    def run(self) -> int:
        from spikerl_jax.export.nir import export_nir

        paths = _writing(self.out, export_nir, self.run_dir, self.out, self.checkpoint)
        print("written: " + ", ".join(paths))
        return 0


def _train_default(resume: str | None, env: str | None) -> Train:
    """``train``'s defaults: the resumed run's config, or the env's preset."""
    from spikerl_jax.reporting.runlog import load_run_config

    if resume is not None:
        cfg = dataclasses.replace(load_run_config(resume), out=resume)
        return Train(config=cfg, continuing=Resuming(resume=resume))
    return Train(config=preset_for(env or TrainConfig.env))


def _sweep_default(resume: str | None, env: str | None) -> Sweep:
    """``sweep``'s defaults: the resumed sweep's spec, or the env's preset."""
    from spikerl_jax.sweep_spec import load_spec

    if resume is None:
        return Sweep(config=to_grid(preset_for(env or TrainConfig.env)))
    spec = load_spec(resume)
    grid = to_grid(dataclasses.replace(spec.base, out=resume))
    for name, values in spec.grid:
        grid = _with_grid_values(grid, name, values)
    return Sweep(config=grid, seeds=spec.seeds, continuing=Resuming(resume=resume))


def _with_grid_values(grid, name: str, values: tuple[float, ...]):
    section = SWEEPABLE[name]
    if section is None:
        return dataclasses.replace(grid, **{name: values})
    inner = dataclasses.replace(getattr(grid, section), **{name: values})
    return dataclasses.replace(grid, **{section: inner})


@dataclasses.dataclass
class _Selection:
    """What the defaults depend on, read before the full parse."""

    env: str | None = None
    resume: str | None = None


def parse(args: list[str]):
    """The command of ``args``, parsed by tyro over defaults that follow ``--env`` and
    ``--resume`` (tyro prints help and parse errors itself, and exits)."""
    try:
        sel, _ = tyro.cli(
            _Selection, args=args, return_unknown_args=True, add_help=False, console_outputs=False
        )
    except SystemExit:  # e.g. --env without a value: the full parse says so
        sel = _Selection()
    command = args[0] if args else None
    train = _train_default(sel.resume if command == "train" else None, sel.env)
    sweep = _sweep_default(sel.resume if command == "sweep" else None, sel.env)
    commands = Union[  # noqa: UP007 (tyro reads the Union's members as subcommands)
        Annotated[Train, tyro.conf.subcommand("train", default=train)],
        Annotated[Sweep, tyro.conf.subcommand("sweep", default=sweep)],
        Annotated[Eval, tyro.conf.subcommand("eval")],
        Annotated[Compare, tyro.conf.subcommand("compare")],
        Annotated[Plot, tyro.conf.subcommand("plot")],
        Annotated[ExportNir, tyro.conf.subcommand("export-nir")],
    ]
    return tyro.cli(
        commands,
        args=args,
        prog="spikerl-jax",
        description="Spiking actors (PopSAN) trained with TD3: train, sweep, "
        "evaluate, compare, plot and export runs.",
        config=(tyro.conf.OmitArgPrefixes, tyro.conf.OmitSubcommandPrefixes),
    )


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
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:
        from spikerl_jax import __version__

        print(f"spikerl-jax {__version__}")
        return 0
    try:
        command = parse(args)
        if isinstance(command, Train | Sweep | Eval):
            _use_compile_cache()
        return command.run()
    except SystemExit as e:  # tyro's help (0) or parse error (2), already printed
        return e.code if isinstance(e.code, int) else 2
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

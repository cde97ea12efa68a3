"""``spikerl-jax``: the command line, tyro subcommands over the package's functions.

    spikerl-jax train [--env Hopper-v4] [--total-steps N] [...]   # see --help
    spikerl-jax sweep --env Hopper-v4 --seeds 0 1 2 --actor-lr 1e-4 3e-4 --out runs/sweep
    spikerl-jax pbt --env Hopper-v4 --members 8 --actor-lr 1e-5:1e-3:log --out runs/pbt

Each command is a small dataclass whose fields (and their docstrings) are its options.
Defaults depend on the task: ``--env`` selects a preset (the paper's schedule for locomotion,
a short random phase for InvertedPendulum), shown by ``spikerl-jax train --env ID --help``;
``--resume`` takes the defaults from the run being resumed. Every command reports a bad input
or a failure as one line (exit 2); interrupts exit with 128 + the signal's number after saving
a checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from typing import Annotated, Union

import tyro

from spikerl_jax.cli.options import ALIASES, near_miss
from spikerl_jax.cli.runs import CommandError, Compare, Deploy, Eval, ExportNir, Plot
from spikerl_jax.cli.training import (
    Pbt,
    Preset,
    Sweep,
    Train,
    _pbt_default,
    _sweep_default,
    _train_default,
)
from spikerl_jax.config import ConfigError
from spikerl_jax.config.algorithms import ALGOS
from spikerl_jax.version import __version__


@dataclasses.dataclass
class _Selection:
    """What the defaults depend on, read before the full parse."""

    env: Annotated[str | None, tyro.conf.arg(aliases=ALIASES["env"])] = None
    resume: str | None = None
    actor: str | None = None
    paper: bool = False
    algo: str | None = None


def parse(args: list[str]):
    """The command of ``args``, parsed by tyro over defaults that follow ``--env`` and
    ``--resume`` (tyro prints help and parse errors itself, and exits)."""
    if args[:1] in (["train"], ["sweep"], ["pbt"]) and near_miss(args):
        raise CommandError(near_miss(args))
    try:
        sel, _ = tyro.cli(
            _Selection, args=args, return_unknown_args=True, add_help=False, console_outputs=False
        )
    except SystemExit:  # e.g. --env without a value: the full parse says so
        sel = _Selection()
    command = args[0] if args else None
    preset = Preset(
        sel.env,
        sel.actor if sel.actor in ("popsan", "mlp") else "popsan",
        sel.paper,
        sel.algo if sel.algo in ALGOS else "td3",  # a bad one: the full parse says so
    )
    train = _train_default(sel.resume if command == "train" else None, preset)
    sweep = _sweep_default(sel.resume if command == "sweep" else None, preset)
    pbt = _pbt_default(sel.resume if command == "pbt" else None, preset)
    commands = Union[  # noqa: UP007 (tyro reads the Union's members as subcommands)
        Annotated[Train, tyro.conf.subcommand("train", default=train)],
        Annotated[Sweep, tyro.conf.subcommand("sweep", default=sweep)],
        Annotated[Pbt, tyro.conf.subcommand("pbt", default=pbt)],
        Annotated[Eval, tyro.conf.subcommand("eval")],
        Annotated[Compare, tyro.conf.subcommand("compare")],
        Annotated[Plot, tyro.conf.subcommand("plot")],
        Annotated[ExportNir, tyro.conf.subcommand("export-nir")],
        Annotated[Deploy, tyro.conf.subcommand("deploy")],
    ]
    return tyro.cli(
        commands,
        args=args,
        prog="spikerl-jax",
        description="Spiking actors (PopSAN) trained with TD3, DDPG or SAC: train, sweep, pbt, "
        "evaluate, compare, plot and export runs.",
        config=(tyro.conf.OmitArgPrefixes, tyro.conf.OmitSubcommandPrefixes),
    )


def main(argv: list[str] | None = None) -> int:
    """Runs a command; every failure the user can fix is one ``error:`` line and exit 2."""
    # SIGTERM outside training (imports, the first compile, the summaries) ends the command
    # with its one line and status; training installs its own handler, which saves first.
    previous = _on_sigterm(_terminated)
    try:
        status = _run(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:  # before training began (or after it ended): nothing to save
        print("spikerl-jax: interrupted", file=sys.stderr)
        status = 130
    except _Terminated:
        print("spikerl-jax: terminated outside training: nothing to save", file=sys.stderr)
        status = 128 + signal.SIGTERM
    except BrokenPipeError:  # e.g. `spikerl-jax sweep --help | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        status = 128 + signal.SIGPIPE
    finally:
        if previous is not None:
            _on_sigterm(previous)
    processes = sys.modules.get("spikerl_jax.processes")  # imported once a command runs
    if status != 0 and processes is not None and processes.distributed():
        processes.exit_at_once(status)
    return status


def _run(args: list[str]) -> int:
    """``main``'s command: parsed, run, and its failures as one line each."""
    import absl.logging
    import jax
    from jax.errors import JaxRuntimeError

    from spikerl_jax.processes import Interrupted
    from spikerl_jax.training.checkpoint import SaveError
    from spikerl_jax.training.session import TrainingError

    # Orbax logs (absl) and its worker threads print a failing save's tracebacks, many times
    # over; the failure reaches the main thread as one SaveError or CheckpointError line.
    absl.logging.set_verbosity(absl.logging.FATAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    threading.excepthook = _quiet_checkpoint_threads
    sys.unraisablehook = _quiet_checkpoint_unraisable
    warnings.formatwarning = _one_line  # a warning is one line on the terminal
    if args == ["--version"]:
        print(f"spikerl-jax {__version__}")
        return 0
    try:
        command = parse(args)
        if isinstance(command, Train | Sweep | Pbt | Eval):
            _use_compile_cache()
        return command.run()
    except SystemExit as e:  # tyro's help (0) or parse error (2), already printed
        return e.code if isinstance(e.code, int) else 2
    except Interrupted as e:
        print(f"spikerl-jax: {e}", file=sys.stderr)
        return e.exit_code
    except (ConfigError, TrainingError, SaveError, CommandError) as e:
        return _fail(str(e))
    except JaxRuntimeError as e:
        if jax.process_count() == 1:
            raise
        first = str(e).strip().splitlines()[0]
        return _fail(
            f"another process of this run failed ({first}); its last checkpoint is kept: start "
            "every process again with --resume ROOT (the same --coordinator-address, "
            "--num-processes and --process-id)"
        )


class _Terminated(Exception):
    """SIGTERM arrived while no training loop was there to save a checkpoint."""


def _terminated(signum, frame):
    raise _Terminated


def _on_sigterm(handler):
    """Installs ``handler`` for SIGTERM where Python allows (the main thread); returns the
    previous one."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


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


_THREAD_HOOK, _UNRAISABLE_HOOK = threading.excepthook, sys.unraisablehook


def _from_checkpoint_io(exc_traceback) -> bool:
    """Whether an exception came from Orbax's or asyncio's machinery: a failing save's errors
    reach the main thread once, as one SaveError or CheckpointError line."""
    frames = traceback.extract_tb(exc_traceback) if exc_traceback else []
    return any("/orbax/" in f.filename or "/asyncio/" in f.filename for f in frames)


def _quiet_checkpoint_threads(args) -> None:
    """Drops the exceptions of Orbax's and asyncio's worker threads; any other thread's
    exception is printed as usual."""
    if _from_checkpoint_io(args.exc_traceback):
        logging.getLogger("spikerl_jax").debug("checkpoint thread: %r", args.exc_value)
        return
    _THREAD_HOOK(args)


def _quiet_checkpoint_unraisable(unraisable) -> None:
    """Drops what a failed save leaves behind at exit (TensorStore's callbacks on a closed
    event loop, Orbax's unfinished coroutines: many times over); anything else as usual."""
    if _from_checkpoint_io(unraisable.exc_traceback):
        return
    _UNRAISABLE_HOOK(unraisable)


def _one_line(message, category, filename, lineno, line=None) -> str:
    return f"spikerl-jax: warning: {message}\n"


def _fail(message: str) -> int:
    print(f"spikerl-jax: error: {message}", file=sys.stderr)
    return 2

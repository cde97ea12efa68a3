"""The training commands: ``train`` and ``sweep`` (their options are ``TrainConfig``'s, over
the defaults of ``--env``'s preset or of the run being resumed).

The training code is imported inside the commands' ``run``: it imports JAX, MuJoCo and
Orbax, which ``--help`` and a refused option should not wait for.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import tyro

from spikerl_jax.cli.options import GridConfig, TrainOptions, from_grid, from_options, to_view
from spikerl_jax.config import ConfigError, TrainConfig, flag, preset_for
from spikerl_jax.sweep_spec import SWEEPABLE, SweepSpec

# ``precision.PRECISIONS`` (a test keeps them equal): importing it would start JAX before the
# command runs, and the CLI handles signals from its first line on.
Precision = Literal["fp32", "bf16", "bf16-pure"]


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
    init_timeout: int = 300
    """Seconds to wait for every process to start before giving up (one line)."""

    def start(self) -> bool:
        """Starts ``jax.distributed`` when several processes train; returns whether it did."""
        from spikerl_jax.processes import init_distributed

        for name in ("num_processes", "process_id"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{flag(name)} must be a non-negative integer, got {value}")
        if self.init_timeout <= 0:
            raise ConfigError(f"--init-timeout must be positive seconds, got {self.init_timeout}")
        return init_distributed(
            self.coordinator_address, self.num_processes, self.process_id, self.init_timeout
        )


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


PAPER_HELP = (
    "The published settings of PopSAN and SpikeRL as the defaults (no --drive-penalty), for "
    "comparisons like for like; without it, locomotion tasks train PopSAN with "
    "--drive-penalty 1 (docs/learning.md)."
)


@dataclasses.dataclass(frozen=True)
class Preset:
    """What a new run's defaults follow: the task, the actor kind, --paper and the algorithm."""

    env: str | None = None
    actor_kind: str = "popsan"
    paper: bool = False
    algo: str = "td3"

    def config(self) -> TrainConfig:
        return preset_for(self.env or TrainConfig.env, self.actor_kind, self.paper, self.algo)


def _no_paper_on_resume(paper: bool, resume: str | None) -> None:
    if paper and resume is not None:
        raise ConfigError("--paper sets a new run's defaults; a resumed run keeps its own: drop it")


def _resumable(cfg: TrainConfig, saved: TrainConfig, where: str) -> None:
    mismatch = cfg.resume_mismatch(saved)
    if mismatch:
        raise ConfigError(f"cannot resume {where} with a different setting: {mismatch}")


@dataclasses.dataclass(frozen=True)
class Train:
    """Train a PopSAN spiking actor (or an MLP baseline) with TD3 on a Gymnasium MuJoCo task."""

    config: Annotated[TrainOptions, tyro.conf.arg(name="")]  # type: ignore[valid-type]
    continuing: Annotated[Resuming, tyro.conf.arg(name="")] = Resuming()
    processes: Annotated[Processes, tyro.conf.arg(name="")] = Processes()
    paper: Annotated[bool, tyro.conf.arg(help=PAPER_HELP)] = False

    def run(self) -> int:
        from spikerl_jax.training.trainer import train

        cfg, resume = self.continuing.apply(from_options(self.config)), self.continuing.resume
        _no_paper_on_resume(self.paper, resume)
        if resume is not None:
            if cfg.out != resume:
                raise ConfigError("--resume RUN_DIR continues that run in place: drop --out")
            _resumable(cfg, from_options(_train_default(resume, Preset()).config), resume)
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
    processes: Annotated[Processes, tyro.conf.arg(name="")] = Processes()
    paper: Annotated[bool, tyro.conf.arg(help=PAPER_HELP)] = False

    def spec(self) -> SweepSpec:
        base, grid = from_grid(self.config)
        base, resume = self.continuing.apply(base), self.continuing.resume
        _no_paper_on_resume(self.paper, resume)
        if resume is None:
            return SweepSpec(base=base, seeds=self.seeds, grid=grid)
        from spikerl_jax.sweep_spec import load_spec

        saved = load_spec(resume)
        if base.out != resume:
            raise ConfigError("--resume ROOT continues that sweep in place: drop --out")
        given = SweepSpec(base=base, seeds=self.seeds, grid=grid)
        if grid != saved.grid or self.seeds != saved.seeds:
            raise ConfigError(
                f"cannot resume {resume} with other seeds or grid values: the sweep has "
                f"{saved.describe()}, this command gives {given.describe()}"
            )
        # The members' seeds are --seeds: a sweep saved with another base seed keeps it.
        base = dataclasses.replace(base, seed=saved.base.seed)
        _resumable(base, saved.base, resume)
        return dataclasses.replace(saved, base=base)

    def run(self) -> int:
        from rich.console import Console

        from spikerl_jax.processes import split_cpu_for_members
        from spikerl_jax.reporting.sweep import sweep_table
        from spikerl_jax.training.trainer import train_sweep

        spec = self.spec()
        spec.validate_grid()  # its size splits the CPU; train_sweep validates the members
        if self.processes.start():  # several processes, each with the devices it has
            if spec.root is None:  # each process would name its own default root
                raise ConfigError("a sweep over several processes needs --out ROOT")
        elif spec.base.devices is None:  # before JAX starts: whole members on the CPU's cores
            split_cpu_for_members(spec.size)
        spec = spec.with_root()
        rows = train_sweep(spec, resume=self.continuing.resume is not None)
        if not rows:  # not process 0: it prints the table
            return 0
        console = Console()
        console.print(sweep_table(rows))
        console.print(
            f"written: {spec.root}/sweep.json, sweep.csv, learning_curves.png", markup=False
        )
        return 0


def _train_default(resume: str | None, preset: Preset) -> Train:
    """``train``'s defaults: the resumed run's config, or the preset."""
    from spikerl_jax.reporting.runs import load_run_config

    if resume is not None:
        cfg = dataclasses.replace(load_run_config(resume), out=resume)
        return Train(config=to_view(cfg, TrainOptions), continuing=Resuming(resume=resume))
    return Train(config=to_view(preset.config(), TrainOptions))


def _sweep_default(resume: str | None, preset: Preset) -> Sweep:
    """``sweep``'s defaults: the resumed sweep's spec, or the preset."""
    from spikerl_jax.sweep_spec import load_spec

    if resume is None:
        return Sweep(config=to_view(preset.config(), GridConfig))
    spec = load_spec(resume)
    grid = to_view(dataclasses.replace(spec.base, out=resume), GridConfig)
    for name, values in spec.grid:
        grid = _with_grid_values(grid, name, values)
    return Sweep(config=grid, seeds=spec.seeds, continuing=Resuming(resume=resume))


def _with_grid_values(grid, name: str, values: tuple[float, ...]):
    section = SWEEPABLE[name]
    if section is None:
        return dataclasses.replace(grid, **{name: values})
    inner = dataclasses.replace(getattr(grid, section), **{name: values})
    return dataclasses.replace(grid, **{section: inner})

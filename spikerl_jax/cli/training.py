"""The training commands: ``train`` and ``sweep`` (their options are ``TrainConfig``'s, over
the defaults of ``--env``'s preset or of the run being resumed).

The training code is imported inside the commands' ``run``: it imports JAX, MuJoCo and
Orbax, which ``--help`` and a refused option should not wait for.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import tyro

from spikerl_jax.cli.options import (
    GridConfig,
    RangeConfig,
    TrainOptions,
    from_grid,
    from_options,
    from_ranges,
    to_view,
)
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

        from spikerl_jax.reporting.sweep import sweep_table
        from spikerl_jax.training.trainer import train_sweep

        spec = self.spec()
        spec.validate_grid()  # its size splits the CPU; train_sweep validates the members
        spec = _start_population(spec, self.processes, "a sweep")
        rows = train_sweep(spec, resume=self.continuing.resume is not None)
        if not rows:  # not process 0: it prints the table
            return 0
        console = Console()
        console.print(sweep_table(rows))
        console.print(
            f"written: {spec.root}/sweep.json, sweep.csv, learning_curves.png", markup=False
        )
        return 0


def _start_population(spec, processes: Processes, what: str):
    """Starts the processes of a population's run (a sweep's or PBT's ``spec``), or splits
    the CPU into whole members; returns the spec with its root."""
    from spikerl_jax.processes import split_cpu_for_members

    if processes.start():  # several processes, each with the devices it has
        if spec.root is None:  # each process would name its own default root
            raise ConfigError(f"{what} over several processes needs --out ROOT")
    elif spec.base.devices is None:  # before JAX starts: whole members on the CPU's cores
        split_cpu_for_members(spec.size)
    return spec.with_root()


@dataclasses.dataclass(frozen=True)
class Pbt:
    """Population-based training: --members members start from settings drawn from the
    ranges given (e.g. --actor-lr 1e-5:1e-3:log) and train as one population; every
    --every steps the bottom --quantile copy a top member's networks, optimizers and
    normalizer and explore its settings (x0.8 or x1.2, or redrawn with probability
    --resample). Each member writes ROOT/mI-sSEED; ROOT holds the checkpoints,
    lineage.csv, pbt.json and pbt.png; eval, export-nir and deploy take ROOT for the best
    member."""

    config: Annotated[RangeConfig, tyro.conf.arg(name="")]  # type: ignore[valid-type]
    members: int = 8
    """Members of the population (seeds --seed, --seed + 1, ...)."""
    every: int | None = None
    """Env steps between exploit steps, a multiple of --eval-every (default: twice it)."""
    quantile: float = 0.25
    """The fraction of members that copy one of the same fraction at the top (0: none, a
    random search over the same draws; at most 0.5)."""
    resample: float = 0.25
    """The probability that an explored setting is redrawn from its range."""
    copy_buffer: bool = False
    """A copier takes its source's replay buffer too (by default it keeps its own, still
    valid off-policy data, and the copy's memory traffic is spared)."""
    continuing: Annotated[Resuming, tyro.conf.arg(name="")] = Resuming()
    processes: Annotated[Processes, tyro.conf.arg(name="")] = Processes()
    paper: Annotated[bool, tyro.conf.arg(help=PAPER_HELP)] = False

    def spec(self):
        from spikerl_jax.pbt_spec import PBTSpec, load_spec

        base, ranges = from_ranges(self.config)
        base, resume = self.continuing.apply(base), self.continuing.resume
        _no_paper_on_resume(self.paper, resume)
        every = self.every if self.every is not None else 2 * base.eval_every
        given = PBTSpec(
            base, self.members, every, ranges, self.quantile, self.resample, self.copy_buffer
        )
        if resume is None:
            return given
        saved = load_spec(resume)
        if base.out != resume:
            raise ConfigError("--resume ROOT continues that PBT run in place: drop --out")
        mine, theirs = (dataclasses.replace(s, base=None) for s in (given, saved))
        if self.every is None:  # the default follows --eval-every, which a resume may change
            mine = dataclasses.replace(mine, every=saved.every)
        if mine != theirs:
            raise ConfigError(
                f"cannot resume {resume} with other PBT settings (--members, --every, the "
                "ranges, --quantile, --resample, --copy-buffer): drop them to keep the run's"
            )
        _resumable(base, saved.base, resume)
        return dataclasses.replace(saved, base=base)

    def run(self) -> int:
        from spikerl_jax.training.trainer import train_pbt

        spec = self.spec()
        spec = _start_population(spec, self.processes, "a PBT run")
        summary = train_pbt(spec, resume=self.continuing.resume is not None)
        if not summary:  # not process 0
            return 0
        best = summary["members"][0]
        print(
            f"done: best member {summary['best_member']} (best eval return "
            f"{best['best_eval_return']:.2f}, final {best['final_eval_return']:.2f}) after "
            f"{summary['copies']} copies; written: {spec.root}/pbt.json, lineage.csv, pbt.png"
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


def _pbt_default(resume: str | None, preset: Preset) -> Pbt:
    """``pbt``'s defaults: the resumed run's spec, or the preset."""
    from spikerl_jax.pbt_spec import load_spec

    if resume is None:
        return Pbt(config=to_view(preset.config(), RangeConfig))
    spec = load_spec(resume)
    view = to_view(dataclasses.replace(spec.base, out=resume), RangeConfig, spec.ranges)
    return Pbt(
        config=view,
        members=spec.members,
        every=spec.every,
        quantile=spec.quantile,
        resample=spec.resample,
        copy_buffer=spec.copy_buffer,
        continuing=Resuming(resume=resume),
    )

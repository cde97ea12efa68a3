"""``train``: TD3 for a spiking (or ANN) actor, the whole algorithm on one screen.

    from spikerl_jax.config import preset_for
    from spikerl_jax.training.trainer import train
    summary = train(preset_for("InvertedPendulum-v4"))

The details live one module down: the schedule (``schedule``: which steps act at random,
which rounds update), the backends that collect (``host_loop``: Gymnasium; ``device_loop``:
MJX) around the learner's round (``learner``: ingest, then the fused TD3 updates), and the
``Session`` that holds the records, checkpoints and energy meter.
"""

from __future__ import annotations

import os
import shlex
import shutil

import jax

from spikerl_jax.config import TrainConfig
from spikerl_jax.pbt_spec import PBTSpec
from spikerl_jax.pbt_spec import save_spec as save_pbt_spec
from spikerl_jax.processes import Interrupted
from spikerl_jax.reporting.pbt import PBT_SUMMARY_FILES, write_pbt_summary
from spikerl_jax.reporting.runs import read_run
from spikerl_jax.reporting.sweep import (
    SUMMARY_FILES,
    summary_written,
    sweep_rows,
    write_sweep_summary,
)
from spikerl_jax.sweep_spec import SweepSpec, save_spec, setting_label
from spikerl_jax.training.build import check_run
from spikerl_jax.training.checkpoint import SaveError, latest_step
from spikerl_jax.training.session import Session


def train(cfg: TrainConfig, resume: bool = False, console=None) -> dict:
    """Trains one run into ``cfg.run_dir()``; returns its summary (``summary.json``).

    With ``resume``, continues that directory's run from its latest checkpoint: exactly, with
    the buffer checkpointed (``checkpoint_buffer``); otherwise the buffer restarts empty and
    updates pause until it holds ``update_after`` transitions again.

    Raises:
      ConfigError: a bad configuration value (validated before anything is written), or a
        missing, corrupted or mismatched checkpoint.
      TrainingError: the losses became non-finite (the last good checkpoint stays).
      Interrupted: SIGINT or SIGTERM; a checkpoint of the last finished round was saved first.
    """
    return train_members([cfg], resume=resume, console=console)[0][0]


def train_members(
    configs: list[TrainConfig],
    root: str | None = None,
    resume: bool = False,
    console=None,
    checked: bool = False,
    pbt: PBTSpec | None = None,
):
    """The algorithm for a population of ``configs`` (one run: a population of one), whose
    checkpoints go to ``root`` (None: the single run's directory); ``checked``: ``configs``
    have passed ``check_run``; ``pbt``: population-based training's spec. Returns the
    members' summaries and the final ``RunState`` (member axis first)."""
    # Build, restore, open the records.
    with Session(configs, root, resume, console, checked, pbt) as run:
        state, loop, cfg = run.state, run.loop, run.cfg
        while loop.step < cfg.total_steps:
            # Plan, collect and learn, round by round up to the next stop: acting (at random
            # before start_steps), replay inserts, then each round's TD3 updates.
            target = run.stops.target(cfg)
            state, stats = run.backend.rounds(
                state, loop.counters, target, run.stop, run.progress.advance
            )
            loop = run.account(loop, stats)  # counters, progress; non-finite losses stop here
            improved = solved = False
            if run.due("log", loop):
                run.log(loop)  # train.csv, TensorBoard: training episodes, losses, speed
            if run.due("eval", loop):
                results = run.evaluate(state, loop.step)  # deterministic episodes
                state, loop, improved = run.record(state, loop, results)  # rows, best policy
                solved = run.reached_target(loop)  # --target-return: stop here
                if run.exploit_due(loop):  # PBT: the worst copy the best members, explore
                    state, loop = run.exploit(state, loop)
            if run.due("checkpoint", loop) or improved or solved or run.stop.requested:
                run.checkpoint(state, loop)  # state, best policy and records together
            if run.stop.requested:
                raise run.interrupted(loop.step)
            if solved:
                break
        return run.finish(state, loop), state


def train_sweep(spec: SweepSpec, resume: bool = False, console=None) -> list[dict]:
    """Trains a sweep's members as one population and writes its summary into the root.

    Returns:
      The ranked rows of ``sweep.json`` (per setting: mean and std over seeds).
    """
    spec.validate()  # each member's values; nothing is written for a bad spec
    check_run(spec.placed().members(), validated=True)
    spec = spec.with_root()
    if not resume and jax.process_index() == 0:
        save_spec(spec)
    configs, seeds = spec.members(), len(spec.seeds)
    groups = {
        setting_label(setting): configs[i * seeds : (i + 1) * seeds]
        for i, setting in enumerate(spec.settings())
    }

    def summarize():
        runs = {label: [read_run(c.run_dir()) for c in group] for label, group in groups.items()}
        write_sweep_summary(spec.root, runs)
        return sweep_rows(runs)

    rows = _train_population(spec, configs, resume, console, "sweep", SUMMARY_FILES, summarize)
    return [] if rows is None else rows


def train_pbt(spec: PBTSpec, resume: bool = False, console=None) -> dict:
    """Population-based training of ``spec`` (``pbt_spec``); writes ``pbt.json`` and
    ``pbt.png`` into its root and returns ``pbt.json``'s content."""
    spec.validate()  # nothing is written for a bad spec
    check_run(spec.placed().configs(), validated=True)
    spec = spec.with_root()
    if not resume and jax.process_index() == 0:
        save_pbt_spec(spec)
    configs = spec.configs()

    def summarize():
        return write_pbt_summary(spec, [read_run(c.run_dir()) for c in configs])

    summary = _train_population(
        spec, configs, resume, console, "pbt", PBT_SUMMARY_FILES, summarize, pbt=spec
    )
    return {} if summary is None else summary


def _train_population(spec, configs, resume, console, command, files, summarize, pbt=None):
    """Trains the members ``configs`` of a sweep's or PBT's ``spec`` (``spikerl-jax
    COMMAND``), unless a resume finds them finished with only the summary ``files``
    missing; then, on process 0, returns ``summarize()`` (None on the others).

    Raises:
      Interrupted: naming ``COMMAND --resume ROOT`` to continue.
      SaveError: the summary could not be written (the members' results are kept).
    """
    again = f"spikerl-jax {command} --resume {shlex.quote(spec.root)}"
    try:
        if not (resume and _finished_without_summary(spec, configs, files)):
            train_members(configs, spec.root, resume, console, checked=True, pbt=pbt)
    except Interrupted as e:  # a population continues from its root
        raise e.resumed_with(again) from None
    if jax.process_index() != 0:  # with several processes, process 0 writes the records
        return None
    try:
        return summarize()
    except OSError as e:
        free = shutil.disk_usage(spec.root).free // 2**20
        raise SaveError(
            f"cannot write the {command}'s summary {e.filename}: {e.strerror} ({free} MB "
            f"free); the members' results are kept: free space, then {again} writes it"
        ) from None


def _finished_without_summary(spec, configs: list[TrainConfig], files=SUMMARY_FILES) -> bool:
    """Whether every member of ``spec`` (a sweep's or PBT's) finished but the root's
    summary ``files`` are missing or empty (a disk that filled while they were written): a
    resume then writes them without training."""
    step = latest_step(spec.root)
    done = all(os.path.isfile(os.path.join(c.run_dir(), "summary.json")) for c in configs)
    return (
        done
        and step is not None
        and step >= spec.base.total_steps
        and not summary_written(spec.root, files)
    )

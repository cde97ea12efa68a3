"""The resources and records around the training loop of ``training.trainer``: locks, the
precision context, the population and its checkpoints, records, energy, progress and the
stop request, all entered on one ``contextlib.ExitStack`` and released in reverse order
(a start that fails releases what it opened: a notebook may fix the problem and retry).

A session trains ``M`` members (``M = 1`` for a single run) that share the compiled programs:
they may differ only in their seeds, output directories and the sweepable settings. Each
member has its own run directory with the records of a single run; the population's
checkpoints live in ``root`` (the run directory of a single run, a sweep's root).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.pbt_spec import PBTSpec
from spikerl_jax.precision import full_precision_matmuls
from spikerl_jax.processes import Interrupted, StopRequest
from spikerl_jax.reporting.energy import EnergyMeter
from spikerl_jax.reporting.pbt import pbt_line, write_lineage
from spikerl_jax.reporting.population import write_population_file
from spikerl_jax.reporting.progress import TrainProgress
from spikerl_jax.reporting.records import (
    EvalResult,
    Throughput,
    announcement,
    log_row,
    metric_row,
    share_energy,
    spikes_of,
    summary,
)
from spikerl_jax.reporting.runlog import RunLock, RunRecorder
from spikerl_jax.training.backend import RoundStats
from spikerl_jax.training.build import build, check_run
from spikerl_jax.training.checkpoint import (
    Checkpointer,
    latest_step,
    legacy_checkpoints,
    restore_population,
)
from spikerl_jax.training.exploit import make_copy, with_settings
from spikerl_jax.training.schedule import Stops, after_round
from spikerl_jax.training.state import LoopState, MemberRecord, RunState, keep_best


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. non-finite losses); the message says why and what to try."""


class Session:
    """One process's training of ``configs`` (one per member), from set-up to summaries.

    Args:
      configs: each member's config.
      root: the population's checkpoint directory (None: the single member's run directory).
      resume: continue from the newest checkpoint in ``root``.
      console: the rich console of the progress bar (None: stderr).
      checked: the caller has run ``check_run`` on ``configs`` (a sweep, before writing its
        spec): each member is validated once.
      pbt: population-based training's spec (``configs`` are its members'), or None.

    Raises:
      ConfigError: a bad configuration (before anything is written), or a missing,
        corrupted or mismatched checkpoint.
    """

    def __init__(
        self,
        configs: list[TrainConfig],
        root: str | None = None,
        resume: bool = False,
        console=None,
        checked: bool = False,
        pbt: PBTSpec | None = None,
    ):
        self.pbt = pbt
        if not checked:
            check_run(configs)
        self.cfg, self.configs, self.members = configs[0], configs, len(configs)
        self.primary = jax.process_index() == 0  # only process 0 writes the records
        self.run_dirs = [c.run_dir() for c in configs]
        self.root = root or self.run_dirs[0]
        self._stack = contextlib.ExitStack()
        with self._stack:  # closed on failure; popped (kept open) once set up
            self._set_up(resume, console)
            self._stack = self._stack.pop_all()

    def _set_up(self, resume: bool, console) -> None:
        cfg, stack, primary = self.cfg, self._stack, self.primary
        for path in dict.fromkeys([*self.run_dirs, self.root]) if primary else []:
            stack.callback(RunLock(path).release)  # one process trains a run at a time
        # The session's programs trace in full float32 matmuls; closing it restores the
        # process's setting (a notebook's own code keeps its precision).
        stack.enter_context(full_precision_matmuls())
        self.spec, self.learner, self.backend, self.state = build(self.configs)
        stack.callback(self.backend.close)
        self.loop = LoopState(
            members=(MemberRecord(),) * self.members,
            pbt=self.pbt.initial_record() if self.pbt else None,
        )
        self.resume_step = self.target_reached_at = None
        records_from = self._restore() if resume else None
        if self.pbt:
            self.copy = make_copy(self.state.learner, self.pbt.copy_buffer)
            self._take_settings(self.loop.pbt)  # a resumed run's: they may have changed
        for note in cfg.schedule_notes() if primary else []:
            warnings.warn(note, stacklevel=3)
        self.stops, self.last_checkpoint = Stops.at(cfg, self.loop.step), self.resume_step
        self.recorders = (
            [self._recorder(m, records_from) for m in range(self.members)] if primary else []
        )
        self.checkpointer = Checkpointer(self.root, cfg.keep_checkpoints, cfg.checkpoint_buffer)
        stack.callback(self.checkpointer.close)
        grid, log = (
            (cfg.energy_country, cfg.energy_region),
            self._log_emissions if primary else None,
        )
        self.meter = EnergyMeter(*grid, log, self.loop.energy, enabled=cfg.energy and primary)
        stack.callback(self.meter.close)
        self.progress = TrainProgress(cfg.total_steps, cfg.progress and primary, console)
        self.stop = StopRequest(self.resume_command())
        self.throughput = Throughput(self.loop.step, self.loop.counters.updates)
        # The episode totals at the last train.csv row (a resumed run's, from its checkpoint).
        logged = np.array(self.loop.logged, np.float64)
        self.logged = logged if logged.size else self.backend.episode_totals().copy()

    def _recorder(self, member: int, records_from: int | None) -> RunRecorder:
        """Member ``member``'s records, keeping its rows up to ``records_from`` (None: a new
        run, whose directory may hold none yet)."""
        run_dir, cfg = self.run_dirs[member], self.configs[member]
        recorder = RunRecorder(run_dir, cfg, self.learner.metrics, records_from, cfg.tensorboard)
        self._stack.callback(recorder.close)
        if run_dir != self.root:
            write_population_file(run_dir, self.root, member)
        return recorder

    def _restore(self) -> int:
        """Restores the newest checkpoint; returns the step up to which records are kept."""
        if latest_step(self.root) is None and not legacy_checkpoints(self.root):
            # Stopped before its first checkpoint: nothing to continue, so it starts over.
            warnings.warn(f"{self.root} has no checkpoint yet: it starts over", stacklevel=3)
            return 0
        state, host, loop, with_buffer = restore_population(self.root, self.state)
        summaries = all(os.path.isfile(os.path.join(d, "summary.json")) for d in self.run_dirs)
        if loop.step >= self.cfg.total_steps and summaries:
            raise ConfigError(
                f"nothing to do: {self.root} is at step {loop.step}, not below "
                f"--total-steps {self.cfg.total_steps}; pass a larger --total-steps to train on"
            )
        if not with_buffer:  # the buffer restarts empty: updates wait until it refills
            counters = dataclasses.replace(loop.counters, buffered=0)
            loop = dataclasses.replace(loop, counters=counters)
        self.backend.restore(host)
        self.state, self.loop, self.resume_step = state, loop, loop.step
        return loop.step

    def __enter__(self) -> Session:
        stack = self._stack
        stack.enter_context(self.progress)
        stack.enter_context(self.stop)
        device, layout = jax.devices()[0], self.learner.layout
        where = (layout.devices, "CPU" if device.platform == "cpu" else device.device_kind)
        self.progress.announce(
            announcement(self.cfg, self.members, where, self.resume_step, self.root)
        )
        self.progress.advance(self.loop.step)
        self.meter.begin("train")
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    # --- the loop's steps -------------------------------------------------------------------

    def account(self, loop: LoopState, stats: RoundStats) -> LoopState:
        """The loop after ``stats.rounds`` rounds: counters, progress and throughput;
        non-finite losses end the run."""
        counters = loop.counters
        for _ in range(stats.rounds):
            counters = after_round(self.cfg, counters)
        if stats.metrics is not None:
            self.throughput.rounds(stats.metrics, stats.update_s)
        if stats.nonfinite_step is not None:
            last, where = self.last_checkpoint, f"{self.root}/checkpoints"
            kept = f"the last good checkpoint (step {last}) is kept in {where}" if last else ""
            raise TrainingError(
                f"non-finite losses at step {stats.nonfinite_step}; "
                f"{kept or 'no checkpoint was saved yet'}. Lower --critic-lr / --actor-lr, "
                "or check the environment's observations and rewards"
            )
        return dataclasses.replace(loop, counters=counters)

    def due(self, what: str, loop: LoopState) -> bool:
        """Whether ``what`` (``eval``, ``checkpoint``, ``log``) is due now."""
        return self.stops.due(self.cfg, what, loop.step)

    def evaluate(self, state: RunState, step: int) -> list[EvalResult]:
        """Every member's deterministic episodes, metered as the ``eval`` phase."""
        self.stops = self.stops.after(self.cfg, "eval", step)
        self.meter.switch("eval", step, sync=state)
        results = self.backend.evaluate(state, step)
        if step < self.cfg.total_steps:
            self.meter.switch("train", step)
        else:  # so that the final checkpoint holds the whole run's energy
            self.meter.end(step)
        return results

    def record(self, state: RunState, loop: LoopState, results: list[EvalResult]):
        """Writes each member's evaluation row and keeps the improved members' policies as
        their best; returns ``(state, loop, improved)``."""
        speeds, metrics = self._window("eval", loop)
        returns, records, improved = self.backend.take_train_returns(), [], []
        for m, (result, record) in enumerate(zip(results, loop.members, strict=True)):
            spikes = spikes_of(result, self.cfg, self.spec.obs_dim, self.spec.action_dim)
            row = metric_row(loop.step, result, returns[m], speeds, metrics[m], spikes)
            if self.primary:
                rates = {k: v["firing_rate"] for k, v in spikes["layers"].items()} if spikes else {}
                self.recorders[m].evaluation(row, rates)
            self.progress.report(row, self.run_dirs[m] if self.members > 1 else "")
            records.append(record.after(result.mean, loop.step, spikes))
            improved.append(records[-1].best_step == loop.step)
        if any(improved):
            state = keep_best(state, jnp.array(improved))
        loop = dataclasses.replace(loop, members=tuple(records))
        if self.pbt:
            loop = dataclasses.replace(loop, pbt=loop.pbt.evaluated([r.mean for r in results]))
        return state, loop, any(improved)

    def exploit_due(self, loop: LoopState) -> bool:
        """Whether PBT's exploit step is due (after this step's evaluation)."""
        return self.pbt is not None and self.pbt.due(loop.step)

    def exploit(self, state: RunState, loop: LoopState) -> tuple[RunState, LoopState]:
        """PBT's exploit step: the bottom members copy top ones and explore
        (``pbt_spec.PBTSpec.exploit``, ``training.exploit``); ``lineage.csv`` rewritten."""
        sources, record = self.pbt.exploit(loop.step, loop.pbt)
        copies = record.lineage[len(loop.pbt.lineage) :]
        if copies:  # (none with --quantile 0: the state stays as it is)
            hparams = self._take_settings(record)
            state = state.replace(learner=self.copy(state.learner, sources, hparams))
        for copy in copies:
            self.progress.announce(pbt_line(self.pbt, copy))
        return state, dataclasses.replace(loop, pbt=record)

    def _take_settings(self, record):
        """Puts ``record``'s settings into the acting members (exploration noise) and the
        records; returns the algorithm's traced settings for the state."""
        self.backend.members = with_settings(
            self.backend.members, self.pbt.configs(record.settings)
        )
        if self.primary:
            write_lineage(self.root, self.pbt, record)
        return self.backend.members.hparams

    def log(self, loop: LoopState) -> None:
        """Writes each member's train.csv row: the training episodes since the last row,
        the latest losses and the throughput (TensorBoard's train/, loss/, speed/)."""
        self.stops = self.stops.after(self.cfg, "log", loop.step)
        totals = self.backend.episode_totals().copy()
        episodes, self.logged = totals - self.logged, totals
        speeds, metrics = self._window("log", loop)
        for m, recorder in enumerate(self.recorders):
            recorder.log(log_row(loop.step, episodes[m], speeds, metrics[m]))

    def _window(self, name: str, loop: LoopState) -> tuple[dict, list[dict]]:
        """The throughput since the last ``name`` row and each member's latest metrics."""
        speeds = self.throughput.since(name, loop.step, loop.counters.updates)
        speeds["wall_s"] = loop.wall_s + self.throughput.seconds()
        metrics = self.throughput.metrics
        return speeds, [{k: v[m] for k, v in metrics.items()} for m in range(self.members)]

    def reached_target(self, loop: LoopState) -> bool:
        """Whether every member's latest evaluation reached ``--target-return`` (if so, the
        step is kept for the summary's ``target_reached_at``)."""
        target = self.cfg.target_return
        if target is None or not all(r.last_return >= target for r in loop.members):
            return False
        self.target_reached_at = loop.step
        return True

    def _log_emissions(self, row: dict) -> None:
        for recorder in self.recorders:
            recorder.emissions.write(row)

    def checkpoint(self, state: RunState, loop: LoopState) -> None:
        """Saves the population's state, host state and records as one checkpoint."""
        self.stops = self.stops.after(self.cfg, "checkpoint", loop.step)
        host, totals = self.backend.snapshot(), self.totals(loop)
        self.stop.saving = True  # a second Ctrl-C waits for the save to finish
        try:
            self.checkpointer.save(loop.step, state, host, totals)
        finally:
            self.stop.saving = False
        self.last_checkpoint = loop.step

    def totals(self, loop: LoopState) -> LoopState:
        """``loop`` with the time and energy of every process so far, this one included."""
        seconds, start = self.throughput.seconds(), self.resume_step or 0
        return dataclasses.replace(
            loop,
            energy=self.meter.totals(),
            wall_s=loop.wall_s + seconds,
            segments=(*loop.segments, (start, loop.step, seconds)),
            logged=tuple(tuple(float(x) for x in row) for row in self.logged),
        )

    def resume_command(self) -> str:
        """The command that continues this run (a sweep's caller names its own)."""
        return f"spikerl-jax train --resume {shlex.quote(self.root)}"

    def interrupted(self, step: int) -> Interrupted:
        stopped = f"interrupted by {self.stop.name} at step {step}"
        return Interrupted(stopped, self.resume_command(), self.stop.signum or 2)

    def finish(self, state: RunState, loop: LoopState) -> list[dict]:
        """Ends the measurement and writes every member's ``summary.json``."""
        self.meter.end(loop.step, sync=state)
        totals, c, layout = self.totals(loop), loop.counters, self.learner.layout
        run = {
            "total_steps": c.step,
            "wall_s": totals.wall_s,
            "segments": [list(s) for s in totals.segments],
            **self.throughput.since_start(c.step, c.updates),
            "updates": c.updates,
            "resumed_from": self.resume_step,
            "target_reached_at": self.target_reached_at,
            "devices": layout.devices,
            "batch_devices": layout.devices if layout.mode == "data" else 1,
            "members": self.members,
            "energy": share_energy(self.meter.report(), self.members),
        }
        summaries = []
        for m, (cfg, record) in enumerate(zip(self.configs, loop.members, strict=True)):
            summaries.append(summary(dataclasses.replace(cfg, out=self.run_dirs[m]), record, run))
            if self.primary:
                self.recorders[m].summary(summaries[-1])
        return summaries

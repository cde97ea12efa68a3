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

import jax
import jax.numpy as jnp

from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.precision import full_precision_matmuls
from spikerl_jax.processes import Interrupted, StopRequest
from spikerl_jax.reporting.energy import EnergyMeter
from spikerl_jax.reporting.population import write_population_file
from spikerl_jax.reporting.progress import TrainProgress
from spikerl_jax.reporting.records import (
    EvalResult,
    Throughput,
    metric_row,
    share_energy,
    spikes_of,
    summary,
)
from spikerl_jax.reporting.runlog import RunLock, RunRecorder
from spikerl_jax.training.backend import RoundStats
from spikerl_jax.training.build import build, check_run
from spikerl_jax.training.checkpoint import Checkpointer, restore_population
from spikerl_jax.training.schedule import Stops, after_round
from spikerl_jax.training.state import LoopState, MemberRecord, RunState


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. non-finite losses); the message says why and what to try."""


@jax.jit
def _keep_best(best, policy, improved):
    """Each member's best policy, replaced by its current one where it ``improved``."""
    return jax.tree.map(
        lambda b, p: jnp.where(improved.reshape(-1, *[1] * (b.ndim - 1)), p, b), best, policy
    )


class Session:
    """One process's training of ``configs`` (one per member), from set-up to summaries.

    Args:
      configs: each member's config.
      root: the population's checkpoint directory (None: the single member's run directory).
      resume: continue from the newest checkpoint in ``root``.
      console: the rich console of the progress bar (None: stderr).

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
    ):
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
        cfg, stack = self.cfg, self._stack
        for path in dict.fromkeys([*self.run_dirs, self.root]) if self.primary else []:
            stack.callback(RunLock(path).release)  # one process trains a run at a time
        # The session's programs trace in full float32 matmuls; closing it restores the
        # process's setting (a notebook's own code keeps its precision).
        stack.enter_context(full_precision_matmuls())
        self.spec, self.learner, self.backend, self.state = build(self.configs)
        stack.callback(self.backend.close)
        self.loop = LoopState(members=(MemberRecord(),) * self.members)
        self.resume_step = self.target_reached_at = None
        if resume:
            self._restore()
        self.stops = Stops.at(cfg, self.loop.step)
        self.last_checkpoint = self.resume_step
        self.recorders = []
        for m, (run_dir, c) in enumerate(zip(self.run_dirs, self.configs, strict=True)):
            if self.primary:
                self.recorders.append(
                    stack.enter_context(
                        contextlib.closing(RunRecorder(run_dir, c, self.resume_step, c.tensorboard))
                    )
                )
                if run_dir != self.root:
                    write_population_file(run_dir, self.root, m)
        self.checkpointer = Checkpointer(self.root, cfg.keep_checkpoints, cfg.checkpoint_buffer)
        stack.callback(self.checkpointer.close)
        log = self._log_emissions if self.primary else None
        self.meter = EnergyMeter(
            cfg.energy_country,
            cfg.energy_region,
            log,
            self.loop.energy,
            enabled=cfg.energy and self.primary,
        )
        stack.callback(self.meter.close)
        self.progress = TrainProgress(
            cfg.total_steps, enabled=cfg.progress and self.primary, console=console
        )
        self.stop = StopRequest()
        self.throughput = Throughput(self.loop.step, self.loop.counters.updates)

    def _restore(self) -> None:
        state, host, loop, with_buffer = restore_population(self.root, self.state)
        if loop.step >= self.cfg.total_steps:
            raise ConfigError(
                f"nothing to do: {self.root} is at step {loop.step}, not below "
                f"--total-steps {self.cfg.total_steps}; pass a larger --total-steps to train on"
            )
        if not with_buffer:  # the buffer restarts empty: updates wait until it refills
            loop = dataclasses.replace(
                loop, counters=dataclasses.replace(loop.counters, buffered=0)
            )
        self.backend.restore(host)
        self.state, self.loop, self.resume_step = state, loop, loop.step

    def __enter__(self) -> Session:
        stack = self._stack
        stack.enter_context(self.progress)
        stack.enter_context(self.stop)
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
        self.progress.advance(counters.step - loop.step)
        if stats.metrics is not None:
            self.throughput.rounds(stats.metrics, stats.update_s)
        if stats.nonfinite_step is not None:
            kept = "no checkpoint was saved yet"
            if self.last_checkpoint is not None:
                kept = (
                    f"the last good checkpoint (step {self.last_checkpoint}) is kept in "
                    f"{self.root}/checkpoints"
                )
            raise TrainingError(
                f"non-finite losses at step {stats.nonfinite_step}; {kept}. Lower "
                "--critic-lr / --actor-lr, or check the environment's observations and rewards"
            )
        return dataclasses.replace(loop, counters=counters)

    def eval_due(self, loop: LoopState) -> bool:
        return self.stops.eval_due(self.cfg, loop.step)

    def checkpoint_due(self, loop: LoopState) -> bool:
        return self.stops.checkpoint_due(self.cfg, loop.step)

    def evaluate(self, state: RunState, step: int) -> list[EvalResult]:
        """Every member's deterministic episodes, metered as the ``eval`` phase."""
        self.stops = dataclasses.replace(self.stops, next_eval=Stops.at(self.cfg, step).next_eval)
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
        speeds = self.throughput.since_evaluation(loop.step, loop.counters.updates)
        wall_s, train_returns = (
            loop.wall_s + self.throughput.seconds(),
            self.backend.take_train_returns(),
        )
        metrics, records, improved = self.throughput.metrics, [], []
        for m, (result, record) in enumerate(zip(results, loop.members, strict=True)):
            spikes = spikes_of(result, self.cfg, self.spec.obs_dim, self.spec.action_dim)
            row = metric_row(
                self.cfg,
                loop.step,
                result,
                train_returns[m],
                wall_s,
                speeds,
                {k: v[m] for k, v in metrics.items()},
                spikes,
            )
            if self.primary:
                rates = {k: v["firing_rate"] for k, v in spikes["layers"].items()} if spikes else {}
                self.recorders[m].evaluation(row, rates)
            self.progress.report(row, self.label(m))
            new = record.best_return is None or result.mean > record.best_return
            improved.append(new)
            best = (result.mean, loop.step) if new else (record.best_return, record.best_step)
            records.append(MemberRecord(*best, last_return=result.mean, spikes=spikes))
        if any(improved):
            state = state.replace(best=_keep_best(state.best, state.policy, jnp.array(improved)))
        return state, dataclasses.replace(loop, members=tuple(records)), any(improved)

    def reached_target(self, loop: LoopState) -> bool:
        """Whether every member's latest evaluation reached ``--target-return`` (if so, the
        step is kept for the summary's ``target_reached_at``)."""
        target = self.cfg.target_return
        if target is None or not all(r.last_return >= target for r in loop.members):
            return False
        self.target_reached_at = loop.step
        return True

    def label(self, member: int) -> str:
        return "" if self.members == 1 else self.run_dirs[member]

    def _log_emissions(self, row: dict) -> None:
        for recorder in self.recorders:
            recorder.emissions.write(row)

    def checkpoint(self, state: RunState, loop: LoopState) -> None:
        """Saves the population's state, host state and records as one checkpoint."""
        self.stops = dataclasses.replace(
            self.stops, next_checkpoint=Stops.at(self.cfg, loop.step).next_checkpoint
        )
        self.checkpointer.save(loop.step, state, self.backend.snapshot(), self.totals(loop))
        self.last_checkpoint = loop.step

    def totals(self, loop: LoopState) -> LoopState:
        """``loop`` with the time and energy of every process so far, this one included."""
        seconds, start = self.throughput.seconds(), self.resume_step or 0
        return dataclasses.replace(
            loop,
            energy=self.meter.totals(),
            wall_s=loop.wall_s + seconds,
            segments=(*loop.segments, (start, loop.step, seconds)),
        )

    def interrupted(self, step: int) -> Interrupted:
        resume = "--resume " + self.root
        return Interrupted(
            f"interrupted by {self.stop.name} at step {step}", resume, self.stop.signum or 2
        )

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

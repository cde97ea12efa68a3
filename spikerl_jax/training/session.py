"""Everything around the training loop of ``spikerl_jax.training.trainer.train``: set-up and
restore, the schedule, evaluation records, checkpoints, energy, summaries and clean-up.

A session trains ``M`` members (``M = 1`` for a single run) that share the compiled programs:
they may differ only in their seeds, output directories and the settings that keep shapes
(``spikerl_jax.rl.td3.HParams``). Each member has its own run directory with the records of a
single run.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.envs.registry import env_spec
from spikerl_jax.precision import full_precision_matmuls
from spikerl_jax.reporting.activity import spike_report
from spikerl_jax.reporting.energy import EnergyMeter, check_grid
from spikerl_jax.reporting.progress import TrainProgress
from spikerl_jax.reporting.runlog import RunLock, RunRecorder
from spikerl_jax.rl.td3 import hparams_from_config
from spikerl_jax.training.backend import Backend, EvalResult, RoundStats
from spikerl_jax.training.checkpoint import RunCheckpointer, restore
from spikerl_jax.training.learner import make_learner, member_keys, stack_hparams
from spikerl_jax.training.parallel import check_divisible, make_layout, make_mesh
from spikerl_jax.training.signals import Interrupted, StopRequest
from spikerl_jax.training.state import (
    HostCheckpoint,
    LoopState,
    MemberRecord,
    RunState,
    committed,
    member_backend,
    member_loop,
    merge_loops,
    stack_backends,
)
from spikerl_jax.training.sweep import check_population, varying_hparams

LOSS_COLUMNS = ("critic_loss", "actor_loss", "q", "critic_grad_norm", "actor_grad_norm")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. non-finite losses); the message says why and what to try."""


def next_multiple(step: int, interval: int) -> int:
    """The first multiple of ``interval`` after ``step``."""
    return (step // interval + 1) * interval


def make_backend(cfg: TrainConfig, spec, learner, seeds, keys) -> Backend:
    if cfg.backend == "mjx":
        from spikerl_jax.training.device_loop import DeviceBackend

        return DeviceBackend(cfg, spec, learner, seeds, keys)
    from spikerl_jax.training.host_loop import HostBackend

    return HostBackend(cfg, spec, learner, seeds, keys)


def abstract_run_state(cfg: TrainConfig, with_env: bool = False, devices: int = 1) -> RunState:
    """The shapes and dtypes of one member's run state (for restoring checkpoints outside
    training), laid out on ``devices`` local devices as a run on that many devices lays it
    out (the replay buffer's shards); ``with_env`` adds the MJX envs' state."""
    spec = env_spec(cfg.env)
    learner = make_learner(cfg, spec, make_layout(1, make_mesh(devices)))
    keys = member_keys([cfg.seed])
    hparams = stack_hparams([hparams_from_config(cfg)])
    learner_state = jax.eval_shape(learner.init, keys["init"], hparams)
    if not (with_env and cfg.backend == "mjx"):
        return RunState(learner=learner_state)
    backend = make_backend(cfg, spec, learner, [cfg.seed], keys)
    return jax.eval_shape(backend.init_state, learner_state)


def check_memory(cfg: TrainConfig, spec, members: int) -> None:
    """Raises ``ConfigError`` when the replay buffers cannot fit in the memory of the device
    they live on (host RAM for CPUs), before anything is allocated or written."""
    floats = spec.obs_dim * 2 + spec.action_dim + 2  # obs, next_obs, action, reward, done
    need = cfg.replay_size * floats * 4 * members
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        have, where = stats["bytes_limit"] - stats.get("bytes_in_use", 0), device.device_kind
    else:
        have, where = available_host_memory(), "host RAM"
    if have is not None and need > 0.9 * have:
        raise ConfigError(
            f"the replay buffer{'s' if members > 1 else ''} need {need / 2**30:.1f} GiB "
            f"({cfg.replay_size} transitions x {floats} floats"
            + (f" x {members} members" if members > 1 else "")
            + f") but {where} has {have / 2**30:.1f} GiB free; lower --replay-size"
        )


def available_host_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is no such file)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def member_slice(tree, member: int):
    """Member ``member`` of a member-batched pytree, keeping a member axis of one."""
    return jax.tree.map(lambda x: x[member : member + 1], tree)


class Session:
    """One process's training of ``configs`` (one per member), from set-up to summaries.

    Args:
      configs: each member's config; they share everything but seeds, outputs and ``HParams``.
      resume: continue each member's run from its latest checkpoint.
      console: the rich console of the progress bar (None: stderr).

    Raises:
      ConfigError: a bad configuration (before anything is written), or a missing,
        corrupted or mismatched checkpoint.
    """

    def __init__(self, configs: list[TrainConfig], resume: bool = False, console=None):
        for cfg in configs:
            cfg.validate()
        cfg = self.cfg = configs[0]
        self.configs, self.members = configs, len(configs)
        if cfg.energy:
            check_grid(cfg.energy_country, cfg.energy_region)
        self.primary = jax.process_index() == 0  # only process 0 writes the records
        processes = jax.process_count()
        if processes > 1 and (self.members > 1 or cfg.num_envs % processes):
            raise ConfigError(
                f"multi-process runs ({processes} processes) train one member and need "
                "--num-envs divisible by the process count"
            )
        if self.members > 1:
            check_population(configs)
        self.spec = spec = env_spec(cfg.env)
        layout = make_layout(self.members, make_mesh(cfg.devices))
        check_divisible(cfg, layout)
        check_memory(cfg, spec, self.members)
        self.run_dirs = [c.run_dir() for c in configs]
        # One process trains a run at a time (the lock goes with the process). A start that
        # fails releases them: a notebook may fix the problem and retry in this process.
        self.locks: list[RunLock] = []
        # The session's programs trace in full float32 matmuls; closing it restores the
        # process's setting (a notebook's own code keeps its precision).
        self.precision = full_precision_matmuls()
        self.precision.__enter__()
        try:
            for run_dir in self.run_dirs if self.primary else []:
                self.locks.append(RunLock(run_dir))
            self._set_up(configs, layout, resume, console)
        except BaseException:
            self._release()
            raise

    def _set_up(self, configs: list[TrainConfig], layout, resume: bool, console) -> None:
        """Builds the programs and the state (restored with ``resume``), opens the records."""
        cfg, spec = self.cfg, self.spec
        self.learner = make_learner(cfg, spec, layout, varying_hparams(configs))
        seeds = [c.seed for c in configs]
        keys = member_keys(seeds)
        hparams = stack_hparams([hparams_from_config(c) for c in configs])
        self.backend = make_backend(cfg, spec, self.learner, seeds, keys)
        self.state = committed(self.backend.init_state(self.learner.init(keys["init"], hparams)))
        self.loop = LoopState(members=(MemberRecord(),) * self.members)
        self.resume_step = self.target_reached_at = None
        if resume:
            self.state, self.loop, self.resume_step = self._restore()
        # Anchored to the step, so that a resumed run may change the intervals.
        self.next_eval = next_multiple(self.loop.step, cfg.eval_every)
        self.next_checkpoint = next_multiple(self.loop.step, cfg.checkpoint_interval)
        self.last_checkpoint = self.resume_step
        self.recorders = [RunRecorder(d, c, self.resume_step, c.tensorboard)
                          for d, c in zip(self.run_dirs, configs, strict=True)
                          ] if self.primary else []  # fmt: skip
        self.checkpointers = [RunCheckpointer(d, cfg.keep_checkpoints, cfg.checkpoint_buffer)
                              for d in self.run_dirs]  # fmt: skip
        log = self._log_emissions if self.primary else None
        self.meter = EnergyMeter(cfg.energy_country, cfg.energy_region, log, self.loop.energy,
                                 enabled=cfg.energy and self.primary)  # fmt: skip
        self.progress = TrainProgress(cfg.total_steps, enabled=cfg.progress and self.primary,
                                      console=console)  # fmt: skip
        self.stop = StopRequest()
        self.t_start = time.perf_counter()
        self.window = {"t": self.t_start, "step": self.loop.step, "updates": self.loop.updates,
                       "update_s": 0.0}  # fmt: skip
        self.update_s, self.updates_at_start = 0.0, self.loop.updates
        self.metrics: dict = {}
        proxy = cfg.td3.target_actor == "proxy"
        self.loss_columns = LOSS_COLUMNS + (("proxy_loss",) if proxy else ())

    # --- set-up ----------------------------------------------------------------------------

    def _restore(self) -> tuple[RunState, LoopState, int]:
        """Every member's latest checkpoint, stacked into the population's state."""
        one = self.members == 1
        placed = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype,
                                           sharding=x.sharding if one else None),
            self.state,
        )  # fmt: skip
        restored = [restore(d, placed, "latest") for d in self.run_dirs]
        steps = {step for _, _, step in restored}
        if len(steps) > 1:
            raise ConfigError(
                f"the members' latest checkpoints are at different steps ({sorted(steps)}); "
                "delete the newer ones to resume them together"
            )
        step = steps.pop()
        loop = merge_loops([host.loop for _, host, _ in restored])
        if loop.step >= self.cfg.total_steps:
            raise ConfigError(
                f"nothing to do: {self.run_dirs[0]} is at step {loop.step}, not below "
                f"--total-steps {self.cfg.total_steps}; pass a larger --total-steps to train on"
            )
        items = [i for i, _, _ in restored]
        stacked = jax.tree.map(lambda *x: jnp.concatenate(x), *items) if not one else items[0]
        learner = self.state.learner.replace(**stacked["learner"])
        if "buffer" in stacked:
            learner = learner.replace(buffer=stacked["buffer"])
        else:  # the buffer restarts empty: updates wait until it refills
            loop = dataclasses.replace(loop, buffered=0)
        state = RunState(learner=learner, env=stacked.get("env", self.state.env))
        if not one:  # onto the layout's devices
            state = jax.device_put(state, jax.tree.map(lambda x: x.sharding, self.state))
        self.backend.restore(stack_backends([host.backend for _, host, _ in restored]))
        return state, loop, step

    # --- the schedule ----------------------------------------------------------------------

    def next_stop(self, step: int) -> int:
        """The round boundary at or after the next evaluation, checkpoint or the end."""
        cfg = self.cfg
        due = min(self.next_eval, self.next_checkpoint, cfg.total_steps)
        return -(-due // cfg.update_every) * cfg.update_every

    def eval_due(self, step: int) -> bool:
        return step >= self.next_eval or step >= self.cfg.total_steps

    def checkpoint_due(self, step: int) -> bool:
        return step >= self.next_checkpoint or step >= self.cfg.total_steps

    def account(self, before: int, loop: LoopState, stats: RoundStats) -> None:
        """Progress and throughput of an ``advance``; non-finite losses end the run."""
        self.progress.advance(loop.step - before)
        if stats.metrics is not None:
            self.metrics = stats.metrics
            self.window["update_s"] += stats.update_s
            self.update_s += stats.update_s
        if stats.nonfinite_step is not None:
            kept = "no checkpoint was saved yet"
            if self.last_checkpoint is not None:
                where = self.run_dirs[0] + "/checkpoints"
                kept = f"the last good checkpoint (step {self.last_checkpoint}) is kept in {where}"
            raise TrainingError(
                f"non-finite losses at step {stats.nonfinite_step}; {kept}. Lower "
                "--critic-lr / --actor-lr, or check the environment's observations and rewards"
            )

    # --- evaluation and records ------------------------------------------------------------

    def evaluate(self, state: RunState, step: int) -> list[EvalResult]:
        self.next_eval = next_multiple(step, self.cfg.eval_every)
        self.meter.switch("eval", step, sync=state)
        results = self.backend.evaluate(state, step)
        if step < self.cfg.total_steps:
            self.meter.switch("train", step)
        else:  # so that the final checkpoint holds the whole run's energy
            self.meter.end(step)
        return results

    def record(self, loop: LoopState, results: list[EvalResult]) -> tuple[LoopState, list[int]]:
        """Writes each member's evaluation row; returns the loop with the new records and the
        members whose best return improved."""
        cfg, spec, now = self.cfg, self.spec, time.perf_counter()
        train_returns = self.backend.take_train_returns()
        window = self.window
        records, improved = [], []
        for m, (result, record) in enumerate(zip(results, loop.members, strict=True)):
            spikes = None
            if result.spikes:  # a spiking actor
                spikes = spike_report(result.spikes, result.inferences, spec.obs_dim,
                                      spec.action_dim, cfg.actor, cfg.pj_per_synop,
                                      cfg.pj_per_mac)  # fmt: skip
            metrics = {k: v[m] for k, v in self.metrics.items()}
            row = {
                "step": loop.step,
                "eval_return": result.mean,
                "eval_return_std": result.std,
                "eval_length": result.length,
                "train_return": "" if train_returns[m] is None else train_returns[m],
                "wall_s": loop.wall_s + now - self.t_start,
                "env_steps_per_s": (loop.step - window["step"]) / (now - window["t"]),
                "updates_per_s": (loop.updates - window["updates"]) / window["update_s"]
                if window["update_s"]
                else "",
                # Empty until the first update.
                **{k: float(metrics[k]) if k in metrics else "" for k in self.loss_columns},
                "synops_per_inference": spikes["synops_per_inference"] if spikes else "",
            }
            rates = {k: v["firing_rate"] for k, v in spikes["layers"].items()} if spikes else {}
            if self.primary:
                self.recorders[m].evaluation(row, rates)
            self.progress.report(row, self.label(m))
            new_best = record.best_return is None or result.mean > record.best_return
            if new_best:
                improved.append(m)
            records.append(MemberRecord(
                best_return=result.mean if new_best else record.best_return,
                last_return=result.mean, spikes=spikes,
            ))  # fmt: skip
        self.window = {"t": now, "step": loop.step, "updates": loop.updates, "update_s": 0.0}
        return dataclasses.replace(loop, members=tuple(records)), improved

    def reached_target(self, loop: LoopState) -> bool:
        """Whether every member's latest evaluation reached ``--target-return`` (if so, the
        step is kept for the summary's ``target_reached_at``)."""
        target = self.cfg.target_return
        if target is None or not all(r.last_return >= target for r in loop.members):
            return False
        self.target_reached_at = loop.step
        return True

    def label(self, member: int) -> str:
        return "" if self.members == 1 else f"[{self.run_dirs[member]}]"

    def _log_emissions(self, row: dict) -> None:
        for recorder in self.recorders:
            recorder.emissions.write(row)

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint(self, state: RunState, loop: LoopState, best: list[int]) -> None:
        """Saves every member's state and host records (and the improved ones as best)."""
        self.next_checkpoint = next_multiple(loop.step, self.cfg.checkpoint_interval)
        loop = self.totals(loop)
        backend = self.backend.snapshot()
        for m, checkpointer in enumerate(self.checkpointers):
            member_state = state if self.members == 1 else member_slice(state, m)
            host = HostCheckpoint(loop=member_loop(loop, m), backend=member_backend(backend, m))
            checkpointer.save(loop.step, member_state, host, best=m in best)
        self.last_checkpoint = loop.step

    def totals(self, loop: LoopState) -> LoopState:
        """``loop`` with the time and energy of every process so far, this one included."""
        seconds = time.perf_counter() - self.t_start
        start = self.resume_step or 0
        return dataclasses.replace(
            loop, energy=self.meter.totals(), wall_s=loop.wall_s + seconds,
            segments=(*loop.segments, (start, loop.step, seconds)),
        )  # fmt: skip

    def interrupted(self, step: int) -> Interrupted:
        resume = "--resume " + " ".join(self.run_dirs)
        return Interrupted(f"interrupted by {self.stop.name} at step {step}", resume,
                           self.stop.signum or 2)  # fmt: skip

    # --- the end ---------------------------------------------------------------------------

    def __enter__(self) -> Session:
        self.progress.__enter__()
        self.stop.__enter__()
        self.progress.advance(self.loop.step)
        self.meter.begin("train")
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop.__exit__(*exc)
            self.progress.__exit__(*exc)
        finally:
            self._release()

    def _release(self) -> None:
        """Closes what the session opened, as far as its start got (a failed start too)."""
        if hasattr(self, "meter"):
            self.meter.close()
        for checkpointer in getattr(self, "checkpointers", []):
            checkpointer.wait()
            checkpointer.close()
        for recorder in getattr(self, "recorders", []):
            recorder.close()
        if hasattr(self, "backend"):
            self.backend.close()
        for lock in self.locks:
            lock.release()
        self.precision.__exit__(None, None, None)

    def finish(self, state: RunState, loop: LoopState) -> list[dict]:
        """Ends the measurement and writes every member's ``summary.json``."""
        self.meter.end(loop.step, sync=state)
        totals = self.totals(loop)
        energy = self.meter.report()
        summaries = []
        for m, (cfg, record) in enumerate(zip(self.configs, loop.members, strict=True)):
            summary = {
                "env": cfg.env,
                "seed": cfg.seed,
                "total_steps": loop.step,
                "final_eval_return": record.last_return,
                "best_eval_return": record.best_return,
                "wall_s": totals.wall_s,
                "segments": [list(s) for s in totals.segments],
                "env_steps_per_s": (loop.step - (self.resume_step or 0))
                / (time.perf_counter() - self.t_start),
                "updates": loop.updates,
                "updates_per_s": (loop.updates - self.updates_at_start) / self.update_s
                if self.update_s
                else None,
                "resumed_from": self.resume_step,
                "target_reached_at": self.target_reached_at,
                "run_dir": self.run_dirs[m],
                "devices": self.learner.layout.devices,
                "global_batch_size": cfg.td3.batch_size * (
                    self.learner.layout.devices if self.learner.layout.mode == "data" else 1
                ),
                "members": self.members,
                "energy": share_energy(energy, self.members),
                "spikes": record.spikes,
            }  # fmt: skip
            if self.primary:
                self.recorders[m].summary(summary)
            summaries.append(summary)
        return summaries


def share_energy(report: dict, members: int) -> dict:
    """A member's share of the process's energy report: energy and emissions divided equally
    between the ``members`` trained together (durations stay: each member took that long)."""
    if members == 1 or not report.get("enabled"):
        return report
    divided = ("energy_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh",
               "emissions_kg", "mean_power_w")  # fmt: skip
    out = dict(report, shared_by=members)
    for phase in ("train", "eval", "total"):
        out[phase] = {k: (v / members if k in divided and v is not None else v)
                      for k, v in report[phase].items()}  # fmt: skip
    return out

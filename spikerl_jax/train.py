"""Training: ``make_learner`` (the compiled pieces) and ``train`` (the host-env loop).

The host backend steps Gymnasium environments from Python; everything else is compiled:
one jitted call per round inserts the round's transitions into the on-device replay buffer,
updates the observation normalizer and runs all of the round's TD3 updates in a ``lax.scan``.

    from spikerl_jax import TrainConfig
    from spikerl_jax.train import train
    summary = train(TrainConfig(env="InvertedPendulum-v4", total_steps=20_000))
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from spikerl_jax.activity import spike_report
from spikerl_jax.checkpoint import RunCheckpointer
from spikerl_jax.checkpoint import restore as restore_checkpoint
from spikerl_jax.config import ConfigError, TrainConfig
from spikerl_jax.energy import EnergyMeter, check_grid
from spikerl_jax.envs.gymnasium_backend import (
    EnvSpec,
    env_spec,
    get_env_state,
    make_eval_envs,
    make_vector_env,
    set_env_state,
)
from spikerl_jax.networks import make_networks
from spikerl_jax.parallel import (
    AXIS,
    check_divisible,
    global_buffer,
    local_buffer,
    make_mesh,
    replay_init_sharded,
    shardings,
    state_specs,
)
from spikerl_jax.precision import set_matmul_precision
from spikerl_jax.replay import (
    Normalizer,
    ReplayBuffer,
    Transition,
    normalize,
    normalizer_init,
    normalizer_update,
    replay_add,
    replay_init,
    sample_normalized,
)
from spikerl_jax.runlog import RunRecorder
from spikerl_jax.td3 import TD3State, make_td3

LOSS_COLUMNS = ("critic_loss", "actor_loss", "q", "critic_grad_norm", "actor_grad_norm")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. non-finite losses); the message says why and what to try."""


@flax.struct.dataclass
class TrainState:
    """The whole learner on device."""

    td3: TD3State
    buffer: ReplayBuffer
    normalizer: Normalizer
    key: jax.Array  # for update rounds: batch sampling, smoothing noise, encoder spikes


class Learner(NamedTuple):
    """Compiled functions of one run; the host loop calls only these."""

    init: Callable[[jax.Array], TrainState]
    policy: Callable  # (actor_params, normalizer, obs_BD, key) -> deterministic action (B, A)
    policy_spikes: Callable  # as policy -> (action (B, A), {layer: spikes per example (B,)})
    explore: Callable  # (actor_params, normalizer, obs_BD, key, step) -> noisy action (B, A)
    ingest: Callable  # (TrainState, Transition) -> TrainState
    ingest_and_update: Callable  # (TrainState, Transition) -> (TrainState, metrics)
    # The per-device bodies of the two above (inside shard_map when data parallel), for
    # programs that compose them, such as the on-device loop.
    local_ingest: Callable
    local_ingest_and_update: Callable
    mesh: Mesh | None  # the data-parallel mesh; None: one device, no collectives


def make_learner(cfg: TrainConfig, spec: EnvSpec, mesh: Mesh | None = None) -> Learner:
    """Builds the jitted init, policies and round functions for ``cfg`` on a task of ``spec``.

    With a ``mesh`` of more than one device the rounds are data parallel
    (``spikerl_jax.parallel``): the transitions passed in are split across the devices'
    replay shards and every update averages the devices' gradients.
    """
    parallel = mesh is not None and mesh.size > 1
    mesh = mesh if parallel else None
    networks = make_networks(spec.action_dim, spec.action_limit, cfg.actor, cfg.critic)
    td3 = make_td3(networks, cfg.td3, axis_name=AXIS if parallel else None)
    num_blocks = cfg.updates_per_round // cfg.td3.policy_delay
    limit = spec.action_limit

    def init(key: jax.Array) -> TrainState:
        key_td3, key_update = jax.random.split(key)
        if parallel:
            buffer = replay_init_sharded(mesh.size, cfg.replay_size, spec.obs_dim,
                                         spec.action_dim)  # fmt: skip
        else:
            buffer = replay_init(cfg.replay_size, spec.obs_dim, spec.action_dim)
        return TrainState(
            td3=td3.init(key_td3, spec.obs_dim),
            buffer=buffer,
            normalizer=normalizer_init(spec.obs_dim),
            key=key_update,
        )

    def policy(actor_params, norm: Normalizer, obs_BD: jax.Array, key: jax.Array):
        return networks.actor.apply(actor_params, normalize(norm, obs_BD, cfg.obs_clip), key)

    def policy_spikes(actor_params, norm: Normalizer, obs_BD: jax.Array, key: jax.Array):
        obs_BD = normalize(norm, obs_BD, cfg.obs_clip)
        action, counts = networks.actor.apply(actor_params, obs_BD, key, return_spike_counts=True)
        return action, {layer: c.sum(-1) for layer, c in counts.items()}

    def explore(actor_params, norm: Normalizer, obs_BD: jax.Array, key: jax.Array, step):
        key_noise, key_encoder = jax.random.split(jax.random.fold_in(key, step))
        action = policy(actor_params, norm, obs_BD, key_encoder)
        noise = cfg.exploration_noise * jax.random.normal(key_noise, action.shape)
        return jnp.clip(action + noise, -limit, limit)

    def local_ingest(state: TrainState, chunk: Transition) -> TrainState:
        # The normalizer is replicated: every device folds in every device's observations.
        obs = jax.lax.all_gather(chunk.obs, AXIS, tiled=True) if parallel else chunk.obs
        return state.replace(
            buffer=replay_add(state.buffer, chunk),
            normalizer=normalizer_update(state.normalizer, obs),
        )

    def local_ingest_and_update(state: TrainState, chunk: Transition):
        state = local_ingest(state, chunk)
        key, key_update = jax.random.split(state.key)
        if parallel:  # own batches per device; the state's key stays replicated
            key_update = jax.random.fold_in(key_update, jax.lax.axis_index(AXIS))

        def sample(k):
            return sample_normalized(
                state.buffer, state.normalizer, k, cfg.td3.batch_size, cfg.obs_clip
            )

        td3_state, metrics = td3.update(state.td3, sample, key_update, num_blocks)
        return state.replace(td3=td3_state, key=key), metrics

    ingest, ingest_and_update, init_out = local_ingest, local_ingest_and_update, None
    if parallel:
        specs = state_specs(TrainState)
        init_out = shardings(mesh, specs)

        def per_device(fn, with_metrics):
            def body(state, chunk):
                out = fn(state.replace(buffer=local_buffer(state.buffer)), chunk)
                new = out[0] if with_metrics else out
                new = new.replace(buffer=global_buffer(new.buffer))
                return (new, out[1]) if with_metrics else new

            out_specs = (specs, P()) if with_metrics else specs
            # check_vma=False: gradients of the replicated parameters stay per device (the
            # all-reduce is TD3's explicit pmean), rather than being summed implicitly.
            return jax.shard_map(body, mesh=mesh, in_specs=(specs, P(AXIS)),
                                 out_specs=out_specs, check_vma=False)  # fmt: skip

        ingest = per_device(local_ingest, with_metrics=False)
        ingest_and_update = per_device(local_ingest_and_update, with_metrics=True)

    return Learner(
        init=jax.jit(init, out_shardings=init_out),
        policy=jax.jit(policy),
        policy_spikes=jax.jit(policy_spikes),
        explore=jax.jit(explore),
        ingest=jax.jit(ingest, donate_argnums=0),
        ingest_and_update=jax.jit(ingest_and_update, donate_argnums=0),
        local_ingest=local_ingest,
        local_ingest_and_update=local_ingest_and_update,
        mesh=mesh,
    )


class EvalResult(NamedTuple):
    """Deterministic episodes' returns and the actor's spikes over all their steps."""

    mean: float
    std: float
    length: float  # mean episode length
    spikes: dict[str, float]  # layer -> spikes summed over neurons, timesteps, inferences
    inferences: int  # single-observation actor calls the spike totals cover


def evaluate(act: Callable, envs) -> EvalResult:
    """One deterministic episode per env, ``act`` batched over the envs still running.

    Args:
      act: observations ``(E, D)`` to actions ``(E, A)``, or to ``(actions, spikes)`` with
        ``spikes`` a ``{layer: (E,)}`` count per observation (then they are totalled over the
        envs still running).
      envs: ``E`` Gymnasium envs (reset here; their RNGs continue from call to call).
    """
    obs = np.stack([env.reset()[0] for env in envs])
    returns, lengths = np.zeros(len(envs)), np.zeros(len(envs), dtype=np.int64)
    running = np.ones(len(envs), dtype=bool)
    spikes: dict[str, float] = {}
    while running.any():
        out = act(obs)
        action = np.asarray(out[0] if isinstance(out, tuple) else out)
        if isinstance(out, tuple):
            for layer, count in jax.device_get(out[1]).items():
                spikes[layer] = spikes.get(layer, 0.0) + float(count[running].sum())
        for i in np.flatnonzero(running):
            obs[i], reward, terminated, truncated, _ = envs[i].step(action[i])
            returns[i] += reward
            lengths[i] += 1
            running[i] = not (terminated or truncated)
    return EvalResult(float(returns.mean()), float(returns.std()), float(lengths.mean()),
                      spikes, int(lengths.sum()))  # fmt: skip


class HostCollector:
    """Steps Gymnasium vector envs and stages their transitions until the round is ingested.

    A finished episode's transition stores its true last observation (``info["final_obs"]``,
    same-step auto-reset) as ``next_obs`` and ``terminated`` as Gymnasium reports it, so a
    time-limit truncation is stored as non-terminal and bootstraps.
    """

    def __init__(self, envs, spec: EnvSpec, capacity: int, seed: int):
        self.envs = envs
        self.obs, _ = envs.reset(seed=seed)
        self._stage = {
            "obs": np.zeros((capacity, spec.obs_dim), np.float32),
            "action": np.zeros((capacity, spec.action_dim), np.float32),
            "reward": np.zeros(capacity, np.float32),
            "next_obs": np.zeros((capacity, spec.obs_dim), np.float32),
            "terminated": np.zeros(capacity, np.float32),
        }
        self._size = 0
        self._episode_return = np.zeros(envs.num_envs)
        self.finished_returns: list[float] = []

    def step(self, action: np.ndarray) -> None:
        """Steps every env with ``action`` ``(N, A)`` and stages the ``N`` transitions."""
        next_obs, reward, terminated, truncated, info = self.envs.step(action)
        done = terminated | truncated
        final_obs = next_obs.copy()
        for j in np.flatnonzero(done):
            final_obs[j] = info["final_obs"][j]
        rows = slice(self._size, self._size + len(action))
        fields = dict(obs=self.obs, action=action, reward=reward, next_obs=final_obs,
                      terminated=terminated)  # fmt: skip
        for name, value in fields.items():
            self._stage[name][rows] = value
        self._size += len(action)
        self._episode_return += reward
        self.finished_returns.extend(self._episode_return[done].tolist())
        self._episode_return[done] = 0.0
        self.obs = next_obs

    def get_state(self) -> dict:
        """The collector's and its envs' state between rounds (JSON-able; stage is empty)."""
        assert self._size == 0, "checkpoint only between rounds"
        return {
            "obs": self.obs.tolist(),
            "episode_return": self._episode_return.tolist(),
            "finished_returns": list(self.finished_returns),
            "envs": [get_env_state(env) for env in self.envs.envs],
        }

    def set_state(self, state: dict) -> None:
        self.obs = np.asarray(state["obs"], self.obs.dtype)
        self._episode_return = np.asarray(state["episode_return"])
        self.finished_returns = list(state["finished_returns"])
        for env, env_state in zip(self.envs.envs, state["envs"], strict=True):
            set_env_state(env, env_state)

    def take(self) -> Transition:
        """The staged transitions as device arrays; the stage starts empty again."""
        chunk = Transition(**{k: jnp.asarray(v[: self._size]) for k, v in self._stage.items()})
        self._size = 0
        return chunk


def _next_multiple(step: int, interval: int) -> int:
    """The first multiple of ``interval`` after ``step``."""
    return (step // interval + 1) * interval


class HostBackend:
    """The Gymnasium backend: envs stepped from Python, one compiled call per round.

    A backend owns the environments and advances the run: ``advance`` collects one round
    (``update_every`` steps) and ingests it, updating when due; ``evaluate`` runs the
    deterministic episodes; ``snapshot``/``restore`` give its checkpointable state.
    """

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, learner: Learner, key_explore, key_eval):
        self.cfg, self.spec, self.learner = cfg, spec, learner
        self.key_explore, self.key_eval = key_explore, key_eval
        # With several processes each steps its share of the envs (its own seeds) and feeds
        # its rows of every round to its devices' replay shards.
        self.processes = jax.process_count()
        seed = cfg.seed + 7919 * jax.process_index()
        self.rng = np.random.default_rng(seed)  # uniform random actions of the first phase
        self.envs = make_vector_env(cfg.env, cfg.num_envs // self.processes)
        self.collector = HostCollector(self.envs, spec, cfg.update_every // self.processes, seed)
        self.eval_envs = make_eval_envs(cfg.env, cfg.eval_episodes, seed + 1_000_003)
        self._rows = None
        if self.processes > 1:
            self._rows = jax.sharding.NamedSharding(learner.mesh, P(AXIS))

    def _local(self, tree):
        """With a mesh, acting runs on one device's copy of the replicated parameters: not
        once per device, and with several processes, each on its own (a global array may
        only meet inputs that are equal on every process)."""
        if self.learner.mesh is None:
            return tree
        return jax.tree.map(lambda x: x.addressable_data(0), tree)

    def advance(self, state: TrainState, host: dict):
        """One round: ``update_every`` env steps (fewer at the run's end), then the replay
        insert and, once ``update_after`` transitions are in, the round's updates.

        Returns:
          The new state, the round's update metrics (None without updates), and the seconds
          spent updating.
        """
        cfg, spec, n = self.cfg, self.spec, self.cfg.num_envs
        step = host["step"]
        fill = min(cfg.update_every, (cfg.total_steps - step) // n * n) or n
        n_local = n // self.processes
        actor, normalizer = self._local((state.td3.actor_params, state.normalizer))
        for _ in range(0, fill // self.processes, n_local):
            if step < cfg.start_steps:
                action = self.rng.uniform(-spec.action_limit, spec.action_limit,
                                          (n_local, spec.action_dim))  # fmt: skip
            else:
                action = np.asarray(self.learner.explore(
                    actor, normalizer, self.collector.obs, self.key_explore, step,
                ))  # fmt: skip
            self.collector.step(action)
            step += n
        host["step"] = step
        host["buffered"] = min(host["buffered"] + fill, cfg.replay_size)
        chunk = self.collector.take()
        if self._rows is not None:
            chunk = jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(self._rows, np.asarray(x)), chunk
            )
        ready = step >= cfg.update_after and host["buffered"] >= cfg.update_after
        if not (ready and fill == cfg.update_every):
            return self.learner.ingest(state, chunk), None, 0.0
        t0 = time.perf_counter()
        state, metrics = self.learner.ingest_and_update(state, chunk)
        metrics = jax.device_get(metrics)
        host["updates"] += cfg.updates_per_round
        return state, metrics, time.perf_counter() - t0

    def evaluate(self, state: TrainState, step: int) -> EvalResult:
        key = jax.random.fold_in(self.key_eval, step)
        actor, normalizer = self._local((state.td3.actor_params, state.normalizer))
        act = functools.partial(self.learner.policy_spikes, actor, normalizer, key=key)
        result = evaluate(act, self.eval_envs)
        if self.processes == 1:
            return result
        # Every process ran eval_episodes episodes: report the mean over all of them.
        layers = sorted(result.spikes)
        mine = np.array([result.mean, result.std, result.length, result.inferences,
                         *(result.spikes[k] for k in layers)])  # fmt: skip
        every = np.asarray(multihost_utils.process_allgather(mine))  # (processes, fields)
        mean = float(every[:, 0].mean())
        second_moment = float(np.mean(every[:, 1] ** 2 + every[:, 0] ** 2))
        return EvalResult(mean, max(second_moment - mean**2, 0.0) ** 0.5,
                          float(every[:, 2].mean()),
                          {k: float(every[:, 4 + i].sum()) for i, k in enumerate(layers)},
                          int(every[:, 3].sum()))  # fmt: skip

    def take_train_return(self) -> float | None:
        """Mean return of the training episodes finished since the last call (on every
        process)."""
        returns = self.collector.finished_returns
        total, count = float(np.sum(returns)), len(returns)
        returns.clear()
        if self.processes > 1:
            every = np.asarray(multihost_utils.process_allgather(np.array([total, count])))
            total, count = float(every[:, 0].sum()), int(every[:, 1].sum())
        return total / count if count else None

    def snapshot(self) -> dict:
        return {
            "rng": self.rng.bit_generator.state,
            "collector": self.collector.get_state(),
            "eval_rngs": [env.unwrapped.np_random.bit_generator.state for env in self.eval_envs],
        }

    def restore(self, saved: dict) -> None:
        self.rng.bit_generator.state = saved["rng"]
        self.collector.set_state(saved["collector"])
        for env, env_rng in zip(self.eval_envs, saved["eval_rngs"], strict=True):
            env.unwrapped.np_random.bit_generator.state = env_rng

    def close(self) -> None:
        self.envs.close()


class _StopRequest:
    """Turns SIGINT into a flag the loop reads between rounds (so the saved state is whole)."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)


class Interrupted(RuntimeError):
    """SIGINT stopped training after a checkpoint was saved."""


def train(cfg: TrainConfig, console=None, resume: bool = False) -> dict:
    """Trains PopSAN-TD3 on a Gymnasium task with the paper's schedule; returns the summary.

    Writes ``config.json``, ``metrics.csv``, ``emissions.csv``, ``summary.json``,
    ``tensorboard/`` and ``checkpoints/`` into ``cfg.run_dir()``. With ``resume``, continues
    that directory's run from its latest checkpoint: with the buffer checkpointed
    (``checkpoint_buffer``) the result is identical to an uninterrupted run; without it, the
    buffer restarts empty and updates pause until it holds ``update_after`` transitions again.

    Raises:
      ConfigError: a bad configuration value (validated before anything is written), or a
        missing, corrupted or mismatched checkpoint.
      TrainingError: the losses became non-finite (the last good checkpoint stays).
      Interrupted: SIGINT; a checkpoint of the last finished round was saved first.
    """
    from spikerl_jax.progress import TrainProgress

    cfg.validate()
    if cfg.energy:
        check_grid(cfg.energy_country, cfg.energy_region)
    primary = jax.process_index() == 0  # only process 0 writes the run's records
    if jax.process_count() > 1 and (resume or cfg.num_envs % jax.process_count()):
        raise ConfigError(
            f"multi-process runs ({jax.process_count()} processes) need --num-envs divisible "
            "by the process count and cannot --resume yet"
        )
    if resume and cfg.backend == "mjx":
        raise ConfigError(
            "--resume is not available for --backend mjx runs yet (their environment state "
            "lives on the device and is not checkpointed); evaluate or export the run's "
            "checkpoints, or start a new run"
        )
    set_matmul_precision()
    spec = env_spec(cfg.env)
    run_dir = cfg.run_dir()
    mesh = make_mesh(cfg.devices)
    check_divisible(cfg, mesh.size)
    learner = make_learner(cfg, spec, mesh)

    key = jax.random.key(cfg.seed)
    key_init, key_explore, key_eval = jax.random.split(key, 3)
    state = learner.init(key_init)
    if cfg.backend == "mjx":
        from spikerl_jax.ondevice import DeviceBackend as Backend
    else:
        Backend = HostBackend
    backend = Backend(cfg, spec, learner, key_explore, key_eval)
    host = {"step": 0, "updates": 0, "buffered": 0, "best": None, "last_eval": None,
            "energy": {}, "spikes": None}  # fmt: skip

    resume_step = None
    if resume:
        learner_state, buffer, saved, resume_step = restore_checkpoint(
            run_dir, jax.eval_shape(learner.init, key_init)
        )
        state = state.replace(**learner_state)
        if buffer is not None:
            state = state.replace(buffer=buffer)
        host = saved["loop"]
        host["buffered"] = host["buffered"] if buffer is not None else 0
        backend.restore(saved)
    # Anchored to the step, so that a resumed run may change the intervals.
    host["next_eval"] = _next_multiple(host["step"], cfg.eval_every)
    host["next_checkpoint"] = _next_multiple(host["step"], cfg.checkpoint_interval)
    recorder = RunRecorder(run_dir, cfg, resume_step, cfg.tensorboard) if primary else None
    checkpointer = RunCheckpointer(run_dir, cfg.keep_checkpoints, cfg.checkpoint_buffer)
    meter = EnergyMeter(cfg.energy_country, cfg.energy_region,
                        recorder.emissions.write if primary else None, host["energy"],
                        enabled=cfg.energy and primary)  # fmt: skip

    def host_state() -> dict:
        host["energy"] = meter.totals()
        return {"loop": dict(host), **backend.snapshot()}

    metrics: dict = {}
    update_s_total, updates_at_start = 0.0, host["updates"]
    t_start = time.perf_counter()
    mark = {"t": t_start, "step": host["step"], "updates": host["updates"], "update_s": 0.0}
    progress = TrainProgress(cfg.total_steps, enabled=cfg.progress and primary, console=console)
    try:
        with progress, _StopRequest() as stop:
            progress.advance(host["step"])
            meter.begin("train")
            while host["step"] < cfg.total_steps:
                before = host["step"]
                state, round_metrics, update_s = backend.advance(state, host)
                step = host["step"]
                if round_metrics is not None:
                    metrics = round_metrics
                    mark["update_s"] += update_s
                    update_s_total += update_s
                    if not all(np.isfinite(v) for v in metrics.values()):
                        raise TrainingError(
                            f"non-finite losses at step {step} ({metrics}); the last good "
                            f"checkpoint is kept in {run_dir}/checkpoints. Lower --critic-lr / "
                            "--actor-lr, or check the environment's observations and rewards"
                        )
                progress.advance(step - before)

                new_best = False
                if step >= host["next_eval"] or step >= cfg.total_steps:
                    host["next_eval"] = _next_multiple(step, cfg.eval_every)
                    meter.switch("eval", step, sync=state)
                    result = backend.evaluate(state, step)
                    if step < cfg.total_steps:
                        meter.switch("train", step)
                    else:  # so that the final checkpoint holds the whole run's energy
                        meter.end(step)
                    ret = result.mean
                    host["spikes"] = spike_report(
                        result.spikes, result.inferences, spec.obs_dim, spec.action_dim,
                        cfg.actor, cfg.pj_per_synop, cfg.pj_per_mac,
                    )  # fmt: skip
                    now = time.perf_counter()
                    train_return = backend.take_train_return()
                    row = {
                        "step": step,
                        "eval_return": ret,
                        "eval_return_std": result.std,
                        "eval_length": result.length,
                        "train_return": "" if train_return is None else train_return,
                        "wall_s": now - t_start,
                        "env_steps_per_s": (step - mark["step"]) / (now - mark["t"]),
                        "updates_per_s": (host["updates"] - mark["updates"]) / mark["update_s"]
                        if mark["update_s"]
                        else "",
                        # Empty until the first update.
                        **{k: float(metrics[k]) if k in metrics else "" for k in LOSS_COLUMNS},
                        "synops_per_inference": host["spikes"]["synops_per_inference"],
                    }
                    rates = {k: v["firing_rate"] for k, v in host["spikes"]["layers"].items()}
                    if primary:
                        recorder.evaluation(row, rates)
                    progress.report(row)
                    new_best = host["best"] is None or ret > host["best"]
                    host["best"] = ret if new_best else host["best"]
                    host["last_eval"] = ret
                    mark.update(t=now, step=step, updates=host["updates"], update_s=0.0)
                due = step >= host["next_checkpoint"] or step >= cfg.total_steps
                if due or new_best or stop.requested:
                    host["next_checkpoint"] = _next_multiple(step, cfg.checkpoint_interval)
                    checkpointer.save(step, state, host_state(), best=new_best)
                if stop.requested:
                    raise Interrupted(
                        f"interrupted at step {step}; checkpoint saved, continue with "
                        f"--resume {run_dir}"
                    )
            meter.end(host["step"], sync=state)
    finally:
        meter.close()
        checkpointer.wait()
        checkpointer.close()
        if primary:
            recorder.close()
        backend.close()

    wall = time.perf_counter() - t_start
    summary = {
        "env": cfg.env,
        "seed": cfg.seed,
        "total_steps": host["step"],
        "final_eval_return": host["last_eval"],
        "best_eval_return": host["best"],
        "wall_s": wall,
        "env_steps_per_s": (host["step"] - (resume_step or 0)) / wall,
        "updates": host["updates"],
        "updates_per_s": (host["updates"] - updates_at_start) / update_s_total
        if update_s_total
        else None,
        "resumed_from": resume_step,
        "run_dir": run_dir,
        "devices": mesh.size,
        "global_batch_size": cfg.td3.batch_size * mesh.size,
        "energy": meter.report(),
        "spikes": host["spikes"],
    }
    if primary:
        recorder.summary(summary)
    return summary

"""Building a population's run: its checks before anything is written, its layout, learner,
backend and fresh state."""

from __future__ import annotations

from typing import NamedTuple

import jax

from spikerl_jax.config import ConfigError, TrainConfig, check_fits
from spikerl_jax.envs.registry import EnvSpec, env_spec
from spikerl_jax.processes import available_host_memory
from spikerl_jax.reporting.energy import check_grid
from spikerl_jax.sweep_spec import check_population
from spikerl_jax.training.backend import Backend
from spikerl_jax.training.learner import Learner, make_learner
from spikerl_jax.training.members import members_of
from spikerl_jax.training.parallel import check_divisible, make_layout, make_mesh
from spikerl_jax.training.state import RunState, committed


def check_run(configs: list[TrainConfig], validated: bool = False) -> None:
    """Raises ``ConfigError`` for anything that would fail later: each config's values (but
    where ``validated``: a sweep's spec has checked them), the grid of the carbon figures, a
    population's shared settings, the process and device counts and the memory of the
    replay buffers."""
    for cfg in () if validated else configs:
        cfg.validate()
    cfg = configs[0]
    if cfg.energy:
        check_grid(cfg.energy_country, cfg.energy_region)
    processes = jax.process_count()
    if processes > 1 and cfg.num_envs % processes:
        raise ConfigError(
            f"multi-process runs ({processes} processes) need --num-envs divisible by the "
            "process count: each process steps its share of every member's envs"
        )
    if len(configs) > 1:
        check_population(configs)
    check_divisible(cfg, make_layout(len(configs), make_mesh(cfg.devices)))
    try:
        spec = env_spec(cfg.env)  # makes a task outside the table once, to read its spaces
    except ValueError as e:
        raise ConfigError(str(e)) from None
    check_memory(cfg, spec, len(configs))


def check_memory(cfg: TrainConfig, spec: EnvSpec, members: int) -> None:
    """Raises ``ConfigError`` when what the run holds (``config.memory``: networks, replay
    buffers, activations, envs) cannot fit in the memory it lives in, before anything is
    allocated or written."""
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
        check_fits(cfg, spec, members, free, device.device_kind, host=False)
        check_fits(cfg, spec, members, available_host_memory(), "host RAM", host=True)
    else:  # the device is the host (or says nothing of its memory)
        check_fits(cfg, spec, members, available_host_memory(), "host RAM")


class Population(NamedTuple):
    """A population's compiled pieces, its backend and its fresh state."""

    spec: EnvSpec
    learner: Learner
    backend: Backend
    state: RunState


def build(configs: list[TrainConfig]) -> Population:
    """The learner, backend and freshly initialised state of the members ``configs`` (they
    share everything but seeds, outputs and the sweepable settings)."""
    cfg = configs[0]
    spec = env_spec(cfg.env)
    learner = make_learner(cfg, spec, make_layout(len(configs), make_mesh(cfg.devices)))
    members = members_of(configs)
    if cfg.backend == "mjx":
        from spikerl_jax.training.device_loop import DeviceBackend as Backend  # imports MJX
    else:
        from spikerl_jax.training.host_loop import HostBackend as Backend  # imports Gymnasium
    backend = Backend(cfg, spec, learner, members)
    learner_state = learner.init(members.keys["init"], members.hparams, members.encoder_std)
    env = backend.init_env() if cfg.backend == "mjx" else None
    best = RunState(learner=learner_state, best=None).policy
    state = committed(
        RunState(learner=learner_state, best=jax.tree.map(jax.numpy.copy, best), env=env)
    )
    return Population(spec, learner, backend, state)

"""Data parallelism over devices and hosts: the mesh, the learner state's layout, and
``jax.distributed`` start-up.

One code path for 1 device, N devices and N hosts: a 1-D mesh with axis ``data``. Parameters,
optimizer states, the observation normalizer and the update key are replicated; each device
owns a shard of the replay buffer (its own ring of ``replay_size / devices`` transitions, fed
by its own environments) and draws its own batches (its key folded with its index).
Gradients are averaged across the axis before every optimizer step (``lax.pmean``: an NCCL
all-reduce on GPUs, gloo on CPUs across processes), so the replicas stay identical and one
step equals a step on the concatenated per-device batches. Per-device batch size is
``--batch-size`` (as PyTorch DDP, the paper's setting); the global batch is that times the
device count.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from spikerl_jax.config import ConfigError
from spikerl_jax.replay import ReplayBuffer, replay_init

AXIS = "data"


def make_mesh(devices: int | None = None) -> Mesh:
    """A ``data`` mesh over ``devices`` local devices per process (None: all of them) of
    every process."""
    local = jax.local_devices()
    count = len(local) if devices is None else devices
    if not 1 <= count <= len(local):
        raise ConfigError(
            f"--devices {count}: this process has {len(local)} {jax.default_backend()} device(s)"
        )
    chosen = [
        device
        for process in range(jax.process_count())
        for device in sorted((d for d in jax.devices() if d.process_index == process),
                             key=lambda d: d.id)[:count]
    ]  # fmt: skip
    # Auto axes: jit and shard_map move inputs onto the mesh as needed (e.g. a chunk of
    # transitions built on the host), instead of requiring them placed beforehand.
    return jax.make_mesh((len(chosen),), (AXIS,), devices=chosen,
                         axis_types=(jax.sharding.AxisType.Auto,))  # fmt: skip


def check_divisible(cfg, devices: int) -> None:
    """Raises ``ConfigError`` unless the run's sizes split evenly across ``devices``."""
    if devices == 1:
        return
    sizes = {"--replay-size": cfg.replay_size, "--update-every": cfg.update_every}
    if cfg.backend == "mjx":
        sizes["--num-envs"] = cfg.num_envs
    for flag, value in sizes.items():
        if value % devices:
            raise ConfigError(
                f"{flag} ({value}) must be a multiple of the device count ({devices}): each "
                "device takes an equal share"
            )


def replay_init_sharded(devices: int, capacity: int, obs_dim: int, action_dim: int):
    """A buffer of ``capacity`` transitions in ``devices`` equal shards: the data's leading
    axis is split across the mesh, and each shard has its own insert position and size."""
    if capacity % devices:
        raise ConfigError(
            f"--replay-size ({capacity}) must be a multiple of the device count ({devices})"
        )
    buffer = replay_init(capacity, obs_dim, action_dim)
    zeros = jnp.zeros((devices,), jnp.int32)
    return buffer.replace(insert_pos=zeros, size=zeros)


def local_buffer(buffer: ReplayBuffer) -> ReplayBuffer:
    """Inside ``shard_map``: this device's shard as an ordinary buffer."""
    return buffer.replace(insert_pos=buffer.insert_pos[0], size=buffer.size[0])


def global_buffer(buffer: ReplayBuffer) -> ReplayBuffer:
    """The inverse of ``local_buffer``."""
    return buffer.replace(insert_pos=buffer.insert_pos[None], size=buffer.size[None])


def state_specs(state_cls):
    """Partition specs of a ``TrainState``: the buffer split on ``data``, the rest
    replicated."""
    return state_cls(td3=P(), buffer=P(AXIS), normalizer=P(), key=P())


def shardings(mesh: Mesh, specs):
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                        is_leaf=lambda x: isinstance(x, P))  # fmt: skip


def init_distributed(
    coordinator: str | None = None, num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:  # fmt: skip
    """Starts ``jax.distributed`` from arguments or ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``; returns whether it did (one process: no).

    CPU processes exchange collectives over gloo.
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num = num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "1"))
    pid = process_id if process_id is not None else os.environ.get("JAX_PROCESS_ID")
    if coordinator is None or num <= 1:
        return False
    if pid is None:
        raise ConfigError("multi-process training needs a process id (--process-id or "
                          "JAX_PROCESS_ID)")  # fmt: skip
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num,
                               process_id=int(pid))  # fmt: skip
    return True

"""Data parallelism over devices and hosts: the mesh, the learner state's layout, and
``jax.distributed`` start-up.

One code path for 1 device, N devices and N hosts: a 1-D mesh with axis ``data``. In the
data-parallel layout (``Layout``; a population may instead split whole members across the
devices) parameters,
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

import dataclasses
import os
from typing import Literal

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from spikerl_jax.config import ConfigError
from spikerl_jax.rl.replay import ReplayBuffer, replay_init

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


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a run's ``M`` members and its data spread over the devices.

    Modes:
      - ``single``: one device; the members are vmapped (or, for one member, run as is).
      - ``members``: ``M`` divides by the device count: each device runs ``M / devices`` whole
        members (vmapped), with no collectives.
      - ``data``: each member's data is split across every device (the DDP scheme above;
        members, if several, vmapped on every device).

    Attributes:
      mesh: the ``data`` mesh (None: one device).
      members: ``M``.
      mode: ``single``, ``members`` or ``data``.
    """

    mesh: Mesh | None
    members: int
    mode: Literal["single", "members", "data"]

    @property
    def devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.size

    @property
    def local_members(self) -> int:
        """Members each device runs."""
        return self.members // self.devices if self.mode == "members" else self.members

    @property
    def axis_name(self) -> str | None:
        """The axis TD3 averages gradients over (data mode only)."""
        return AXIS if self.mode == "data" else None

    def spec(self, per_member_axis: int | None) -> P:
        """The partition spec of an array with a leading member axis whose axis
        ``1 + per_member_axis`` is split in data mode (None: replicated in data mode)."""
        if self.mode == "members":
            return P(AXIS)
        if self.mode == "data" and per_member_axis is not None:
            return P(None, *([None] * per_member_axis), AXIS)
        return P()

    def sharding(self, spec: P):
        return None if self.mesh is None else NamedSharding(self.mesh, spec)


def make_layout(members: int, mesh: Mesh) -> Layout:
    """The layout of ``members`` members on ``mesh`` (see ``Layout``)."""
    if mesh.size == 1:
        return Layout(None, members, "single")
    if members > 1 and members % mesh.size == 0:
        return Layout(mesh, members, "members")
    return Layout(mesh, members, "data")


def core_devices_for(members: int, cores: int) -> int:
    """How many CPU devices ``members`` whole members split over on ``cores`` cores: the
    most, up to one per core, that divide the members (1: no split pays)."""
    return max(d for d in range(1, min(members, cores) + 1) if members % d == 0)


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one: Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def split_cpu_for_members(members: int) -> int:
    """Splits JAX's CPU backend into one device per core, as many as divide ``members``, so
    that a population's members run in ``members`` layout on the cores side by side.

    Why: on a CPU one member's small matmuls leave a second core partly idle, and vmapping
    more members into them makes them slower still; whole members per core do not
    (BENCHMARKS.md, "Populations": 8 members on 2 cores at 1.05-1.23x the updates/s of one,
    on one device 0.89-0.95x). Members never exchange data, so only float rounding changes.
    Must run before JAX's first computation; does nothing where JAX has started or
    ``XLA_FLAGS`` sets a device count.

    Returns:
      The CPU device count now (1: not split).
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return 1
    count = core_devices_for(members, usable_cores())
    if count == 1:
        return 1
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # JAX has started (a notebook): its devices stay as they are
        return 1
    return count


def check_divisible(cfg, layout: Layout) -> None:
    """Raises ``ConfigError`` unless the run's sizes split evenly across the devices of a
    data-parallel layout."""
    if layout.mode != "data":
        return
    devices = layout.devices
    sizes = {"--replay-size": cfg.replay_size, "--update-every": cfg.update_every}
    if cfg.backend == "mjx":
        sizes["--num-envs"] = cfg.num_envs
    for flag, value in sizes.items():
        if value % devices:
            raise ConfigError(
                f"{flag} ({value}) must be a multiple of the device count ({devices}): each "
                "device takes an equal share"
            )


def replay_init_for(layout: Layout, capacity: int, obs_dim: int, action_dim: int):
    """One member's empty buffer as the layout keeps it: in data mode ``devices`` equal
    shards of the rows, each with its own insert position and size (``(devices,)``)."""
    buffer = replay_init(capacity, obs_dim, action_dim)
    if layout.mode != "data":
        return buffer
    zeros = jnp.zeros((layout.devices,), jnp.int32)
    return buffer.replace(insert_pos=zeros, size=zeros)


def local_buffer(buffer: ReplayBuffer) -> ReplayBuffer:
    """Inside ``shard_map`` (data mode): this device's shard as an ordinary buffer."""
    return buffer.replace(insert_pos=buffer.insert_pos[..., 0], size=buffer.size[..., 0])


def global_buffer(buffer: ReplayBuffer) -> ReplayBuffer:
    """The inverse of ``local_buffer``."""
    return buffer.replace(insert_pos=buffer.insert_pos[..., None],
                          size=buffer.size[..., None])  # fmt: skip


def learner_specs(layout: Layout, state_cls):
    """Partition specs of a member-batched ``LearnerState``: in data mode the buffer's rows
    (and its per-shard positions) split, the rest replicated; in members mode everything
    split on the member axis."""
    split, whole = layout.spec(0), layout.spec(None)
    buffer = ReplayBuffer(data=split, insert_pos=split, size=split)
    return state_cls(td3=whole, buffer=buffer, normalizer=whole, key=whole)


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

"""Data parallelism over devices and hosts: the mesh and the learner state's layout
(starting the processes: ``spikerl_jax.processes``).

One code path for 1 device, N devices and N hosts: a 1-D mesh with axis ``data``. In the
data-parallel layout parameters, optimizer states, normalizer and update key are replicated;
each device owns a shard of the replay buffer (``replay_size / devices`` transitions, fed by
its own envs) and draws its own batches. Gradients are averaged across the axis before every
optimizer step (``lax.pmean``: NCCL on GPUs, gloo on CPUs across processes), so one step
equals a step on the concatenated per-device batches of ``--batch-size`` each (as PyTorch
DDP). A population may instead split whole members across the devices (``Layout``).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from spikerl_jax.config import ConfigError
from spikerl_jax.rl.replay import ReplayBuffer

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
        for device in sorted(
            (d for d in jax.devices() if d.process_index == process), key=lambda d: d.id
        )[:count]
    ]
    # Auto axes: jit and shard_map move inputs onto the mesh as needed (e.g. a chunk of
    # transitions built on the host), instead of requiring them placed beforehand.
    return jax.make_mesh(
        (len(chosen),), (AXIS,), devices=chosen, axis_types=(jax.sharding.AxisType.Auto,)
    )


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
        """The axis the algorithm averages gradients over (data mode only)."""
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
    # Over several processes every process steps a share of every member's envs, so each
    # member's data spreads over all devices (whole members per process would need each
    # process's records gathered member by member).
    if members > 1 and members % mesh.size == 0 and jax.process_count() == 1:
        return Layout(mesh, members, "members")
    return Layout(mesh, members, "data")


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


def learner_specs(layout: Layout, state_cls):
    """Partition specs of a member-batched ``LearnerState``: in data mode the buffer's rows
    (and its per-shard positions) split, the rest replicated; in members mode everything
    split on the member axis."""
    split, whole = layout.spec(0), layout.spec(None)
    buffer = ReplayBuffer(data=split, insert_pos=split, size=split)
    return state_cls(agent=whole, buffer=buffer, normalizer=whole, key=whole)

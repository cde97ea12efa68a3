"""A process's start-up, before JAX's first computation: CPU devices for a population's
members, and ``jax.distributed`` for runs over several processes or hosts."""

from __future__ import annotations

import os

import jax

from spikerl_jax.config import ConfigError


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


def init_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
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
        raise ConfigError(
            "multi-process training needs a process id (--process-id or JAX_PROCESS_ID)"
        )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num, process_id=int(pid)
    )
    return True

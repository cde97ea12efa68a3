"""A process's life: its start-up before JAX's first computation (CPU devices for a
population's members, ``jax.distributed`` for runs over several processes or hosts), the
host memory it may use, exact gathers across processes, and the signals that stop it.

Signals: SIGINT and SIGTERM finish the current round, save a checkpoint and exit; a second
SIGINT stops at once. SIGTERM is what Slurm, Kubernetes and Docker send before killing a
job: handled like Ctrl-C, so the work since the last checkpoint is kept. The exit status is
the shell's convention for the signal, 128 + its number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

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
    (BENCHMARKS.md, "Populations"). Members never exchange data, so only float rounding
    changes.
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


_DISTRIBUTED = False  # whether this process started (or began to start) jax.distributed


def distributed() -> bool:
    """Whether this process started, or began to start, ``jax.distributed``: its exit must
    then not wait for the other processes (``exit_at_once``)."""
    return _DISTRIBUTED


def exit_at_once(status: int) -> None:
    """Ends the process now with ``status``, its output flushed: after a failure, JAX's exit
    would wait at the other processes' shutdown barrier (a dead peer never comes), then
    abort with a C++ stack dump."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def init_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout_s: int = 300,
) -> bool:
    """Starts ``jax.distributed`` from arguments or ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``; returns whether it did (one process: no).

    CPU processes exchange collectives over gloo. The wait for the other processes says so in
    one line and runs in a worker thread: JAX's own wait blocks signals and, past its timeout,
    aborts the process; this one stays interruptible and ends in one line after
    ``timeout_s`` (JAX's is set later, so it never fires first).

    Raises:
      ConfigError: no process id, or the processes did not all start within ``timeout_s``.
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
    global _DISTRIBUTED
    _DISTRIBUTED = True
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    print(
        f"spikerl-jax: process {pid} of {num}: waiting up to {timeout_s} s for the others at "
        f"{coordinator}",
        file=sys.stderr,
        flush=True,
    )
    failures: list[Exception] = []

    def start() -> None:
        try:
            jax.distributed.initialize(
                coordinator_address=coordinator,
                num_processes=num,
                process_id=int(pid),
                initialization_timeout=timeout_s + 60,
            )
        except Exception as e:  # reported by the main thread
            failures.append(e)

    worker = threading.Thread(target=start, name="jax-distributed-start", daemon=True)
    worker.start()
    worker.join(timeout_s)  # the main thread's signal handlers run meanwhile
    if worker.is_alive():
        raise ConfigError(
            f"not all {num} processes reached {coordinator} within {timeout_s} s: start every "
            f"process (--process-id 0 to {num - 1}) with the same --coordinator-address and "
            "--num-processes, or wait longer with --init-timeout"
        )
    if failures:
        first = str(failures[0]).strip().splitlines()[0]
        raise ConfigError(f"jax.distributed could not start at {coordinator}: {first}")
    return True


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


def process_share(x: np.ndarray, processes: int) -> np.ndarray:
    """This process's share of axis 1 of a gathered array."""
    if processes == 1:
        return x
    n = x.shape[1] // processes
    return x[:, jax.process_index() * n : (jax.process_index() + 1) * n]


def allgather(x: np.ndarray) -> np.ndarray:
    """Every process's ``x`` stacked ``(P, ...)``, exactly: JAX's collectives would round
    float64 and 64-bit integers to 32 bits, so the bytes travel."""
    x = np.ascontiguousarray(x)
    every = np.asarray(multihost_utils.process_allgather(x.reshape(-1).view(np.uint8)))
    return every.view(x.dtype).reshape(-1, *x.shape)


def gather_axis1(x: np.ndarray) -> np.ndarray:
    """Every process's ``x`` concatenated along axis 1 (in process order), padded along
    axis 2 to the longest (the envs' physics bytes and the finished returns vary in length;
    NaN pads floats, 0 integers)."""
    x = np.asarray(x)
    if x.ndim > 2:
        longest = int(np.max(allgather(np.array(x.shape[2]))))
        pad = [(0, 0), (0, 0), (0, longest - x.shape[2])] + [(0, 0)] * (x.ndim - 3)
        x = np.pad(x, pad, constant_values=np.nan if x.dtype.kind == "f" else 0)
    return np.concatenate(list(allgather(x)), axis=1)


class Interrupted(RuntimeError):
    """A signal stopped training; ``exit_code`` is 128 + signum.

    Args:
      stopped: what stopped training and where (``"interrupted by SIGTERM at step 4000"``).
      resume: how to continue (``"--resume runs/x"``).
      signum: the signal's number.
      saved: whether a checkpoint of the stop was saved (a second Ctrl-C stops without one:
        the last complete checkpoint is kept).
    """

    def __init__(self, stopped: str, resume: str, signum: int, saved: bool = True):
        kept = "checkpoint saved" if saved else "the last complete checkpoint is kept"
        super().__init__(f"{stopped}; {kept}, continue with {resume}")
        self.stopped, self.signum, self.saved = stopped, signum, saved
        self.exit_code = 128 + signum

    def resumed_with(self, resume: str) -> Interrupted:
        """The same stop, continued another way (e.g. a sweep resumes from its root)."""
        return Interrupted(self.stopped, resume, self.signum, self.saved)


class StopRequest:
    """Turns SIGINT and SIGTERM into a flag the loop reads between rounds (so the saved state
    is whole). Installed only in the main thread (Python's rule for signal handlers).

    A second SIGINT stops at once (``Interrupted`` without a checkpoint), except while a
    checkpoint is being written (``saving``): that finishes first, so that nothing half
    written is left. Any later signal is the same request: the handler never raises twice.

    Args:
      resume: how to continue, for the message of a stop at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, resume: str = "--resume"):
        self.requested, self.saving, self.resume = False, False, resume
        self.signum: int | None = None
        self._previous: dict = {}
        self._raised = False

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if not self.requested:
            self.requested, self.signum = True, signum
        elif signum == signal.SIGINT and not self.saving and not self._raised:
            self._raised = True
            raise Interrupted("stopped at once by a second SIGINT", self.resume, signum, False)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a stop request"

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

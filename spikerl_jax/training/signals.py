"""The signal policy of training: SIGINT and SIGTERM finish the current round, save a
checkpoint and exit; a second SIGINT stops at once.

SIGTERM is what Slurm, Kubernetes and Docker send before killing a job: handled like Ctrl-C,
so the work since the last checkpoint is kept. The exit status is the shell's convention for
the signal, 128 + its number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import signal


class Interrupted(RuntimeError):
    """A signal stopped training after a checkpoint was saved; ``exit_code`` is 128 + signum.

    Args:
      stopped: what stopped training and where (``"interrupted by SIGTERM at step 4000"``).
      resume: how to continue (``"--resume runs/x"``).
      signum: the signal's number.
    """

    def __init__(self, stopped: str, resume: str, signum: int):
        super().__init__(f"{stopped}; checkpoint saved, continue with {resume}")
        self.stopped, self.signum, self.exit_code = stopped, signum, 128 + signum

    def resumed_with(self, resume: str) -> Interrupted:
        """The same stop, continued another way (e.g. a sweep resumes from its root)."""
        return Interrupted(self.stopped, resume, self.signum)


class StopRequest:
    """Turns SIGINT and SIGTERM into a flag the loop reads between rounds (so the saved state
    is whole). Installed only in the main thread (Python's rule for signal handlers)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopRequest:
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a stop request"

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

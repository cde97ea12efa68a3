"""The training progress display (rich): steps, steps/s, ETA and the latest evaluation,
moved after every round; one line per evaluation; off a terminal (CI, nohup, a notebook's
log), a plain line every ``every_s`` seconds instead of the bar."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """A context manager showing training progress.

    Args:
      total_steps: the run's length in env steps.
      enabled: False shows nothing.
      console: the rich console (None: stderr).
      every_s: seconds between plain progress lines off a terminal.
    """

    def __init__(
        self,
        total_steps: int,
        enabled: bool = True,
        console: Console | None = None,
        every_s: float = 30.0,
    ):
        self.enabled, self.total, self.every_s = enabled, total_steps, every_s
        self.console = console or Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7} steps/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("eval {task.fields[eval]}"),
            console=self.console,
            disable=not self.live,
        )
        self._task = self._progress.add_task("train", total=total_steps, rate="-", eval="-")
        self.step, self.eval = 0, "-"
        self._start = self._last_line = time.perf_counter()
        self._first_step: int | None = None

    def __enter__(self) -> TrainProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def announce(self, line: str) -> None:
        """A line before training starts (what trains where)."""
        if self.enabled:
            self.console.print(escape(line), soft_wrap=True)

    def advance(self, steps: int) -> None:
        """``steps`` more env steps (called after every round)."""
        self.step += steps
        if self._first_step is None:  # steps/s and ETA of this process's steps only
            self._first_step, self._start = self.step, time.perf_counter()
        now = time.perf_counter()
        done = self.step - self._first_step
        rate = done / (now - self._start) if done and now > self._start else None
        self._progress.update(self._task, completed=self.step, rate=f"{rate:.0f}" if rate else "-")
        if self.enabled and not self.live and now - self._last_line >= self.every_s:
            self._last_line = now
            eta = f"{(self.total - self.step) / rate:.0f} s" if rate else "-"
            self.console.print(
                f"step {self.step:,}/{self.total:,} ({self.step / self.total:.0%})  "
                f"{rate or 0:.0f} steps/s  ETA {eta}  eval {self.eval}",
                soft_wrap=True,
                markup=False,
            )

    def report(self, row: dict, label: str = "") -> None:
        """Shows an evaluation row on the bar and as a log line (prefixed by ``label``: a
        population's member; user text, printed as is, never as rich markup)."""
        self.eval = f"{row['eval_return']:.1f}"
        self._progress.update(self._task, eval=self.eval)
        if self.enabled:
            ups = row["updates_per_s"]
            self.console.print(
                (f"{label}  " if label else "")
                + f"step {row['step']:,}  eval {row['eval_return']:.1f} ± "
                f"{row['eval_return_std']:.1f}  len {row['eval_length']:.0f}  "
                f"{row['env_steps_per_s']:.0f} steps/s  "
                + (f"{ups:.0f} upd/s  " if ups != "" else "")
                + f"{row['wall_s']:.0f} s",
                soft_wrap=True,
                markup=False,
            )

"""The training progress bar (rich): steps, steps/s, ETA and the latest evaluation."""

from __future__ import annotations

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
    """A context manager showing training progress; prints one line per evaluation.

    The evaluation lines are plain prints, so logs of non-interactive runs (CI, nohup) show
    progress too.
    """

    def __init__(self, total_steps: int, enabled: bool = True, console: Console | None = None):
        self.enabled = enabled
        self.console = console or Console(stderr=True)
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
            disable=not enabled,
        )
        self._task = self._progress.add_task("train", total=total_steps, rate="-", eval="-")

    def __enter__(self) -> TrainProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def advance(self, steps: int) -> None:
        speed = self._progress.tasks[0].speed
        rate = f"{speed:.0f}" if speed else "-"
        self._progress.update(self._task, advance=steps, rate=rate)

    def report(self, row: dict, label: str = "") -> None:
        """Shows an evaluation row on the bar and as a log line (prefixed by ``label``: a
        population's member; user text, printed as is, never as rich markup)."""
        self._progress.update(self._task, eval=f"{row['eval_return']:.1f}")
        if self.enabled:
            ups = row["updates_per_s"]
            self._progress.console.print(
                (f"{escape(label)}  " if label else "")
                + f"step {row['step']:,}  eval {row['eval_return']:.1f} ± "
                f"{row['eval_return_std']:.1f}  len {row['eval_length']:.0f}  "
                f"{row['env_steps_per_s']:.0f} steps/s  "
                + (f"{ups:.0f} upd/s  " if ups != "" else "")
                + f"{row['wall_s']:.0f} s",
                soft_wrap=True,
            )

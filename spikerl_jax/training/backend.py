"""What a simulator backend does for the training loop (``Backend``), and what it returns.

A backend collects: it steps its envs with the population's exploring policy (or at random,
as ``training.schedule`` says), feeding each round's transitions to the learner's round
(``Learner.learn_round``), and it evaluates every member. The loop in
``spikerl_jax.training.trainer`` is the same for either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from spikerl_jax.processes import StopRequest
from spikerl_jax.reporting.records import EvalResult
from spikerl_jax.training.schedule import Counters
from spikerl_jax.training.state import RunState


@dataclasses.dataclass(frozen=True)
class RoundStats:
    """What the rounds of one ``Backend.rounds`` call did.

    Attributes:
      rounds: rounds completed (fewer than asked when stopped).
      metrics: the last update round's metrics, ``{name: (M,)}`` (None: no update ran).
      update_s: seconds spent in update rounds (host: the compiled round calls; MJX: the
        whole program, which also steps the envs).
      nonfinite_step: the step after the first round whose losses were not finite (None:
        all finite); the backend stops there.
    """

    rounds: int = 0
    metrics: dict | None = None
    update_s: float = 0.0
    nonfinite_step: int | None = None

    def add(self, metrics: dict, seconds: float) -> RoundStats:
        return dataclasses.replace(self, metrics=metrics, update_s=self.update_s + seconds)

    def finite(self) -> bool:
        """Whether every member's last metrics are finite."""
        return all(np.all(np.isfinite(v)) for v in (self.metrics or {}).values())


class Backend(Protocol):
    """A simulator backend: Gymnasium on the host or MJX on the device."""

    def rounds(
        self,
        state: RunState,
        counters: Counters,
        target: int,
        stop: StopRequest | None = None,
        on_round: Callable[[int], None] | None = None,
    ) -> tuple[RunState, RoundStats]:
        """Collects and learns, round by round, until step ``target`` (a round boundary), or
        earlier when ``stop`` is requested or losses turn non-finite; ``on_round(steps)``
        follows the rounds (for progress)."""

    def evaluate(self, state: RunState, step: int) -> list[EvalResult]:
        """Every member's deterministic evaluation episodes."""

    def take_train_returns(self) -> list[float | None]:
        """Each member's mean training-episode return since the last call."""

    def episode_totals(self) -> np.ndarray:
        """``(M, 3)``: training episodes ended since the start, their return and length sums."""

    def snapshot(self) -> dict[str, Any]:
        """The host-side state for a checkpoint, as arrays ``(M, ...)`` (``restore`` takes
        it back)."""

    def restore(self, saved: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

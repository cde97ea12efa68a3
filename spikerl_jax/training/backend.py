"""What a simulator backend does for the training loop (``Backend``), and what it returns.

Both backends advance a run to a given step in one call (collecting, inserting and learning
on the way), evaluate every member, and hand their host-side state to checkpoints: the loop
in ``spikerl_jax.training.trainer`` is the same for either.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Protocol

import numpy as np

from spikerl_jax.training.state import DeviceEnvsState, HostEnvsState, LoopState, RunState

HostSide = tuple[HostEnvsState, ...] | DeviceEnvsState  # a backend's state outside RunState


class EvalResult(NamedTuple):
    """One member's deterministic episodes: returns, and the actor's spikes over all steps."""

    mean: float
    std: float
    length: float  # mean episode length
    spikes: dict[str, float]  # layer -> spikes summed over neurons, timesteps, inferences
    inferences: int  # single-observation actor calls the spike totals cover


@dataclasses.dataclass(frozen=True)
class RoundStats:
    """What the update rounds of one ``advance`` call did.

    Attributes:
      metrics: the last round's update metrics, ``{name: (M,)}`` (None: no update ran).
      update_s: seconds spent in update rounds (host: the compiled round calls; MJX: the
        whole program, which also steps the envs).
      updates: gradient updates per member in those seconds.
      nonfinite_step: the step of the first round whose losses were not finite (None: all
        finite); the backend stops there.
    """

    metrics: dict | None = None
    update_s: float = 0.0
    updates: int = 0
    nonfinite_step: int | None = None

    def add(self, metrics: dict, seconds: float, updates: int) -> RoundStats:
        return dataclasses.replace(self, metrics=metrics, update_s=self.update_s + seconds,
                                   updates=self.updates + updates)  # fmt: skip

    def replace(self, **changes) -> RoundStats:
        return dataclasses.replace(self, **changes)


def first_nonfinite(metrics: dict) -> bool:
    """Whether any member's metric is NaN or infinite."""
    return not all(np.all(np.isfinite(v)) for v in metrics.values())


class Stop(Protocol):
    """A stop request the backend checks between rounds (SIGINT/SIGTERM)."""

    requested: bool


class Backend(Protocol):
    """A simulator backend: Gymnasium on the host or MJX on the device."""

    def init_state(self, learner_state) -> RunState:
        """The run's device state around freshly initialised learners."""

    def advance(
        self, state: RunState, loop: LoopState, target: int, stop: Stop | None = None
    ) -> tuple[RunState, LoopState, RoundStats]:
        """Collects and learns, round by round, until ``loop.step == target`` (a round
        boundary), or earlier when ``stop`` is requested or losses turn non-finite."""

    def evaluate(self, state: RunState, step: int) -> list[EvalResult]:
        """Every member's deterministic evaluation episodes."""

    def take_train_returns(self) -> list[float | None]:
        """Each member's mean training-episode return since the last call."""

    def snapshot(self) -> HostSide:
        """The backend's host-side state for a checkpoint: Gymnasium envs (one record per
        process), or the MJX backend's training-return accumulators (its envs are in
        ``RunState``)."""

    def restore(self, saved: HostSide) -> None:
        """Restores ``snapshot``'s output."""

    def close(self) -> None:
        """Releases the envs."""

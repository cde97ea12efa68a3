"""What the configuration knows of each learning algorithm (``--algo``): the settings it
takes as traced values, its critic steps per actor step and the settings it refuses. The
algorithms themselves (their state, update and acting policy) live in ``spikerl_jax.rl``
(``rl.algorithms``); this layer imports no JAX, so that ``--help`` and a sweep's checks need
none."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from spikerl_jax.config.base import ConfigError

# The actor's sweepable settings, every algorithm's: its initial receptive-field width.
ACTOR_SWEEPABLE: dict[str, str | None] = {"encoder_std": "actor"}
# The learning rule's section (``td3``: the first algorithm's, a name config.json keeps) holds
# the discount, Polyak and learning rates, which every algorithm here shares.
SHARED_RULE = ("actor_lr", "critic_lr", "gamma", "polyak")


@dataclasses.dataclass(frozen=True)
class AlgoTraits:
    """An algorithm as the configuration sees it.

    Attributes:
      sweepable: the settings that keep every array's shape and enter its programs as traced
        values (one program for every value and member), each with the config section it
        lives in (None: ``TrainConfig``'s top level).
      policy_delay: ``cfg -> critic steps per actor step`` (``--updates-per-round`` is a
        multiple of it).
      check: ``cfg -> None``, raising ``ConfigError`` for a setting the algorithm cannot
        train with.
      starts_only: ``cfg -> names`` of its sweepable settings that only set a starting
        point (a learned value's initial one): population-based training cannot search
        them, as a copy overwrites what they set.
    """

    sweepable: dict[str, str | None]
    policy_delay: Callable
    check: Callable = lambda cfg: None
    starts_only: Callable = lambda cfg: ()


def _no_proxy(algo: str, bootstrap: str) -> Callable:
    def check(cfg) -> None:
        if cfg.td3.target_actor != "snn":
            raise ConfigError(
                f"--target-actor proxy is TD3's (its smoothed targets); --algo {algo} "
                f"bootstraps on {bootstrap}"
            )

    return check


ALGOS: dict[str, AlgoTraits] = {
    "td3": AlgoTraits(
        sweepable={
            **dict.fromkeys(SHARED_RULE, "td3"),
            "target_noise": "td3",
            "target_noise_clip": "td3",
            "proxy_lr": "td3",
            "exploration_noise": None,
            **ACTOR_SWEEPABLE,
        },
        policy_delay=lambda cfg: cfg.td3.policy_delay,
    ),
    # PopSAN's DDPG: one critic, no target smoothing, an actor step after every critic step.
    "ddpg": AlgoTraits(
        sweepable={
            **dict.fromkeys(SHARED_RULE, "td3"),
            "exploration_noise": None,
            **ACTOR_SWEEPABLE,
        },
        policy_delay=lambda cfg: 1,
        check=_no_proxy("ddpg", "its target actor"),
    ),
    # PopSAN's SAC: twin critics, a tanh-Gaussian policy, an entropy bonus; --policy-delay
    # critic steps then as many policy steps (PopSAN: 1; CleanRL: 2).
    "sac": AlgoTraits(
        sweepable={**dict.fromkeys(SHARED_RULE, "td3"), "alpha": "sac", **ACTOR_SWEEPABLE},
        policy_delay=lambda cfg: cfg.td3.policy_delay,
        check=_no_proxy("sac", "its current policy's samples"),
        starts_only=lambda cfg: ("alpha",) if cfg.sac.learn_alpha else (),
    ),
}


def sweepable(algo: str | None = None) -> dict[str, str | None]:
    """The sweepable settings of ``algo`` (None: of any algorithm, in a stable order)."""
    if algo is not None:
        return ALGOS[algo].sweepable
    return {name: s for traits in ALGOS.values() for name, s in traits.sweepable.items()}


def init_only(cfg) -> tuple[str, ...]:
    """The sweepable settings of ``cfg``'s algorithm that only set where training starts:
    the encoder's initial width (learned after) and the algorithm's ``starts_only``."""
    return (*ACTOR_SWEEPABLE, *ALGOS[cfg.algo].starts_only(cfg))

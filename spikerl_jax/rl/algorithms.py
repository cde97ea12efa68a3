"""The algorithms by ``--algo`` name: each one module of ``rl/`` with its ``make_algorithm``
(``rl.algorithm.Algorithm``) and ``hparams_of``; their settings live in ``config``
(``config.algorithms``)."""

from __future__ import annotations

from types import ModuleType

from spikerl_jax.config import TrainConfig
from spikerl_jax.rl import ddpg, sac, td3
from spikerl_jax.rl.algorithm import Algorithm
from spikerl_jax.rl.networks import Networks

ALGORITHMS: dict[str, ModuleType] = {"td3": td3, "ddpg": ddpg, "sac": sac}
# The key under which checkpoints of format 2 (f02ead7 and before) hold the learner's
# algorithm state: TD3 was then the only algorithm.
FORMAT_2_STATE_KEY = "td3"


def make_algorithm(networks: Networks, cfg: TrainConfig, axis_name: str | None = None) -> Algorithm:
    """``cfg.algo``'s ``Algorithm`` for ``networks`` (gradients averaged over ``axis_name``,
    inside ``shard_map``, when given)."""
    return ALGORITHMS[cfg.algo].make_algorithm(networks, cfg, axis_name)


def hparams_of(cfg: TrainConfig):
    """``cfg.algo``'s traced settings of ``cfg`` (float32 scalars; a member's share of a
    population's stacked ones)."""
    return ALGORITHMS[cfg.algo].hparams_of(cfg)

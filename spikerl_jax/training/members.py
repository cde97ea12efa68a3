"""The member axis: a population's members stacked on a leading axis of every array (one
member for a single run), what each member brings, and one member sliced out (functions of
one member batched over the axis: ``spikerl_jax.batching.over_members``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.config import TrainConfig
from spikerl_jax.rl.algorithms import hparams_of


class Members(NamedTuple):
    """What each member brings to the shared programs, on a leading member axis: its seed,
    PRNG keys by purpose (``init``: networks and update sampling; ``explore``: exploration
    noise and MJX's random actions; ``eval``), the algorithm's traced settings
    (``rl.algorithms.hparams_of``), the encoder's initial width and the exploration noise
    (float32)."""

    seeds: list[int]
    keys: dict[str, jax.Array]
    hparams: Any
    encoder_std: np.ndarray
    noise: jax.Array


def members_of(configs: list[TrainConfig]) -> Members:
    """The ``Members`` of a population's configs."""
    seeds = [c.seed for c in configs]
    keys = jnp.stack([jax.random.split(jax.random.key(s), 3) for s in seeds])
    return Members(
        seeds=seeds,
        keys={"init": keys[:, 0], "explore": keys[:, 1], "eval": keys[:, 2]},
        hparams=jax.tree.map(lambda *v: np.stack(v), *(hparams_of(c) for c in configs)),
        encoder_std=np.array([c.actor.encoder_std for c in configs], np.float32),
        noise=jnp.array([c.exploration_noise for c in configs], jnp.float32),
    )


def member(tree, index: int):
    """Member ``index`` of a member-batched pytree (device or host state)."""
    return jax.tree.map(lambda x: x[index], tree)

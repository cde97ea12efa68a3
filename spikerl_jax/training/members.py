"""The member axis: a population's members stacked on a leading axis of every array (one
member for a single run), what each member brings, and functions of one member batched over
them. Programs count their traces here (``TRACES``): each should compile once per run."""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.config import TrainConfig
from spikerl_jax.rl.td3 import HParams, hparams_from_config

# Traces of each compiled program of this process, by name: every program should compile once
# per run (a test checks); a second trace means a retrace (new shapes, dtypes or statics).
TRACES: collections.Counter = collections.Counter()


def counted(name: str, fn: Callable) -> Callable:
    """``fn``, counting in ``TRACES[name]`` each time it is traced (its Python body runs only
    then)."""

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        TRACES[name] += 1
        return fn(*args, **kwargs)

    return traced


def over_members(fn: Callable, count: int, in_axes=0, loop: bool = False) -> Callable:
    """``fn`` (of one member) applied to ``count`` members stacked on a leading axis: the one
    place where the member axis meets a member's function.

    Args:
      fn: a function of one member's pytrees.
      count: members per call. One member runs ``fn`` itself on the squeezed axis, so that a
        single run compiles the unbatched program.
      in_axes: as ``jax.vmap``'s (0: the argument is member-batched; None: shared).
      loop: a loop over the members (``lax.map``) instead of ``vmap``: for programs that run
        once (initialisation), whose compile time then stays that of one member.
    """
    axes_of = (
        (lambda n: in_axes) if isinstance(in_axes, tuple | list) else (lambda n: (in_axes,) * n)
    )
    if count > 1 and loop:
        return lambda *args: jax.lax.map(lambda a: fn(*a), args)
    if count > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def one(*args):
        args = [
            jax.tree.map(lambda x: x[0], a) if ax == 0 else a
            for a, ax in zip(args, axes_of(len(args)), strict=True)
        ]
        return jax.tree.map(lambda x: x[None], fn(*args))

    return one


class Members(NamedTuple):
    """What each member brings to the shared programs, on a leading member axis: its seed,
    PRNG keys by purpose (``init``: networks and update sampling; ``explore``: exploration
    noise and MJX's random actions; ``eval``), TD3's ``HParams``, the encoder's initial width
    and the exploration noise (float32)."""

    seeds: list[int]
    keys: dict[str, jax.Array]
    hparams: HParams
    encoder_std: np.ndarray
    noise: jax.Array


def members_of(configs: list[TrainConfig]) -> Members:
    """The ``Members`` of a population's configs."""
    seeds = [c.seed for c in configs]
    keys = jnp.stack([jax.random.split(jax.random.key(s), 3) for s in seeds])
    return Members(
        seeds=seeds,
        keys={"init": keys[:, 0], "explore": keys[:, 1], "eval": keys[:, 2]},
        hparams=jax.tree.map(
            lambda *v: np.stack(v), *(hparams_from_config(c.td3) for c in configs)
        ),
        encoder_std=np.array([c.actor.encoder_std for c in configs], np.float32),
        noise=jnp.array([c.exploration_noise for c in configs], jnp.float32),
    )

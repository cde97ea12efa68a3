"""Functions of one member batched over a leading member axis (``over_members``), and a
count of every compiled program's traces (``TRACES``: each should compile once per run)."""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable

import jax

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

"""Argument checks at the public API's entry points: a wrong type from Python is one
``TypeError`` naming the argument, what it takes and what it got, not an error deep inside
NumPy, ``os.path`` or JAX."""

from __future__ import annotations

import os


def expect(name: str, value, kinds: type | tuple[type, ...], what: str) -> None:
    """Raises ``TypeError`` unless ``value`` is an instance of ``kinds``.

    Args:
      name: the argument as the caller wrote it (``"run_dir"``, ``"train(config)"``).
      value: what was passed.
      kinds: the accepted types.
      what: them in words, with a hint where one helps (``"a TrainConfig, e.g. ..."``).
    """
    if not isinstance(value, kinds):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise TypeError(f"{name} takes {what}, got {type(value).__name__} {shown}")


def expect_path(name: str, value) -> None:
    """Raises ``TypeError`` unless ``value`` is a path (``str`` or ``os.PathLike``)."""
    expect(name, value, (str, os.PathLike), "a path (str or os.PathLike)")

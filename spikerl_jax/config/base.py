"""What every config section shares: the error type, flag names, value checks, and the
leaf view of nested configs (as the command line flattens them), new run directories."""

from __future__ import annotations

import dataclasses
import math
import os
import time

# Energy per operation of the actor's neuromorphic estimate (spikerl_jax.reporting.activity):
# 45 nm CMOS figures of M. Horowitz, "Computing's energy problem", ISSCC 2014.
PJ_PER_SYNOP = 0.9  # 32-bit float add: one synaptic operation
PJ_PER_MAC = 4.6  # 32-bit float multiply (3.7) + add (0.9): one multiply-accumulate
# Device-side counters, sizes and scan lengths are int32 (jax's default integer): every count
# of a config stays at most 2**31 - 1, and so does a run's steps.
MAX_INT = 2**31 - 1
MAX_STEPS = MAX_INT
# The gradient updates of one run at most (critic steps, and proxy steps apart): 2**31 - 1 at
# a millisecond each are 25 days of updates alone.
MAX_UPDATES = MAX_INT


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names it and the fix."""


# Fields whose command-line flag is not their name with dashes.
FLAG_NAMES = {"actor_kind": "--actor"}


def flag(name: str) -> str:
    """The command-line flag of a config field (``actor_lr`` -> ``--actor-lr``)."""
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _finite(name: str, value: float, low: float | None = None, low_open: bool = False) -> None:
    """Raises ``ConfigError`` unless ``value`` is finite and (if given) above ``low``."""
    if not math.isfinite(value):
        raise ConfigError(f"{flag(name)} must be a finite number, got {value}")
    if low is not None and (value <= low if low_open else value < low):
        bound = (
            ("positive" if low_open else "non-negative")
            if low == 0
            else (f"> {low}" if low_open else f">= {low}")
        )
        raise ConfigError(f"{flag(name)} must be {bound}, got {value}")


def leaf_items(cfg):
    """``(name, value)`` of every non-dataclass field, nested configs flattened (as the CLI)."""
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if dataclasses.is_dataclass(value):
            yield from leaf_items(value)
        else:
            yield field.name, value


def differing_fields(a, b, allowed=frozenset()) -> list[tuple[str, object, object]]:
    """``(name, value in a, value in b)`` of every leaf field (``leaf_items``) outside
    ``allowed`` whose values differ, in field order."""
    theirs = dict(leaf_items(b))
    return [
        (name, mine, theirs[name])
        for name, mine in leaf_items(a)
        if name not in allowed and mine != theirs[name]
    ]


def new_run_dir(name: str) -> str:
    """A new directory ``runs/NAME-TIMESTAMP``, created here, atomically, with a ``-2``,
    ``-3``, ... suffix if runs started in the same second: two runs never share one."""
    stem = os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.makedirs("runs", exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create runs/ here ({e.strerror}); use --out") from None
    for n in range(1, 10_000):
        path = stem if n == 1 else f"{stem}-{n}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"cannot find a free run directory name next to {stem}; use --out")

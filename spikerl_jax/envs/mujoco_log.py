"""MuJoCo's import and its warnings routed to Python's logging, not to the terminal and
``MUJOCO_LOG.TXT``.

``import mujoco`` fails when ``MUJOCO_GL`` names an OpenGL backend whose library this machine
lacks; imported here, that is one line naming the variable and the fix.

MuJoCo's C library prints its warnings and appends them to ``MUJOCO_LOG.TXT`` in the current
directory, a file users then find in their repository. ``route_mujoco_warnings`` installs a
handler (``mujoco.set_mju_user_warning``) that logs each distinct warning once per process on
the ``spikerl_jax.mujoco`` logger; known notices about the XML files shipped with Gymnasium
(which users cannot change) are logged at DEBUG.
"""

from __future__ import annotations

import logging
import os

from spikerl_jax.config.base import ConfigError

try:
    import mujoco
except (ImportError, AttributeError, OSError, RuntimeError) as e:  # each GL failure's type
    if not os.environ.get("MUJOCO_GL"):
        raise
    raise ConfigError(
        f"MuJoCo cannot load its OpenGL backend MUJOCO_GL={os.environ['MUJOCO_GL']} "
        f"({type(e).__name__}); unset MUJOCO_GL, or install that backend's library "
        "(egl: apt-get install libegl1, osmesa: libosmesa6)"
    ) from None

LOGGER = logging.getLogger("spikerl_jax.mujoco")
# Gymnasium's HalfCheetah and Swimmer XMLs use this compiler attribute: not the user's to fix.
KNOWN_NOTICES = ("compiler attribute 'settotalmass' is deprecated",)

_seen: set[str] = set()


def _log(message: str) -> None:
    if message in _seen:
        return
    _seen.add(message)
    known = any(notice in message for notice in KNOWN_NOTICES)
    LOGGER.log(logging.DEBUG if known else logging.WARNING, "MuJoCo: %s", message)


def route_mujoco_warnings() -> None:
    """Installs the handler (idempotent); called before any model is loaded here."""
    if mujoco.get_mju_user_warning() is not _log:
        mujoco.set_mju_user_warning(_log)

"""Videos of a policy's episode (``spikerl-jax eval --render``): MuJoCo's offscreen
rendering, with every missing piece (an OpenGL library, imageio-ffmpeg) one line naming the fix.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import warnings
from collections.abc import Callable

import numpy as np

from spikerl_jax.config import ConfigError


def record_video(
    policy: Callable[[np.ndarray], np.ndarray], env_id: str, path: str, seed: int
) -> str:
    """Renders one episode of ``policy`` (observation -> action) on ``env_id`` offscreen into
    ``path`` (an .mp4).

    Raises:
      ConfigError: something rendering needs is missing (imageio-ffmpeg, an OpenGL library);
        checked before the episode runs, one line naming what to install.
    """
    from spikerl_jax.envs.gymnasium_backend import quiet_make

    if importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ConfigError(
            "--render writes mp4 with imageio-ffmpeg: pip install 'spikerl_jax[render]'"
        )
    choose_gl_backend()
    try:
        env = quiet_make(env_id, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except Exception as e:  # GL backends fail in many ways: name the one tried and the fix
        raise ConfigError(
            f"cannot render offscreen with MUJOCO_GL={os.environ.get('MUJOCO_GL')} "
            f"({type(e).__name__}: {_first_line(e)}); {GL_FIX}"
        ) from None
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        frames.append(env.render())
        done = terminated or truncated
    env.close()
    import imageio.v2 as imageio

    with warnings.catch_warnings():
        # imageio-ffmpeg starts ffmpeg with a pre-exec os.setpgrp, which JAX's fork hook
        # warns about; the child only execs ffmpeg, so no JAX thread is involved.
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        imageio.mimsave(path, frames, fps=round(1 / env.unwrapped.dt))
    return path


GL_FIX = (
    "MuJoCo renders offscreen with EGL or OSMesa: install one (apt-get install libegl1 or "
    "libosmesa6) and set MUJOCO_GL to egl or osmesa, or run where a display is"
)


def choose_gl_backend() -> None:
    """Sets ``MUJOCO_GL`` (read by Gymnasium at the first render) where it is unset and no
    display exists: EGL or OSMesa, whichever library this machine has.

    Raises:
      ConfigError: no display and neither library.
    """
    if (
        os.environ.get("MUJOCO_GL")
        or os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
    ):
        return
    for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return
    raise ConfigError(
        f"cannot render: no display and no OpenGL library for offscreen rendering; {GL_FIX}"
    )


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]

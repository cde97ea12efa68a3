"""Environments: the task registry (``EnvSpec`` for every supported id), the Gymnasium
(native MuJoCo) backend and the MJX ports for on-device training.

Importing this package loads neither Gymnasium nor MJX: the MJX names below (``make``,
``MjxEnv``, ``State``, the wrappers) are imported on first use.
"""

from spikerl_jax.envs.registry import MJX_ENVS, SUPPORTED_ENVS, EnvSpec, env_spec

_MJX_NAMES = {
    "make": "spikerl_jax.envs.mjx_tasks",
    "MjxEnv": "spikerl_jax.envs.mjx_env",
    "State": "spikerl_jax.envs.mjx_env",
    "EpisodeWrapper": "spikerl_jax.envs.mjx_env",
    "VmapWrapper": "spikerl_jax.envs.mjx_env",
}


def __getattr__(name: str):
    if name in _MJX_NAMES:
        import importlib

        return getattr(importlib.import_module(_MJX_NAMES[name]), name)
    raise AttributeError(f"module 'spikerl_jax.envs' has no attribute {name!r}")


__all__ = [
    "MJX_ENVS",
    "SUPPORTED_ENVS",
    "EnvSpec",
    "EpisodeWrapper",
    "MjxEnv",
    "State",
    "VmapWrapper",
    "env_spec",
    "make",
]

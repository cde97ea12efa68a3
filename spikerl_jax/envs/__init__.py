"""Environments: the supported task ids, the Gymnasium (native MuJoCo) host backend and the
MJX ports (``make``) for on-device training."""

from spikerl_jax.envs.gymnasium_backend import SUPPORTED_ENVS, EnvSpec, make_vector_env
from spikerl_jax.envs.mjx_env import EpisodeWrapper, MjxEnv, State, VmapWrapper
from spikerl_jax.envs.mjx_tasks import MJX_ENVS, make

__all__ = [
    "MJX_ENVS",
    "SUPPORTED_ENVS",
    "EnvSpec",
    "EpisodeWrapper",
    "MjxEnv",
    "State",
    "VmapWrapper",
    "make",
    "make_vector_env",
]

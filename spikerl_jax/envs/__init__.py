"""Environments: the supported task ids and the Gymnasium (native MuJoCo) host backend."""

from spikerl_jax.envs.gymnasium_backend import SUPPORTED_ENVS, EnvSpec, make_vector_env

__all__ = ["SUPPORTED_ENVS", "EnvSpec", "make_vector_env"]

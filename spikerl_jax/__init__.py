"""spikerl_jax: population-coded spiking actors trained with TD3, in JAX/Flax.

The public API (``spikerl_jax.api``) is importable from here; it is loaded on first use, so
``import spikerl_jax.config`` (what ``--help`` and config validation need) stays light.
"""

from spikerl_jax.api_names import PUBLIC_NAMES
from spikerl_jax.version import __version__ as __version__

__all__ = list(PUBLIC_NAMES)


def __getattr__(name: str):
    if name in PUBLIC_NAMES:
        from spikerl_jax import api

        return getattr(api, name)
    raise AttributeError(f"module 'spikerl_jax' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *PUBLIC_NAMES])

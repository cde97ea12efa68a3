"""spikerl_jax: population-coded spiking actors trained with TD3, in JAX/Flax.

The public API (``spikerl_jax.api``) is importable from here; it is loaded on first use, so
``import spikerl_jax.config`` (what ``--help`` and config validation need) stays light.
"""

__version__ = "0.1.0"

_API = (
    "CriticConfig",
    "PopSAN",
    "PopSANConfig",
    "TD3Config",
    "TrainConfig",
    "TwinQ",
    "make_networks",
    "preset_for",
)
__all__ = [*_API]


def __getattr__(name: str):
    if name in _API:
        from spikerl_jax import api

        return getattr(api, name)
    raise AttributeError(f"module 'spikerl_jax' has no attribute {name!r}")

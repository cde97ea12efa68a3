"""spikerl_jax: population-coded spiking actors trained with TD3, in JAX/Flax."""

from spikerl_jax.config import CriticConfig, PopSANConfig, TD3Config, TrainConfig
from spikerl_jax.networks import PopSAN, TwinQ, make_networks

__all__ = [
    "CriticConfig",
    "PopSAN",
    "PopSANConfig",
    "TD3Config",
    "TrainConfig",
    "TwinQ",
    "make_networks",
]
__version__ = "0.1.0"

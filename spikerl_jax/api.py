"""The public API: what ``from spikerl_jax import ...`` gives."""

from spikerl_jax.config import CriticConfig, PopSANConfig, TD3Config, TrainConfig, preset_for
from spikerl_jax.rl.networks import TwinQ, make_networks
from spikerl_jax.snn.popsan import PopSAN

__all__ = [
    "CriticConfig",
    "PopSAN",
    "PopSANConfig",
    "TD3Config",
    "TrainConfig",
    "TwinQ",
    "make_networks",
    "preset_for",
]

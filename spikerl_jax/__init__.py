"""spikerl_jax: population-coded spiking actors trained with TD3, in JAX/Flax.

The public API (``spikerl_jax.api``) is importable from here; it is loaded on first use, so
``import spikerl_jax.config`` (what ``--help`` and config validation need) stays light.
"""

__version__ = "0.1.0"

_API = (
    "CriticConfig",
    "MLPActor",
    "Policy",
    "PopSAN",
    "PopSANConfig",
    "RunRecord",
    "SweepSpec",
    "TD3Config",
    "TrainConfig",
    "TrainResult",
    "TwinQ",
    "compare_runs",
    "episode_spike_trains",
    "evaluate",
    "export_nir",
    "load_policy",
    "make_networks",
    "plot_learning_curves",
    "plot_receptive_fields",
    "plot_runs",
    "plot_spike_raster",
    "popsan_to_nir",
    "preset_for",
    "read_run",
    "spike_report",
    "train",
    "train_sweep",
)
__all__ = [*_API]


def __dir__():
    return sorted([*globals(), *_API])


def __getattr__(name: str):
    if name in _API:
        from spikerl_jax import api

        return getattr(api, name)
    raise AttributeError(f"module 'spikerl_jax' has no attribute {name!r}")

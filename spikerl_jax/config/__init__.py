"""Frozen configuration dataclasses; their field docstrings are the CLI's ``--help``.

Defaults reproduce the paper (PopSAN + TD3, arXiv 2502.17496 / PopSAN's code). Per-environment
presets (``preset_for``) change only what a task needs, e.g. a short random phase for
InvertedPendulum.
"""

from spikerl_jax.config.base import (
    FLAG_NAMES as FLAG_NAMES,
)
from spikerl_jax.config.base import (
    MAX_INT as MAX_INT,
)
from spikerl_jax.config.base import (
    MAX_STEPS as MAX_STEPS,
)
from spikerl_jax.config.base import (
    PJ_PER_MAC as PJ_PER_MAC,
)
from spikerl_jax.config.base import (
    PJ_PER_SYNOP as PJ_PER_SYNOP,
)
from spikerl_jax.config.base import ConfigError as ConfigError
from spikerl_jax.config.base import differing_fields as differing_fields
from spikerl_jax.config.base import flag as flag
from spikerl_jax.config.base import leaf_items as leaf_items
from spikerl_jax.config.memory import check_fits as check_fits
from spikerl_jax.config.memory import run_needs as run_needs
from spikerl_jax.config.presets import PAPER_STEPS as PAPER_STEPS
from spikerl_jax.config.presets import PRESETS as PRESETS
from spikerl_jax.config.presets import preset_for as preset_for
from spikerl_jax.config.sections import CriticConfig as CriticConfig
from spikerl_jax.config.sections import PopSANConfig as PopSANConfig
from spikerl_jax.config.sections import SACConfig as SACConfig
from spikerl_jax.config.sections import TD3Config as TD3Config
from spikerl_jax.config.train import RESUME_MUTABLE as RESUME_MUTABLE
from spikerl_jax.config.train import TrainConfig as TrainConfig

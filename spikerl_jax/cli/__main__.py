"""``python -m spikerl_jax.cli``: the command line."""

import sys

from spikerl_jax.cli import main

sys.exit(main())

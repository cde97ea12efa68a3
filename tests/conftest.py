"""Test setup: CPU only, 8 forced host devices, persistent compilation cache.

The environment variables must be set before JAX is imported anywhere, which is why this
module sets them at import time (pytest imports conftest.py first).
"""

import os
from pathlib import Path

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import jax

CACHE_DIR = Path(__file__).resolve().parent.parent / ".jax_cache"  # git-ignored
jax.config.update("jax_compilation_cache_dir", str(CACHE_DIR))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import sys  # noqa: E402

# Test modules live in per-package folders and share helpers.py (imported as `helpers`).
sys.path.insert(0, str(Path(__file__).resolve().parent))

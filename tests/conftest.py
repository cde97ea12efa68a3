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

# Through the environment, so the processes tests start (the CLI, multi-process runs, the
# notebook's kernel) share the cache: a resumed multi-process run loads what its straight
# run compiled.
CACHE_DIR = Path(__file__).resolve().parent.parent / ".jax_cache"  # git-ignored
os.environ["JAX_COMPILATION_CACHE_DIR"] = str(CACHE_DIR)
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

# Training sessions trace their programs in full float32 matmuls; the tests' own programs
# do too, so that programs lower the same whichever test builds them first and are shared.
import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import sys  # noqa: E402

# Test modules live in per-package folders and share helpers.py (imported as `helpers`).
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The heaviest test files first (descending seconds on 2 cores): with `--dist loadfile` each
# worker takes whole files in collection order, and a long file collected last leaves the
# other worker idle at the end of the run.
HEAVY_FIRST = (
    "envs/test_mjx_tasks.py",
    "training/test_population.py",
    "training/test_device_loop_learning.py",
    "training/test_parallel.py",
    "test_precision.py",
    "training/test_device_loop.py",
    "training/test_trainer.py",
    "test_notebook.py",
    "test_readme.py",
    "training/test_checkpoint.py",
    "training/test_session.py",
)


def pytest_collection_modifyitems(items):
    tests = Path(__file__).resolve().parent
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(tests).as_posix(), len(rank)))

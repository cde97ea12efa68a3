"""Shared helpers of the benchmarks: timing medians, the CPU's matmul peak, machine facts."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall seconds of ``fn()`` (which must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak_flops(n: int = 2048, repeats: int = 7) -> float:
    """fp32 FLOP/s of a jitted ``n x n`` matmul: the reference for 'fraction of peak'."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(jnp.dot)
    seconds = median_time(lambda: matmul(a, a).block_until_ready(), repeats)
    return 2 * n**3 / seconds


def cpu_model() -> dict:
    """The CPU's model name and the vector extensions that matter here (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return {"cpu_model": platform.processor() or platform.machine()}
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    flags = next(
        (line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")),
        [],
    )
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")
    return {"cpu_model": model, "cpu_flags": [f for f in wanted if f in flags]}


def machine() -> dict:
    """Where the figures come from: device, cores, versions, commit."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "device": str(jax.devices()[0].device_kind),
        "backend": jax.default_backend(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        **cpu_model(),
        "jax": jax.__version__,
        "commit": commit,
    }

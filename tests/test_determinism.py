"""docs/recovery.md's determinism promise, as a user runs it: two runs of one seed started
side by side (each loading the other's cores) while a third process keeps the CPUs busy, with
the setting the promise names, write the same train.csv and metrics.csv.

Under load, XLA:CPU's multi-threaded Eigen matmuls (the default) sometimes round
differently from the first update round on; ``--xla_cpu_multi_thread_eigen=false`` makes
every matmul single-threaded, and the bits do not depend on the load.
"""

from __future__ import annotations

import csv
import subprocess
import sys

from helpers import TIMING, USER_TINY, user_cli_background

# The setting docs/recovery.md promises the bits for.
DETERMINISTIC = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
# 64x64 networks, larger than TINY's, so that more of the time is in matmuls.
RUN = [
    "train",
    *USER_TINY,
    "--hidden-sizes",
    "64",
    "64",
    "--critic-hidden-sizes",
    "64",
    "64",
    "--log-every",
    "100",
    "--no-tensorboard",
    "--no-energy",
]


def rows(path) -> list[dict]:
    """A CSV's rows without the timing columns (which differ between any two runs)."""
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def test_two_same_seed_runs_side_by_side_under_load_write_the_same_csvs(tmp_path):
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        procs = [
            user_cli_background(*RUN, "--out", str(tmp_path / name), env=DETERMINISTIC)
            for name in ("a", "b")
        ]
        errs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        burner.kill()
        burner.wait()
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errs]
    for name in ("train.csv", "metrics.csv"):
        a, b = rows(tmp_path / "a" / name), rows(tmp_path / "b" / name)
        assert a and a == b, name

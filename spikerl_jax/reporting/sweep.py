"""A sweep's summary: per setting, the mean and standard deviation over its seeds of the
final and best evaluation returns, ranked; and the settings' learning curves."""

from __future__ import annotations

import contextlib
import csv
import json
import os

import numpy as np
from rich.table import Table

from spikerl_jax.reporting.grouping import variant
from spikerl_jax.reporting.plots import plot_learning_curves
from spikerl_jax.reporting.runs import RunRecord

COLUMNS = ("rank", "setting", "seeds", "final_mean", "final_std", "best_mean", "best_std", "runs")


def sweep_rows(groups: dict[str, list[RunRecord]]) -> list[dict]:
    """One row per setting, best final mean first (ties: best mean)."""
    rows = []
    for label, runs in groups.items():
        final = np.array([r.summary["final_eval_return"] for r in runs], float)
        best = np.array([r.summary["best_eval_return"] for r in runs], float)
        names = [os.path.basename(os.path.normpath(r.run_dir)) for r in runs]
        rows.append(
            {
                "setting": label,
                "seeds": len(runs),
                "final_mean": float(final.mean()),
                "final_std": float(final.std()),
                "best_mean": float(best.mean()),
                "best_std": float(best.std()),
                "runs": names,
            }
        )
    rows.sort(key=lambda r: (-r["final_mean"], -r["best_mean"]))
    return [{"rank": i + 1, **row} for i, row in enumerate(rows)]


SUMMARY_FILES = ("sweep.json", "sweep.csv", "learning_curves.png")


def summary_written(root: str, files: tuple[str, ...] = SUMMARY_FILES) -> bool:
    """Whether ``root`` holds every file of a summary (a sweep's), none of them empty."""
    paths = [os.path.join(root, name) for name in files]
    return all(os.path.isfile(p) and os.path.getsize(p) > 0 for p in paths)


@contextlib.contextmanager
def replacing(path: str):
    """A text file written whole or not at all: into a temporary file, then renamed (a full
    disk leaves the previous file, not a torn one)."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", newline="") as f:
            yield f
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise OSError(e.errno, e.strerror, path) from None


def write_sweep_summary(root: str, groups: dict[str, list[RunRecord]]) -> list[str]:
    """Writes ``sweep.json``, ``sweep.csv`` and ``learning_curves.png`` into ``root``."""
    rows = sweep_rows(groups)
    json_path, csv_path = os.path.join(root, "sweep.json"), os.path.join(root, "sweep.csv")
    with replacing(json_path) as f:
        json.dump({"settings": rows}, f, indent=2)
    with replacing(csv_path) as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows({**r, "runs": " ".join(r["runs"])} for r in rows)
    # A sweep without a grid has one setting, "base": its curve is named by its variant.
    curves = {variant(runs[0].config) if k == "base" else k: runs for k, runs in groups.items()}
    png = plot_learning_curves(curves, os.path.join(root, "learning_curves.png"))
    return [json_path, csv_path, png]


def sweep_table(rows: list[dict]):
    """The ranking as a rich table."""
    table = Table(title="settings ranked by final evaluation return (mean ± std over seeds)")
    for column in ("rank", "setting", "seeds", "final", "best"):
        table.add_column(column, justify="right" if column != "setting" else "left")
    for r in rows:
        table.add_row(
            str(r["rank"]),
            r["setting"],
            str(r["seeds"]),
            f"{r['final_mean']:.1f} ± {r['final_std']:.1f}",
            f"{r['best_mean']:.1f} ± {r['best_std']:.1f}",
        )
    return table

"""``spikerl-jax compare BASE NEW [...]``: Speedup, Powerup, Greenup and carbon of runs.

For each run against the base run (SpikeRL's definitions, arXiv 2502.17496):

    Speedup = T_base / T_new        Powerup = P_new / P_base        Greenup = E_base / E_new
    carbon reduction % = 100 * (1 - C_new / C_base)

with T the measured duration of the run's training and evaluation (codecarbon's phases,
added over resumed processes), E its energy (kWh), P = E / T its mean power and C its
emissions (kgCO2eq). Greenup = Speedup / Powerup. Runs trained with ``--no-energy`` have only
their wall time: their Speedup uses ``wall_s`` and the energy columns stay empty.

Runs of different tasks, lengths or actors do different work: the comparison says so (one
warning line each) and shows per-step figures beside the ratios. Where the energy is an
estimate (no RAPL counters: a CPU TDP model, codecarbon's RAM model), Greenup follows Speedup
closely and says little about power; the comparison says that too.
"""

from __future__ import annotations

import csv
import json
import os
import warnings

from rich.table import Table

from spikerl_jax.reporting.runs import RunRecord

COLUMNS = (
    "run",
    "env",
    "actor",
    "steps",
    "final_return",
    "best_return",
    "duration_s",
    "energy_kwh",
    "mean_power_w",
    "emissions_kg",
    "s_per_1k_steps",
    "wh_per_1k_steps",
    "speedup",
    "powerup",
    "greenup",
    "carbon_reduction_pct",
)


def _measures(run: RunRecord) -> dict:
    """Duration, energy, mean power and emissions of a run (None where not measured)."""
    energy = run.summary.get("energy") or {}
    total = energy.get("total") if energy.get("enabled") else None
    if total is None:
        return {
            "duration_s": run.summary["wall_s"],
            "energy_kwh": None,
            "mean_power_w": None,
            "emissions_kg": None,
        }
    return {key: total[key] for key in ("duration_s", "energy_kwh", "mean_power_w", "emissions_kg")}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


# How runs may differ and what that means for the comparison: (label, column, consequence).
DIFFERENCES = (
    ("tasks", "env", "their returns are not comparable"),
    ("lengths", "steps", "Speedup and Greenup compare unequal work; see the per-1k-steps rows"),
    ("actors", "actor", "the ratios compare the actors' whole training (acting and updates)"),
)


def _warn_differences(rows: list[dict], runs: list[RunRecord]) -> None:
    """One warning line per way in which the runs differ (task, length, actor) and one for
    estimated energy."""
    for label, column, consequence in DIFFERENCES:
        values = [str(r[column]) for r in rows]
        if len(set(values)) > 1:
            warnings.warn(
                f"the runs differ in {label} ({', '.join(values)}): {consequence}", stacklevel=3
            )
    sources = [(run.summary.get("energy") or {}).get("power_source", {}) for run in runs]
    if any(s and "estimate" in s.get("cpu", "") for s in sources):
        warnings.warn(
            "the energy is estimated (the CPU's from its TDP, without RAPL counters; the RAM's "
            "from codecarbon's model): Greenup then follows Speedup and says little about power",
            stacklevel=3,
        )


def compare_runs(base: RunRecord, others: list[RunRecord]) -> list[dict]:
    """One row per run (the base first, its ratios 1) with the columns of ``COLUMNS``;
    warns where the runs do unequal work or their energy is estimated."""
    b = _measures(base)
    rows = []
    for run in [base, *others]:
        m = _measures(run)
        greenup = _ratio(b["energy_kwh"], m["energy_kwh"])
        carbon = _ratio(m["emissions_kg"], b["emissions_kg"])
        thousands = run.summary["total_steps"] / 1000
        rows.append(
            {
                "run": run.run_dir,
                "env": run.summary["env"],
                "actor": run.config.get("actor_kind", "popsan"),
                "steps": run.summary["total_steps"],
                "final_return": run.summary["final_eval_return"],
                "best_return": run.summary["best_eval_return"],
                **m,
                "s_per_1k_steps": _ratio(m["duration_s"], thousands),
                "wh_per_1k_steps": _ratio(m["energy_kwh"] and m["energy_kwh"] * 1e3, thousands),
                "speedup": _ratio(b["duration_s"], m["duration_s"]),
                "powerup": _ratio(m["mean_power_w"], b["mean_power_w"]),
                "greenup": greenup,
                "carbon_reduction_pct": None if carbon is None else 100.0 * (1.0 - carbon),
            }
        )
    _warn_differences(rows, [base, *others])
    return rows


def write_comparison(rows: list[dict], prefix: str) -> tuple[str, str]:
    """Writes ``PREFIX.json`` and ``PREFIX.csv``; returns their paths."""
    json_path, csv_path = f"{prefix}.json", f"{prefix}.csv"
    with open(json_path, "w") as f:
        json.dump(rows, f, indent=2)
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path


def short_names(paths: list[str]) -> list[str]:
    """The paths' shortest trailing parts that tell them apart (``sweep/base-s0``)."""
    parts = [os.path.normpath(os.path.abspath(p)).split(os.sep) for p in paths]
    for n in range(1, max(map(len, parts)) + 1):
        names = [os.path.join(*p[-n:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return paths


def comparison_table(rows: list[dict]):
    """A rich table with one column per run (energy in Wh, carbon in g; '-': not measured)."""
    # (label, column, scale, format)
    shown = (
        ("task", "env", None, ""),
        ("actor", "actor", None, ""),
        ("steps", "steps", 1, ",d"),
        ("final return", "final_return", 1, ".1f"),
        ("best return", "best_return", 1, ".1f"),
        ("duration (s)", "duration_s", 1, ".1f"),
        ("energy (Wh)", "energy_kwh", 1e3, ".4g"),
        ("time per 1k steps (s)", "s_per_1k_steps", 1, ".2f"),
        ("energy per 1k steps (Wh)", "wh_per_1k_steps", 1, ".3g"),
        ("mean power (W)", "mean_power_w", 1, ".1f"),
        ("emissions (gCO2eq)", "emissions_kg", 1e3, ".4g"),
        ("Speedup", "speedup", 1, ".2f"),
        ("Powerup", "powerup", 1, ".2f"),
        ("Greenup", "greenup", 1, ".2f"),
        ("carbon reduction (%)", "carbon_reduction_pct", 1, "+.1f"),
    )
    table = Table(title=f"runs against the base {rows[0]['run']}")
    table.add_column("")
    for i, name in enumerate(short_names([row["run"] for row in rows])):
        table.add_column(f"{name} (base)" if i == 0 else name, justify="right", overflow="fold")
    for label, column, scale, spec in shown:
        cells = [
            "-"
            if r[column] is None
            else str(r[column])
            if scale is None
            else format(r[column] * scale, spec)
            for r in rows
        ]
        table.add_row(label, *cells)
    return table
